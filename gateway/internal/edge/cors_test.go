package edge

import (
	"context"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

const (
	appOrigin   = "https://app.example.com"
	otherOrigin = "https://evil.example.net"
)

// browserAuth is a fake authsvc that records the tokens Refresh and Revoke
// receive and hands out numbered refresh tokens.
type browserAuth struct {
	authsvcv1.UnimplementedAuthServer
	mu         sync.Mutex
	refreshed  []string
	revoked    []*authsvcv1.RevokeRequest
	refreshErr error
	issued     int
}

func (f *browserAuth) pair() (string, string) {
	f.issued++
	n := string(rune('0' + f.issued))
	return "at-" + n, "rt-" + n
}

func (f *browserAuth) SignIn(context.Context, *authsvcv1.SignInRequest) (*authsvcv1.SignInResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at, rt := f.pair()
	return &authsvcv1.SignInResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: 900,
		RefreshToken: rt, RefreshExpiresIn: 3600, SessionId: "s1", UserId: "u1"}, nil
}

func (f *browserAuth) Refresh(_ context.Context, req *authsvcv1.RefreshRequest) (*authsvcv1.RefreshResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refreshed = append(f.refreshed, req.GetRefreshToken())
	if f.refreshErr != nil {
		return nil, f.refreshErr
	}
	at, rt := f.pair()
	return &authsvcv1.RefreshResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: 900,
		RefreshToken: rt, RefreshExpiresIn: 1800, SessionId: "s1", UserId: "u1"}, nil
}

func (f *browserAuth) Revoke(_ context.Context, req *authsvcv1.RevokeRequest) (*authsvcv1.RevokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, req)
	return &authsvcv1.RevokeResponse{}, nil
}

func (f *browserAuth) Validate(context.Context, *authsvcv1.ValidateRequest) (*authsvcv1.ValidateResponse, error) {
	return &authsvcv1.ValidateResponse{UserId: "u1"}, nil
}

// browserEdge serves the gateway with cfg in front of a browserAuth.
type browserEdge struct {
	fake *browserAuth
	url  string
}

func newBrowserEdge(t *testing.T, cfg BrowserConfig) *browserEdge {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	fake := &browserAuth{}
	authsvcv1.RegisterAuthServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///authsvc",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	handler, err := NewHandler(context.Background(), conn, Config{Timeout: 5 * time.Second, Browser: cfg})
	if err != nil {
		t.Fatal(err)
	}
	server := httptest.NewServer(handler)
	t.Cleanup(server.Close)
	return &browserEdge{fake: fake, url: server.URL}
}

// call sends body (POST with Content-Type: application/json unless header
// sets one) and returns the answer and its body.
func (e *browserEdge) call(t *testing.T, method, path string, header http.Header, body string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, strings.NewReader(body))
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
	var raw strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		raw.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, raw.String()
}

func corsConfig() BrowserConfig {
	return BrowserConfig{CORSOrigins: []string{appOrigin}, CORSMaxAge: 10 * time.Minute}
}

func preflight(origin, method string) http.Header {
	return http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method},
		"Access-Control-Request-Headers": {"authorization,content-type"}}
}

func TestPreflightFromAListedOriginIsAnsweredAtTheGateway(t *testing.T) {
	e := newBrowserEdge(t, corsConfig())

	resp, body := e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(appOrigin, "POST"), "")

	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("status %d body %q", resp.StatusCode, body)
	}
	want := map[string]string{
		"Access-Control-Allow-Origin":      appOrigin,
		"Access-Control-Allow-Credentials": "true",
		"Access-Control-Allow-Methods":     "GET, POST",
		"Access-Control-Allow-Headers":     "authorization, content-type, x-request-id",
		"Access-Control-Max-Age":           "600",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if !strings.Contains(strings.Join(resp.Header.Values("Vary"), ","), "Origin") {
		t.Errorf("Vary %q lacks Origin", resp.Header.Values("Vary"))
	}
}

