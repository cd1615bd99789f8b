package edge

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/types/known/durationpb"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// fakeAuth records the metadata of each call and answers with err (plus
// trailer) when set.
type fakeAuth struct {
	authsvcv1.UnimplementedAuthServer
	mu      sync.Mutex
	calls   []metadata.MD
	err     error
	trailer metadata.MD
	jwks    *authsvcv1.GetJwksResponse
}

func (f *fakeAuth) record(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, md)
	if f.trailer != nil {
		_ = grpc.SetTrailer(ctx, f.trailer)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-internal", "do-not-leak"))
	return f.err
}

func (f *fakeAuth) SignIn(ctx context.Context, _ *authsvcv1.SignInRequest) (*authsvcv1.SignInResponse, error) {
	if err := f.record(ctx); err != nil {
		return nil, err
	}
	return &authsvcv1.SignInResponse{AccessToken: "at", TokenType: "Bearer", ExpiresIn: 900, RefreshToken: "rt", RefreshExpiresIn: 1 << 40}, nil
}

func (f *fakeAuth) Validate(ctx context.Context, _ *authsvcv1.ValidateRequest) (*authsvcv1.ValidateResponse, error) {
	if err := f.record(ctx); err != nil {
		return nil, err
	}
	return &authsvcv1.ValidateResponse{UserId: "u1"}, nil
}

func (f *fakeAuth) GetJwks(ctx context.Context, _ *authsvcv1.GetJwksRequest) (*authsvcv1.GetJwksResponse, error) {
	if err := f.record(ctx); err != nil {
		return nil, err
	}
	return f.jwks, nil
}

type harness struct {
	fake   *fakeAuth
	health *health.Server
	http   *httptest.Server
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	h := &harness{fake: &fakeAuth{jwks: &authsvcv1.GetJwksResponse{}}, health: health.NewServer()}
	authsvcv1.RegisterAuthServer(srv, h.fake)
	healthpb.RegisterHealthServer(srv, h.health)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)

	conn, err := grpc.NewClient("passthrough:///authsvc",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	handler, err := NewHandler(context.Background(), conn, Config{Timeout: 5 * time.Second, JWKSMaxAge: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	h.http = httptest.NewServer(handler)
	t.Cleanup(h.http.Close)
	return h
}

// do sends body "{}" and returns the answer with its JSON object body.
func (h *harness) do(t *testing.T, method, path string, header http.Header) (*http.Response, map[string]any) {
	t.Helper()
	resp, raw := h.send(t, method, path, header, "{}")
	var body map[string]any
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("%s %s: body %q is not a JSON object: %v", method, path, raw, err)
	}
	return resp, body
}

// send sends body with header and returns the answer with its raw body. A
// POST is labelled Content-Type: application/json unless header has a
// Content-Type entry (an empty one sends none).
func (h *harness) send(t *testing.T, method, path string, header http.Header, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, h.http.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if _, given := header["Content-Type"]; method == http.MethodPost && !given {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func TestAuthorizationReachesAuthsvcAsExactlyOneValue(t *testing.T) {
	h := newHarness(t)
	resp, _ := h.do(t, "POST", "/v1/auth/validate", http.Header{"Authorization": {"Bearer abc"}, "Cookie": {"s=1"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	md := h.fake.calls[0]
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer abc" {
		t.Errorf("authorization metadata = %q, want exactly [Bearer abc]", got)
	}
	for key := range md {
		if strings.HasPrefix(key, "grpcgateway-") && key != "grpcgateway-user-agent" {
			t.Errorf("unexpected metadata %q forwarded", key)
		}
	}
}

func TestAmbiguousCredentialsAreRefusedBeforeAuthsvc(t *testing.T) {
	cases := map[string]http.Header{
		"two Authorization headers":   {"Authorization": {"Bearer a", "Bearer b"}},
		"Grpc-Metadata-Authorization": {"Authorization": {"Bearer a"}, "Grpc-Metadata-Authorization": {"Bearer b"}},
		"Grpc-Metadata-* alone":       {"Grpc-Metadata-Authorization": {"Bearer b"}},
		"other Grpc-Metadata-*":       {"Grpc-Metadata-X-User": {"admin"}},
		"non-ASCII Authorization":     {"Authorization": {"Bearer \xff"}},
	}
	for name, header := range cases {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)
			resp, body := h.do(t, "POST", "/v1/auth/validate", header)
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d, want 400", resp.StatusCode)
			}
			if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="authsvc", error="invalid_request"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if body["code"] != float64(codes.InvalidArgument) {
				t.Errorf("body code = %v", body["code"])
			}
			if len(h.fake.calls) != 0 {
				t.Errorf("authsvc was called")
			}
		})
	}
}

func TestErrorMapping(t *testing.T) {
	withDetails := func(c codes.Code, msg string, details ...*errdetails.RetryInfo) error {
		st := status.New(c, msg)
		for _, d := range details {
			st, _ = st.WithDetails(d)
		}
		return st.Err()
	}
	expired := `Bearer realm="authsvc", error="invalid_token", error_description="The access token expired"`
	cases := []struct {
		name       string
		err        error
		trailer    metadata.MD
		wantStatus int
		wantHeader map[string]string
		wantMsg    string
	}{
		{"unauthenticated with challenge", status.Error(codes.Unauthenticated, "token expired"),
			metadata.Pairs("www-authenticate", expired), 401,
			map[string]string{"WWW-Authenticate": expired}, "token expired"},
		{"unauthenticated without challenge", status.Error(codes.Unauthenticated, `Bearer error="x"`), nil, 401,
			map[string]string{"WWW-Authenticate": `Bearer realm="authsvc"`}, `Bearer error="x"`},
		{"malformed challenge is replaced", status.Error(codes.Unauthenticated, "no"),
			metadata.Pairs("www-authenticate", "Basic realm=x"), 401,
			map[string]string{"WWW-Authenticate": `Bearer realm="authsvc"`}, "no"},
		{"permission denied", status.Error(codes.PermissionDenied, "scope"), nil, 403,
			map[string]string{"WWW-Authenticate": `Bearer realm="authsvc", error="insufficient_scope"`}, "scope"},
		{"permission denied with challenge", status.Error(codes.PermissionDenied, "scope"),
			metadata.Pairs("www-authenticate", `Bearer realm="authsvc", error="insufficient_scope", scope="admin"`), 403,
			map[string]string{"WWW-Authenticate": `Bearer realm="authsvc", error="insufficient_scope", scope="admin"`}, "scope"},
		{"invalid argument", status.Error(codes.InvalidArgument, "email is not an email"), nil, 400, nil, "email is not an email"},
		{"rate limited rounds up", withDetails(codes.ResourceExhausted, "slow down",
			&errdetails.RetryInfo{RetryDelay: durationpb.New(1200 * time.Millisecond)}), nil, 429,
			map[string]string{"Retry-After": "2"}, "slow down"},
		{"rate limited at least 1", withDetails(codes.ResourceExhausted, "slow down",
			&errdetails.RetryInfo{RetryDelay: durationpb.New(10 * time.Millisecond)}), nil, 429,
			map[string]string{"Retry-After": "1"}, "slow down"},
		{"unavailable", status.Error(codes.Unavailable, "dial tcp 10.0.0.7:5432: refused"), nil, 503, nil,
			"authsvc is unavailable; try again later"},
		{"internal hides message", status.Error(codes.Internal, "asyncpg: relation users does not exist"), nil, 500, nil,
			"internal error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.fake.err, h.fake.trailer = tc.err, tc.trailer
			resp, body := h.do(t, "POST", "/v1/auth/signin", nil)
			if resp.StatusCode != tc.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			for k, v := range tc.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tc.wantHeader["WWW-Authenticate"] == "" && resp.Header.Get("WWW-Authenticate") != "" {
				t.Errorf("unexpected WWW-Authenticate %q", resp.Header.Get("WWW-Authenticate"))
			}
			if body["message"] != tc.wantMsg {
				t.Errorf("message %q, want %q", body["message"], tc.wantMsg)
			}
			if body["code"] != float64(status.Code(tc.err)) {
				t.Errorf("code %v, want %d", body["code"], status.Code(tc.err))
			}
			assertNoInternalHeaders(t, resp)
		})
	}
}

