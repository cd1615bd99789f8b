package oauth

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authsvc/authsvc/gateway/internal/edge"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
)

func (e *fakeEdge) discover(t *testing.T) (int, http.Header, map[string]any) {
	t.Helper()
	resp, err := http.Get(e.url + RFC8414Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc map[string]any
	_ = json.Unmarshal(raw, &doc)
	return resp.StatusCode, resp.Header, doc
}

func algorithmsOf(doc map[string]any) []string {
	var out []string
	list, _ := doc["id_token_signing_alg_values_supported"].([]any)
	for _, v := range list {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

func TestDiscoveryNamesTheAlgorithmsOfTheKeySetAndFollowsIt(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})
	clock := testclock.At(time.Unix(1000, 0))
	e.settings.discovery.now = clock.Now
	e.fake.set([]*authsvcv1.Jwk{
		{Kty: "OKP", Crv: "Ed25519", Kid: "a", Alg: "EdDSA"},
		{Kty: "EC", Crv: "P-256", Kid: "b", Use: "sig", Alg: "ES256"},
		{Kty: "OKP", Crv: "Ed25519", Kid: "c", Use: "sig", Alg: "EdDSA"},
		{Kty: "RSA", Kid: "d", Use: "enc", Alg: "RS256"}, // not a signature key
	}, nil)

	code, header, doc := e.discover(t)
	e.fake.set([]*authsvcv1.Jwk{{Kty: "RSA", Kid: "e", Use: "sig", Alg: "RS256"}}, nil) // rotated to RS256
	clock.Advance(time.Minute - time.Millisecond)
	_, _, cached := e.discover(t)
	clock.Advance(time.Millisecond)
	_, _, rotated := e.discover(t)

	if code != 200 || header.Get("Cache-Control") != "public, max-age=60" || header.Get("Content-Type") != "application/json" {
		t.Errorf("%d %v", code, header)
	}
	if got := algorithmsOf(doc); !slices.Equal(got, []string{"EdDSA", "ES256"}) {
		t.Errorf("algorithms %q", got)
	}
	if got := algorithmsOf(cached); !slices.Equal(got, []string{"EdDSA", "ES256"}) {
		t.Errorf("within the max-age: %q", got)
	}
	if got := algorithmsOf(rotated); !slices.Equal(got, []string{"RS256"}) {
		t.Errorf("after the max-age: %q", got)
	}
	e.fake.mu.Lock()
	defer e.fake.mu.Unlock()
	if e.fake.jwksSeen != 2 {
		t.Errorf("the JWKS was fetched %d times", e.fake.jwksSeen)
	}
}

func TestDiscoveryNamesBearerForIntrospectionAndNoneForRevocation(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})

	code, _, doc := e.discover(t)

	want := map[string]any{
		"introspection_endpoint_auth_methods_supported": []any{"Bearer"},
		"revocation_endpoint_auth_methods_supported":    []any{"none"},
		"revocation_endpoint":                           e.url + RevokePath,
		"introspection_endpoint":                        e.url + IntrospectPath,
	}
	for name, value := range want {
		if got, _ := json.Marshal(doc[name]); code != 200 || string(got) != mustMarshal(value) {
			t.Errorf("%s: %s", name, got)
		}
	}
}

func mustMarshal(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func TestDiscoveryIsUnavailableWithoutAKeySet(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})

	e.fake.set(nil, status.Error(codes.Unavailable, "down"))
	down, _, _ := e.discover(t)
	e.fake.set([]*authsvcv1.Jwk{}, nil)
	empty, emptyHeader, _ := e.discover(t)

	if down != http.StatusServiceUnavailable || empty != http.StatusServiceUnavailable || emptyHeader.Get("Cache-Control") != "no-store" {
		t.Errorf("authsvc down: %d; no keys: %d %v", down, empty, emptyHeader)
	}
}

func TestWithoutAGivenIssuerDiscoveryNamesThePublishedOne(t *testing.T) {
	published := &authsvcv1.TokenRules{Issuer: "https://id.example.test/tenant", Audience: "orders",
		Algorithms: []string{"ES256"}, AccessTokenTtlSeconds: 300, LeewaySeconds: 5}
	e := startFakeEdgeWith(t, edge.BrowserConfig{}, published, func(s *Settings) {
		s.Issuer, s.given = "authsvc", map[string]bool{} // as Register leaves them without --issuer
	})

	code, _, doc := e.discover(t)

	if code != 200 || doc["issuer"] != published.Issuer ||
		doc["jwks_uri"] != published.Issuer+"/.well-known/jwks.json" {
		t.Errorf("%d %v", code, doc)
	}
}

func TestWithoutAGivenIssuerAndAPublishedNonURLOneThereIsNoDiscovery(t *testing.T) {
	published := &authsvcv1.TokenRules{Issuer: "authsvc", Audience: "authsvc",
		Algorithms: []string{"ES256"}, AccessTokenTtlSeconds: 900, LeewaySeconds: 30}
	e := startFakeEdgeWith(t, edge.BrowserConfig{}, published, func(s *Settings) {
		s.Issuer, s.given = "https://not.given.example", map[string]bool{}
	})

	first, _, _ := e.discover(t)
	second, _, _ := e.discover(t)

	if first != http.StatusNotFound || second != http.StatusNotFound || e.fake.jwksSeen != 1 {
		t.Errorf("answered %d then %d, after %d JWKS fetches; want 404 twice after one", first, second, e.fake.jwksSeen)
	}
}