func TestPreflightFromAnUnlistedOriginGetsNoCORSHeaders(t *testing.T) {
	e := newBrowserEdge(t, corsConfig())

	for _, origin := range []string{otherOrigin, "null", "https://app.example.com.evil.net", "http://app.example.com"} {
		resp, body := e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(origin, "POST"), "")

		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: status %d", origin, resp.StatusCode)
		}
		assertNoCORS(t, resp)
		if got := parseErrorBody(t, []byte(body)).reason(); got != "ORIGIN_NOT_ALLOWED" {
			t.Errorf("%s: reason %q", origin, got)
		}
	}
}

func TestAnswersToAListedOriginCarryCORSHeaders(t *testing.T) {
	e := newBrowserEdge(t, corsConfig())

	resp, _ := e.call(t, http.MethodPost, "/v1/auth/validate", http.Header{"Origin": {appOrigin}}, "{}")

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != appOrigin {
		t.Errorf("Allow-Origin %q", got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Credentials"); got != "true" {
		t.Errorf("Allow-Credentials %q", got)
	}
	if got := resp.Header.Get("Access-Control-Expose-Headers"); got != "www-authenticate, retry-after" {
		t.Errorf("Expose-Headers %q", got)
	}
	if got := resp.Header.Values("Vary"); len(got) != 1 || got[0] != "Origin" {
		t.Errorf("Vary %q", got)
	}
}

func TestErrorsToAListedOriginAreReadable(t *testing.T) {
	e := newBrowserEdge(t, corsConfig())

	resp, _ := e.call(t, http.MethodPost, "/v1/auth/validate",
		http.Header{"Origin": {appOrigin}, "Content-Type": {"text/plain"}}, "{}")

	if resp.StatusCode != http.StatusUnsupportedMediaType || resp.Header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Errorf("status %d, Allow-Origin %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
}

func TestAnswersToUnlistedOriginsCarryNoCORSHeaders(t *testing.T) {
	e := newBrowserEdge(t, corsConfig())

	resp, _ := e.call(t, http.MethodGet, "/v1/auth/jwks", http.Header{"Origin": {otherOrigin}}, "")

	assertNoCORS(t, resp)
	if got := resp.Header.Get("Vary"); got != "Origin" {
		t.Errorf("Vary %q", got)
	}
}

func TestWithoutOriginsTheGatewayAddsNoCORS(t *testing.T) {
	e := newBrowserEdge(t, BrowserConfig{})

	resp, _ := e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(appOrigin, "POST"), "")

	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("status %d", resp.StatusCode)
	}
	assertNoCORS(t, resp)
}

func TestOriginListsAreExact(t *testing.T) {
	got, err := ParseOrigins(" https://app.example.com, http://localhost:5173 ,")
	if err != nil || len(got) != 2 || got[0] != appOrigin || got[1] != "http://localhost:5173" {
		t.Fatalf("got %q, %v", got, err)
	}
	for _, bad := range []string{"*", "https://*.example.com", "app.example.com", "https://app.example.com/",
		"https://app.example.com/x", "ftp://app.example.com", "https://App.example.com", "https://u@app.example.com"} {
		if _, err := ParseOrigins(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestBrowserConfigsThatCannotWorkAreRefused(t *testing.T) {
	for _, cfg := range []BrowserConfig{
		{RefreshCookie: true},
		{CORSOrigins: []string{appOrigin}, InsecureDevCookies: true},
		{CORSOrigins: []string{appOrigin}, CORSMaxAge: -time.Second},
		{CORSOrigins: []string{appOrigin}, PresenceCookieDomain: "example.com"},
		{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: ".example.com"},
		{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: "https://example.com"},
		{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: "Example.com"},
		{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: "com"},
		{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: "example.com:443"},
	} {
		if cfg.Check() == nil {
			t.Errorf("%+v accepted", cfg)
		}
	}
	ok := BrowserConfig{CORSOrigins: []string{appOrigin}, RefreshCookie: true, PresenceCookieDomain: "example.com"}
	if err := ok.Check(); err != nil {
		t.Errorf("%+v refused: %v", ok, err)
	}
}

func assertNoCORS(t *testing.T, resp *http.Response) {
	t.Helper()
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			t.Errorf("%s: %q", k, resp.Header.Values(k))
		}
	}
}

// syncBuffer is a log destination the server's goroutines write to while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.FieldsFunc(b.buf.String(), func(r rune) bool { return r == '\n' })
}