func TestErrorDetailsArePublicOnly(t *testing.T) {
	h := newHarness(t)
	st := status.New(codes.InvalidArgument, "bad email")
	st, _ = st.WithDetails(
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "email", Description: "not an email"}}},
		&errdetails.DebugInfo{Detail: "Traceback ..."},
	)
	h.fake.err = st.Err()
	_, body := h.do(t, "POST", "/v1/auth/signin", nil)
	details, _ := body["details"].([]any)
	if len(details) != 1 || details[0].(map[string]any)["@type"] != "type.googleapis.com/google.rpc.BadRequest" {
		t.Errorf("details = %v, want only the BadRequest", details)
	}
}

func TestTokenResponseIsOAuthShaped(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, "POST", "/v1/auth/signin", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if body["expires_in"] != float64(900) || body["refresh_expires_in"] != float64(1<<40) {
		t.Errorf("expires_in = %#v, refresh_expires_in = %#v, want numbers", body["expires_in"], body["refresh_expires_in"])
	}
	if body["session_id"] != "" {
		t.Errorf("unpopulated session_id = %#v, want \"\"", body["session_id"])
	}
	if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Pragma") != "no-cache" {
		t.Errorf("Cache-Control %q, Pragma %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Pragma"))
	}
	assertNoInternalHeaders(t, resp)
}

func TestZeroValuesAreShownButUnsetMessagesAreNotNull(t *testing.T) {
	h := newHarness(t)
	_, body := h.do(t, "POST", "/v1/auth/validate", nil)
	if scopes, ok := body["scopes"].([]any); !ok || len(scopes) != 0 {
		t.Errorf("scopes = %#v, want []", body["scopes"])
	}
	if _, has := body["issued_at"]; has {
		t.Errorf("unset issued_at rendered as %#v, want it left out", body["issued_at"])
	}
}

