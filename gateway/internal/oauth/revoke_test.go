package oauth

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/authsvc/authsvc/gateway/internal/edge"
	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// fakeAuthsvc is a gRPC authsvc that records Revoke calls and serves a
// JWKS the test sets; err, when set, is every call's answer.
type fakeAuthsvc struct {
	authsvcv1.UnimplementedAuthServer
	mu       sync.Mutex
	revoked  []*authsvcv1.RevokeRequest
	metadata []metadata.MD
	keys     []*authsvcv1.Jwk
	rules    *authsvcv1.TokenRules // published with the keys; nil: none
	jwksSeen int
	err      error
}

func (f *fakeAuthsvc) Revoke(ctx context.Context, req *authsvcv1.RevokeRequest) (*authsvcv1.RevokeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	md, _ := metadata.FromIncomingContext(ctx)
	f.revoked, f.metadata = append(f.revoked, req), append(f.metadata, md)
	if f.err != nil {
		return nil, f.err
	}
	return &authsvcv1.RevokeResponse{}, nil
}

func (f *fakeAuthsvc) GetJwks(context.Context, *authsvcv1.GetJwksRequest) (*authsvcv1.GetJwksResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jwksSeen++
	if f.err != nil {
		return nil, f.err
	}
	return &authsvcv1.GetJwksResponse{Keys: f.keys, Rules: f.rules}, nil
}

func (f *fakeAuthsvc) calls() ([]*authsvcv1.RevokeRequest, []metadata.MD) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.revoked), slices.Clone(f.metadata)
}

func (f *fakeAuthsvc) set(keys []*authsvcv1.Jwk, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys, f.err = keys, err
}

// fakeEdge is the gateway's whole HTTP surface in front of a fakeAuthsvc.
type fakeEdge struct {
	url      string
	fake     *fakeAuthsvc
	settings *Settings
}

func startFakeEdge(t *testing.T, browser edge.BrowserConfig) *fakeEdge {
	t.Helper()
	return startFakeEdgeWith(t, browser, nil, func(*Settings) {})
}

// startFakeEdgeWith is startFakeEdge with authsvc publishing rules and
// change applied to the settings before the gateway starts.
func startFakeEdgeWith(t *testing.T, browser edge.BrowserConfig, rules *authsvcv1.TokenRules, change func(*Settings)) *fakeEdge {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeAuthsvc{keys: []*authsvcv1.Jwk{{Kty: "EC", Crv: "P-256", Kid: "k1", Use: "sig", Alg: "ES256"}}, rules: rules}
	srv := grpc.NewServer()
	authsvcv1.RegisterAuthServer(srv, fake)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	front := httptest.NewUnstartedServer(nil)
	s := &Settings{Issuer: "http://" + front.Listener.Addr().String(), Audience: "authsvc",
		Algorithms: []string{"ES256"}, KeySetMaxAge: time.Minute}
	change(s)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler, err := edge.NewHandler(ctx, conn, edge.Config{Timeout: 10 * time.Second, JWKSMaxAge: time.Minute,
		Browser: browser, Extend: s.Extend})
	if err != nil {
		t.Fatal(err)
	}
	front.Config.Handler = handler
	front.Start()
	t.Cleanup(front.Close)
	return &fakeEdge{url: front.URL, fake: fake, settings: s}
}

type reply struct {
	status int
	header http.Header
	body   string
}

// post sends body with headers given as name, value pairs.
func (e *fakeEdge) post(t *testing.T, path, body string, headers ...string) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(raw)}
}

func form(values url.Values) (string, string, string) {
	return values.Encode(), "Content-Type", formType
}

func TestRevocationTakesRFC7009FormAsTheJSONRevokeIsTaken(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})
	hints := map[string]authsvcv1.TokenTypeHint{
		"":              authsvcv1.TokenTypeHint_TOKEN_TYPE_HINT_UNSPECIFIED,
		"access_token":  authsvcv1.TokenTypeHint_TOKEN_TYPE_HINT_ACCESS_TOKEN,
		"refresh_token": authsvcv1.TokenTypeHint_TOKEN_TYPE_HINT_REFRESH_TOKEN,
	}

	asJSON := e.post(t, RevokePath, `{"token":"tok-json"}`, "Content-Type", "application/json", "User-Agent", "probe/1")
	replies := map[string]reply{}
	for hint := range hints {
		values := url.Values{"token": {"tok" + hint}}
		if hint != "" {
			values.Set("token_type_hint", hint)
		}
		body, name, value := form(values)
		replies[hint] = e.post(t, RevokePath, body, name, value, "User-Agent", "probe/1")
	}
	charset := e.post(t, RevokePath, "token=tok-charset", "Content-Type", formType+"; charset=UTF-8")

	calls, md := e.fake.calls()
	if asJSON.status != 200 || len(calls) != 5 || calls[0].GetToken() != "tok-json" {
		t.Fatalf("JSON revoke %+v; authsvc saw %v", asJSON, calls)
	}
	for hint, want := range hints {
		r := replies[hint]
		if r.status != 200 || r.body != "{}" || r.header.Get("Content-Type") != "application/json" {
			t.Errorf("hint %q: %+v", hint, r)
		}
		i := slices.IndexFunc(calls, func(c *authsvcv1.RevokeRequest) bool { return c.GetToken() == "tok"+hint })
		if i < 0 || calls[i].GetTokenTypeHint() != want || calls[i].GetAllSessions() {
			t.Errorf("hint %q: authsvc saw %v", hint, calls)
			continue
		}
		// The same metadata as the JSON call: the client's user agent and address.
		if got, json := md[i].Get("x-forwarded-user-agent"), md[0].Get("x-forwarded-user-agent"); !slices.Equal(got, json) || len(got) != 1 {
			t.Errorf("hint %q: x-forwarded-user-agent %q, JSON call's %q", hint, got, json)
		}
		if got := md[i].Get("x-forwarded-for"); len(got) != 1 || !slices.Equal(got, md[0].Get("x-forwarded-for")) {
			t.Errorf("hint %q: x-forwarded-for %q", hint, got)
		}
	}
	if charset.status != 200 || calls[4].GetToken() != "tok-charset" {
		t.Errorf("with a charset: %+v, authsvc saw %v", charset, calls[4])
	}
}