func loggedConfig(cfg BrowserConfig) (BrowserConfig, *syncBuffer, *testclock.Clock) {
	out := &syncBuffer{}
	clock := testclock.At(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC))
	cfg.Log = slog.New(slog.NewTextHandler(out, nil))
	cfg.Now = clock.Now
	return cfg, out, clock
}

func TestRefusedOriginsAreLoggedAtMostOncePerOriginAMinute(t *testing.T) {
	cfg, out, clock := loggedConfig(corsConfig())
	e := newBrowserEdge(t, cfg)

	for range 5 {
		e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(otherOrigin, "POST"), "")
	}
	e.call(t, http.MethodOptions, "/v1/auth/refresh", preflight("https://third.example.org", "POST"), "")
	e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(appOrigin, "POST"), "")
	clock.Advance(59 * time.Second)
	e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(otherOrigin, "POST"), "")
	first := out.lines()
	clock.Advance(2 * time.Second)
	e.call(t, http.MethodOptions, "/v1/auth/signin", preflight(otherOrigin, "POST"), "")

	if len(first) != 2 || !strings.Contains(first[0], `origin=https://evil.example.net`) ||
		!strings.Contains(first[0], "origin not allowed") || !strings.Contains(first[0], `call="preflight POST"`) ||
		!strings.Contains(first[0], "path=/v1/auth/signin") || !strings.Contains(first[1], "origin=https://third.example.org") {
		t.Fatalf("lines in the first minute: %q", first)
	}
	if all := out.lines(); len(all) != 3 || !strings.Contains(all[2], "origin=https://evil.example.net") {
		t.Errorf("after a minute: %q", all)
	}
}

func TestAFloodOfForgedOriginsLogsABoundedNumberOfLines(t *testing.T) {
	cfg, out, clock := loggedConfig(corsConfig())
	refusals := newRefusalLog(cfg)
	r := httptest.NewRequest(http.MethodOptions, "/v1/auth/signin", nil)

	for i := range refusalLogSize + 50 {
		r.Header.Set("Origin", "https://"+strings.Repeat("x", i%7)+strconv.Itoa(i)+".example")
		refusals.refused(r, "preflight POST")
	}
	clock.Advance(time.Minute)
	r.Header.Set("Origin", "https://later.example")
	refusals.refused(r, "preflight POST")

	if n := len(out.lines()); n != refusalLogSize+1 {
		t.Errorf("%d lines, want %d", n, refusalLogSize+1)
	}
}

func TestTheOriginCheckTellsAnyPageWhetherItsOriginIsListed(t *testing.T) {
	cfg, out, _ := loggedConfig(corsConfig())
	listed := newBrowserEdge(t, cfg)
	bare := newBrowserEdge(t, BrowserConfig{})
	cases := []struct {
		edge   *browserEdge
		origin string
		want   string
	}{
		{listed, appOrigin, `{"origin":"https://app.example.com","allowed":true}`},
		{listed, otherOrigin, `{"origin":"https://evil.example.net","allowed":false}`},
		{bare, appOrigin, `{"origin":"https://app.example.com","allowed":false}`},
	}
	for _, c := range cases {
		resp, body := c.edge.call(t, http.MethodGet, "/v1/auth/origin-check", http.Header{"Origin": {c.origin}}, "")

		if resp.StatusCode != http.StatusOK || strings.TrimSpace(body) != c.want {
			t.Errorf("%s: status %d body %s", c.origin, resp.StatusCode, body)
		}
		if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Access-Control-Allow-Credentials") != "" ||
			resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: headers %v", c.origin, resp.Header)
		}
	}
	if lines := out.lines(); len(lines) != 1 || !strings.Contains(lines[0], `call="origin check"`) {
		t.Errorf("log %q", lines)
	}
	resp, _ := listed.call(t, http.MethodPost, "/v1/auth/origin-check", http.Header{"Origin": {appOrigin}}, "{}")
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: status %d", resp.StatusCode)
	}
}
