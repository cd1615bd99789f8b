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
// Without a given issuer (Settings.givenRule), the document's issuer is the
// one authsvc publishes with its key set (GetJwksResponse.rules), read each
// time the document is built again; while that is no http(s) URL there is
// no document, and the paths answer as any unknown path does.
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
	d := &discovery{client: client, maxAge: max(s.KeySetMaxAge, 0), now: time.Now}
	if s.givenRule("issuer") {
		d.doc = documentFor(s.Issuer)
		if d.doc == nil {
			return nil
		}
	} else {
		d.fallbackIssuer = s.Issuer
	}
	return d
}

// documentFor is the metadata document of issuer without the algorithms;
// nil when issuer is no http(s) URL.
func documentFor(issuer string) map[string]any {
	u := issuerURLOf(issuer)
	if u == nil {
		return nil
	}
	base := u.String()
	for len(base) > 0 && base[len(base)-1] == '/' {
		base = base[:len(base)-1]
	}
	return map[string]any{
		"issuer":                                        issuer,
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
	// doc is everything but the algorithms, never changed, for a given
	// issuer; nil: the document of the issuer authsvc publishes (or of
	// fallbackIssuer, when it publishes none).
	doc            map[string]any
	fallbackIssuer string
	maxAge         time.Duration
	now            func() time.Time

	mu    sync.Mutex // held while fetching, so one request fetches for all
	body  []byte     // nil with built set: no document (the issuer is no URL)
	built time.Time
}

var (
	// errNoSigningKeys: authsvc publishes no key to sign with (yet).
	errNoSigningKeys = errors.New("the JWKS holds no signing key")
	// errNoDocument: the issuer authsvc publishes is no http(s) URL.
	errNoDocument = errors.New("the issuer is no http(s) URL")
)

// orElse serves the document, or passes the request to next when there is
// none (the published issuer is no URL).
func (d *discovery) orElse(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := d.document(r.Context()); errors.Is(err, errNoDocument) {
			next.ServeHTTP(w, r)
			return
		}
		d.ServeHTTP(w, r)
	})
}

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
	if now := d.now(); !d.built.IsZero() && now.Sub(d.built) < d.maxAge && !now.Before(d.built) {
		if d.body == nil {
			return nil, errNoDocument
		}
		return d.body, nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	jwks, err := d.client.GetJwks(ctx, &authsvcv1.GetJwksRequest{})
	if err != nil {
		return nil, err
	}
	base := d.doc
	if base == nil {
		issuer := d.fallbackIssuer
		if published := jwks.GetRules().GetIssuer(); published != "" {
			issuer = published
		}
		if base = documentFor(issuer); base == nil {
			d.body, d.built = nil, d.now()
			return nil, errNoDocument
		}
	}
	algorithms := signingAlgorithms(jwks.GetKeys())
	if len(algorithms) == 0 {
		return nil, errNoSigningKeys
	}
	doc := make(map[string]any, len(base)+1)
	for k, v := range base {
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