func TestRevocationRefusesWhatRFC7009Refuses(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})
	cases := map[string]struct {
		body, errorCode string
	}{
		"no token":           {"token_type_hint=refresh_token", "invalid_request"},
		"empty token":        {"token=", "invalid_request"},
		"token twice":        {"token=a&token=b", "invalid_request"},
		"hint twice":         {"token=a&token_type_hint=access_token&token_type_hint=refresh_token", "invalid_request"},
		"unknown hint":       {"token=a&token_type_hint=id_token", "unsupported_token_type"},
		"hint of other case": {"token=a&token_type_hint=Refresh_Token", "unsupported_token_type"},
		"broken form":        {"token=%zz", "invalid_request"},
	}

	for name, c := range cases {
		r := e.post(t, RevokePath, c.body, "Content-Type", formType)

		if r.status != 400 || !strings.Contains(r.body, `"error":"`+c.errorCode+`"`) ||
			r.header.Get("Cache-Control") != "no-store" || strings.Contains(r.body, "zz") {
			t.Errorf("%s: %+v", name, r)
		}
	}
	tooLong := e.post(t, RevokePath, "token="+strings.Repeat("a", verify.MaxTokenLength+1), "Content-Type", formType)
	if tooLong.status != 200 {
		t.Errorf("a token longer than any authsvc issues: %+v", tooLong)
	}
	text := e.post(t, RevokePath, "token=a", "Content-Type", "text/plain")
	if text.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain: %+v", text)
	}
	if calls, _ := e.fake.calls(); len(calls) != 0 {
		t.Errorf("authsvc saw %v", calls)
	}
}

func TestRevocationSaysUnavailableWhenAuthsvcCannotAnswer(t *testing.T) {
	e := startFakeEdge(t, edge.BrowserConfig{})
	e.fake.set(nil, status.Error(codes.Unavailable, "down"))

	r := e.post(t, RevokePath, "token=a", "Content-Type", formType)

	if r.status != http.StatusServiceUnavailable {
		t.Errorf("%+v", r)
	}
}

func TestRevocationFormNeverReadsTheRefreshCookie(t *testing.T) {
	const origin = "https://app.example.com"
	e := startFakeEdge(t, edge.BrowserConfig{CORSOrigins: []string{origin}, RefreshCookie: true})
	cookie := "__Host-authsvc_refresh=rt-cookie"

	named := e.post(t, RevokePath, "token=rt-form&token_type_hint=refresh_token",
		"Content-Type", formType, "Origin", origin, "Cookie", cookie)
	unnamed := e.post(t, RevokePath, "token_type_hint=refresh_token", "Content-Type", formType, "Origin", origin, "Cookie", cookie)
	crossSite := e.post(t, RevokePath, "token=rt-form", "Content-Type", formType, "Origin", "https://evil.example", "Cookie", cookie)
	asJSON := e.post(t, RevokePath, "{}", "Content-Type", "application/json", "Origin", origin, "Cookie", cookie)

	calls, md := e.fake.calls()
	var tokens []string
	for _, c := range calls {
		tokens = append(tokens, c.GetToken())
	}
	if named.status != 200 || named.header.Values("Set-Cookie") != nil {
		t.Errorf("a form naming its token: %+v", named)
	}
	if unnamed.status != 400 || !strings.Contains(unnamed.body, "invalid_request") {
		t.Errorf("a form naming none: %+v", unnamed)
	}
	if crossSite.status != http.StatusForbidden {
		t.Errorf("from an origin not listed: %+v", crossSite)
	}
	// The JSON revoke keeps cookie mode: the cookie's token, and the cookie cleared.
	if asJSON.status != 200 || !strings.Contains(strings.Join(asJSON.header.Values("Set-Cookie"), ";"), "Max-Age=0") {
		t.Errorf("JSON revoke: %+v", asJSON)
	}
	if !slices.Equal(tokens, []string{"rt-form", "rt-cookie"}) {
		t.Errorf("authsvc was asked to revoke %q", tokens)
	}
	for _, m := range md {
		if m.Get("cookie") != nil || m.Get("grpcgateway-cookie") != nil {
			t.Errorf("cookie forwarded: %v", m)
		}
	}
}