func TestJwksIsCacheableAndOmitsEmptyMembers(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/.well-known/jwks.json", "/v1/auth/jwks"} {
		h.fake.jwks = &authsvcv1.GetJwksResponse{}
		resp, body := h.do(t, "GET", path, nil)
		if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=300" {
			t.Errorf("%s: status %d, Cache-Control %q", path, resp.StatusCode, resp.Header.Get("Cache-Control"))
		}
		if keys, ok := body["keys"].([]any); !ok || len(keys) != 0 {
			t.Errorf("%s: empty JWKS = %v, want {\"keys\": []}", path, body)
		}
		h.fake.jwks = &authsvcv1.GetJwksResponse{Keys: []*authsvcv1.Jwk{{Kty: "EC", Crv: "P-256", X: "x", Y: "y", Kid: "k1", Use: "sig", Alg: "ES256"}}}
		_, body = h.do(t, "GET", path, nil)
		key := body["keys"].([]any)[0].(map[string]any)
		if _, has := key["n"]; has || key["crv"] != "P-256" || len(key) != 7 {
			t.Errorf("%s: key = %v, want the seven EC members only", path, key)
		}
	}
}

func TestJwksOverHTTPLeavesThePublishedRulesOut(t *testing.T) {
	h := newHarness(t)
	rules := &authsvcv1.TokenRules{Issuer: "authsvc", Audience: "authsvc", Algorithms: []string{"ES256"},
		AccessTokenTtlSeconds: 900, LeewaySeconds: 30}
	for _, path := range []string{"/.well-known/jwks.json", "/v1/auth/jwks"} {
		for _, keys := range [][]*authsvcv1.Jwk{nil, {{Kty: "EC", Crv: "P-256", X: "x", Y: "y", Kid: "k1", Use: "sig", Alg: "ES256"}}} {
			h.fake.jwks = &authsvcv1.GetJwksResponse{Keys: keys, Rules: rules}
			_, body := h.do(t, "GET", path, nil)
			if _, has := body["keys"]; !has || len(body) != 1 {
				t.Errorf("%s with %d keys: JWKS = %v, want the keys member only", path, len(keys), body)
			}
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	h := newHarness(t)
	if resp, _ := h.do(t, "GET", "/healthz", nil); resp.StatusCode != 200 {
		t.Errorf("/healthz %d", resp.StatusCode)
	}
	h.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	if resp, body := h.do(t, "GET", "/readyz", nil); resp.StatusCode != 200 || body["status"] != "SERVING" {
		t.Errorf("/readyz while SERVING: %d %v", resp.StatusCode, body)
	}
	h.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	if resp, body := h.do(t, "GET", "/readyz", nil); resp.StatusCode != 503 || body["status"] != "NOT_SERVING" {
		t.Errorf("/readyz while NOT_SERVING: %d %v", resp.StatusCode, body)
	}
}

func TestRoutingErrorsAreStatusJSON(t *testing.T) {
	h := newHarness(t)
	resp, body := h.do(t, "GET", "/v1/nope", nil)
	if resp.StatusCode != 404 || body["code"] != float64(codes.NotFound) {
		t.Errorf("unknown path: %d %v", resp.StatusCode, body)
	}
	resp, _ = h.do(t, "GET", "/v1/auth/signin", nil)
	if resp.StatusCode != 405 {
		t.Errorf("wrong method: %d", resp.StatusCode)
	}
}

func assertNoInternalHeaders(t *testing.T, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(k, "Grpc-") {
			t.Errorf("response leaks header %s", k)
		}
	}
}

func TestEveryAnswerSaysNosniff(t *testing.T) {
	cases := []struct {
		name, method, path, body string
		header                   http.Header
		upstreamErr              error
	}{
		{"success", "POST", "/v1/auth/signin", "{}", nil, nil},
		{"authsvc refusal", "POST", "/v1/auth/signin", "{}", nil, status.Error(codes.Unauthenticated, "no")},
		{"authsvc unreachable", "POST", "/v1/auth/signin", "{}", nil, status.Error(codes.Unavailable, "down")},
		{"refused credentials", "POST", "/v1/auth/validate", "{}", http.Header{"Authorization": {"Bearer a", "Bearer b"}}, nil},
		{"undecodable body", "POST", "/v1/auth/signin", "{", nil, nil},
		{"not JSON", "POST", "/v1/auth/signin", "{}", http.Header{"Content-Type": {"text/plain"}}, nil},
		{"jwks", "GET", "/.well-known/jwks.json", "", nil, nil},
		{"jwks v1", "GET", "/v1/auth/jwks", "", nil, nil},
		{"healthz", "GET", "/healthz", "", nil, nil},
		{"readyz", "GET", "/readyz", "", nil, nil},
		{"unknown path", "GET", "/v1/nope", "", nil, nil},
		{"wrong method", "GET", "/v1/auth/signin", "", nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.fake.err = tc.upstreamErr

			resp, _ := h.send(t, tc.method, tc.path, tc.header, tc.body)

			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("%s %s (%d): X-Content-Type-Options = %q, want nosniff", tc.method, tc.path, resp.StatusCode, got)
			}
		})
	}
}
