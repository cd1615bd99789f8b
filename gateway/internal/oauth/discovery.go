package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// metadata serves the RFC 8414 authorization server metadata, which is
// also the OIDC Discovery document's subset that applies to authsvc, at
// both well-known paths; nil when the issuer is no http(s) URL (the
// documents name absolute endpoints under it, and a client checks that the
// issuer it fetched from is the one the document and the tokens name).
//
// authsvc has no authorization endpoint and issues no ID tokens: there is
// no response type to list, and id_token_signing_alg_values_supported
// (which OIDC Discovery requires) names the algorithms of the access
// tokens, the only JWTs there are, so OIDC libraries can verify them.
// Those are the algorithms of the keys authsvc's JWKS holds, read from
// authsvc (see discovery), not the ones the gateway would accept.
//
// Client authentication, per endpoint:
//
//   - revocation: "none" (RFC 7591's registered name): anyone holding a
//     token may revoke it, with RFC 7009's form or the JSON body.
//   - introspection: "Bearer". RFC 8414 section 2 allows, for
//     introspection_endpoint_auth_methods_supported, the names of the
//     "OAuth Token Endpoint Authentication Methods" registry *or* of the
//     "OAuth Access Token Types" registry (the two are kept distinct for
//     this reason, RFC 8414 section 7.2), since RFC 7662 section 2.1 lets
//     a protected resource authenticate with a bearer token. "Bearer" is
//     that registry's name for RFC 6750 tokens, and introspection here
//     takes exactly that: an access token with scope authsvc.introspect.
func (s *Settings) metadata(client authsvcv1.AuthClient) *discovery {
	u := s.issuerURL()
	if u == nil {
		return nil
	}
	base := u.String()
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	doc := map[string]any{
		"issuer":                                        s.Issuer,
		"jwks_uri":                                      base + "/.well-known/jwks.json",
		"introspection_endpoint":                        base + IntrospectPath,
		"revocation_endpoint":                           base + RevokePath,
		"userinfo_endpoint":                             base + UserinfoPath,
		"token_endpoint_auth_methods_supported":         []string{"none"},
		"revocation_endpoint_auth_methods_supported":    []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"Bearer"},
		"response_types_supported":                      []string{},
		"subject_types_supported":                       []string{"public"},
		"scopes_supported":                              []string{"authsvc.revocations", IntrospectScope},
		"claims_supported":                              []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "scope"},
	}
	return &discovery{client: client, doc: doc, maxAge: max(s.KeySetMaxAge, 0), now: time.Now}
}

// discovery is the metadata document, completed with the algorithms of the
// key set authsvc publishes. The document is built again when it is older
// than maxAge (the JWKS's own max-age, so a key of a new algorithm, which
// authsvc publishes ahead of signing with it, appears in the document no
// later than in a cached JWKS), and caches may keep it that long too.
// Until authsvc has answered once, or when it cannot answer after that
// time, the document is 503 like the JWKS itself.
type discovery struct {
	client authsvcv1.AuthClient
	doc    map[string]any // everything but the algorithms; never changed
	maxAge time.Duration
	now    func() time.Time

	mu    sync.Mutex // held while fetching, so one request fetches for all
	body  []byte
	built time.Time
}

// errNoSigningKeys: authsvc publishes no key to sign with (yet).
var errNoSigningKeys = errors.New("the JWKS holds no signing key")

func (d *discovery) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := d.document(r.Context())
	if err != nil {
		verify.WriteHTTPError(w, verify.ErrUnavailable)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(d.maxAge/time.Second)))
	_, _ = w.Write(body)
}

func (d *discovery) document(ctx context.Context) ([]byte, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if now := d.now(); d.body != nil && now.Sub(d.built) < d.maxAge && !now.Before(d.built) {
		return d.body, nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	jwks, err := d.client.GetJwks(ctx, &authsvcv1.GetJwksRequest{})
	if err != nil {
		return nil, err
	}
	algorithms := signingAlgorithms(jwks.GetKeys())
	if len(algorithms) == 0 {
		return nil, errNoSigningKeys
	}
	doc := make(map[string]any, len(d.doc)+1)
	for k, v := range d.doc {
		doc[k] = v
	}
	doc["id_token_signing_alg_values_supported"] = algorithms
	body, err := json.Marshal(doc)
	if err != nil {
		return nil, err
	}
	d.body, d.built = body, d.now()
	return body, nil
}

// signingAlgorithms are the distinct algorithms of the signature keys in
// keys, in the order the key set lists them.
func signingAlgorithms(keys []*authsvcv1.Jwk) []string {
	algorithms := []string{}
	seen := map[string]bool{}
	for _, k := range keys {
		if use := k.GetUse(); use != "" && use != "sig" {
			continue
		}
		if alg := k.GetAlg(); alg != "" && !seen[alg] {
			seen[alg] = true
			algorithms = append(algorithms, alg)
		}
	}
	return algorithms
}
