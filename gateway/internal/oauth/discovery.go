package oauth

import (
	"encoding/json"
	"net/http"
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
// Introspection callers authenticate with a bearer token carrying scope
// authsvc.introspect, for which RFC 8414's registry has no method name, so
// introspection_endpoint_auth_methods_supported is left out.
func (s *Settings) metadata() http.Handler {
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
		"revocation_endpoint":                           base + "/v1/auth/revoke",
		"userinfo_endpoint":                             base + UserinfoPath,
		"token_endpoint_auth_methods_supported":         []string{"none"},
		"revocation_endpoint_auth_methods_supported":    []string{"none"},
		"introspection_endpoint_auth_methods_supported": []string{"bearer"},
		"id_token_signing_alg_values_supported":         s.Algorithms,
		"response_types_supported":                      []string{},
		"subject_types_supported":                       []string{"public"},
		"scopes_supported":                              []string{"authsvc.revocations", IntrospectScope},
		"claims_supported":                              []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid", "scope"},
	}
	body, err := json.Marshal(doc)
	if err != nil {
		panic(err) // strings and lists of strings only
	}
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	})
}
