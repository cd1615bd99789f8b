//go:build authsvc

package oauth

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authsvc/authsvc/gateway/internal/edge"
	"github.com/authsvc/authsvc/gateway/verify/authsvctest"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
)

const patience = 30 * time.Second

// gateway is the gateway's whole HTTP surface, in-process, in front of a
// real authsvc whose issuer is the gateway's own URL.
type gateway struct {
	url      string
	server   *authsvctest.Server
	settings *Settings
}

// startGateway starts authsvc and a gateway in front of it; with watch, the
// gateway verifies tokens itself (once current), without, it forwards all.
func TestValidateIsForwardedWhileTheVerifierIsStaleAndAnsweredLocallyOnceCurrent(t *testing.T) {
	server := authsvctest.Start(t, nil)
	clock := testclock.At(time.Unix(1000, 0))
	g := frontGatewayWith(t, true, server, "authsvc", listen(t), func(s *Settings) { s.monotonic = clock.Now })
	user := server.SignIn(t)
	auth := g.settings.built

	current := g.validate(t, user.GetAccessToken())
	localBefore, forwardedBefore := auth.local.Load(), auth.forwarded.Load()
	var stale answer
	for attempt := 0; auth.forwarded.Load() == 0; attempt++ {
		if attempt == 20 { // each try loses only to a heartbeat landing in between
			t.Fatal("never forwarded while the feed was stale")
		}
		clock.Advance(g.settings.MaxStaleness + time.Millisecond) // no word from the feed for too long
		stale = g.validate(t, user.GetAccessToken())
	}
	for deadline := time.Now().Add(patience); !auth.v.Current(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) { // the next heartbeat makes it current again
			t.Fatal("the verifier did not get current again")
		}
	}
	localAfter := auth.local.Load()
	again := g.validate(t, user.GetAccessToken())

	if current.Status != 200 || !reflect.DeepEqual(current, stale) || !reflect.DeepEqual(current, again) {
		t.Errorf("current %+v, stale %+v, again %+v", current, stale, again)
	}
	if localBefore != 1 || forwardedBefore != 0 || auth.local.Load() != localAfter+1 {
		t.Errorf("answered locally %d before, %d after; forwarded %d before", localBefore, auth.local.Load()-localAfter, forwardedBefore)
	}
}

func startGateway(t *testing.T, watch bool) *gateway {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String()
	return frontGateway(t, watch, authsvctest.Start(t, map[string]string{"AUTHSVC_ISSUER": issuer}), issuer, ln)
}

// frontGateway puts a gateway listening on ln in front of server, whose issuer is issuer.
func frontGateway(t *testing.T, watch bool, server *authsvctest.Server, issuer string, ln net.Listener) *gateway {
	t.Helper()
	return frontGatewayWith(t, watch, server, issuer, ln, func(*Settings) {})
}

// frontGatewayWith is frontGateway with change applied to its settings.
func frontGatewayWith(t *testing.T, watch bool, server *authsvctest.Server, issuer string, ln net.Listener, change func(*Settings)) *gateway {
	t.Helper()
	s := &Settings{Issuer: issuer, Audience: "authsvc", Leeway: 30 * time.Second,
		AccessTokenTTL: 900 * time.Second, MaxStaleness: 5 * time.Second,
		Algorithms: []string{"ES256", "EdDSA", "RS256"}, ExtAuthzListen: "127.0.0.1:0"}
	if watch {
		s.WatchEmail = server.AddUser(t, "authsvc.revocations")
		s.WatchPasswordFile = filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(s.WatchPasswordFile, []byte(authsvctest.Password+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	change(s)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	handler, err := edge.NewHandler(ctx, server.Dial(t), edge.Config{Timeout: patience, JWKSMaxAge: time.Minute, Extend: s.Extend})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: handler}}
	srv.Start()
	t.Cleanup(srv.Close)
	if watch {
		deadline := time.Now().Add(patience)
		for !s.built.v.Current() {
			if time.Now().After(deadline) {
				t.Fatal("the gateway's verifier did not get current")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return &gateway{url: srv.URL, server: server, settings: s}
}

type answer struct {
	Status    int
	Challenge string
	Body      any
}

func (g *gateway) do(t *testing.T, method, path, bearer, contentType, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, g.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{Status: resp.StatusCode, Challenge: resp.Header.Get("WWW-Authenticate")}
	if err := json.Unmarshal(raw, &a.Body); err != nil {
		t.Fatalf("%s %s: %d %q is not JSON", method, path, resp.StatusCode, raw)
	}
	return a
}

func (g *gateway) validate(t *testing.T, bearer string) answer {
	return g.do(t, http.MethodPost, "/v1/auth/validate", bearer, "application/json", "{}")
}

func TestValidateAtTheEdgeAnswersAsAuthsvcDoesAndFollowsRevocations(t *testing.T) {
	server := authsvctest.Start(t, nil)
	edgeGW := frontGateway(t, true, server, "authsvc", listen(t))
	forwarding := frontGateway(t, false, server, "authsvc", listen(t))
	user := server.SignIn(t)
	other := server.SignIn(t)
	tokens := map[string]string{"valid": user.GetAccessToken(), "missing": "", "garbage": "abc.def.ghi",
		"bad signature": user.GetAccessToken()[:len(user.GetAccessToken())-4] + "AAAA"}

	for name, token := range tokens {
		local, remote := edgeGW.validate(t, token), forwarding.validate(t, token)
		if !reflect.DeepEqual(local, remote) {
			t.Errorf("%s: at the edge %+v, from authsvc %+v", name, local, remote)
		}
	}
	answeredLocally := edgeGW.settings.built.local.Load()
	if _, err := edgeGW.server.Auth.Revoke(context.Background(), &authsvcv1.RevokeRequest{Token: other.GetAccessToken()}); err != nil {
		t.Fatal(err)
	}
	var revoked answer
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if revoked = edgeGW.validate(t, other.GetAccessToken()); revoked.Status != http.StatusOK {
			break
		}
	}

	if answeredLocally != int64(len(tokens)) || edgeGW.settings.built.forwarded.Load() != 0 {
		t.Errorf("answered at the edge %d, forwarded %d", answeredLocally, edgeGW.settings.built.forwarded.Load())
	}
	if revoked.Status != http.StatusUnauthorized || !strings.Contains(revoked.Challenge, `error="invalid_token"`) ||
		!strings.Contains(mustJSON(revoked.Body), `"reason":"TOKEN_REVOKED"`) {
		t.Errorf("revoked: %+v", revoked)
	}
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

func mustJSON(v any) string {
	raw, _ := json.Marshal(v)
	return string(raw)
}

func TestUserinfoAnswersTheClaimsAtTheEdgeAndForwarded(t *testing.T) {
	for _, watch := range []bool{true, false} {
		g := startGateway(t, watch)
		user := g.server.SignIn(t, "orders.read")

		ok := g.do(t, http.MethodGet, UserinfoPath, user.GetAccessToken(), "", "")
		refused := g.do(t, http.MethodGet, UserinfoPath, "", "", "")

		body, _ := ok.Body.(map[string]any)
		if ok.Status != 200 || body["sub"] != user.GetUserId() || body["sid"] != user.GetSessionId() || body["scope"] != "orders.read" {
			t.Errorf("watch %v: %+v", watch, ok)
		}
		email, _ := body["email"].(string)
		_, phone := body["phone_number"]
		_, username := body["preferred_username"]
		if !strings.HasSuffix(email, "@example.com") || body["email_verified"] != true || phone || username {
			t.Errorf("watch %v, profile: %+v", watch, body)
		}
		if refused.Status != 401 || refused.Challenge != `Bearer realm="authsvc"` {
			t.Errorf("watch %v, no token: %+v", watch, refused)
		}
	}
}

func TestUserinfoAnswersAProfileTheTokenCarriesAtTheEdge(t *testing.T) {
	ln := listen(t)
	issuer := "http://" + ln.Addr().String()
	server := authsvctest.Start(t, map[string]string{"AUTHSVC_ISSUER": issuer, "AUTHSVC_ACCESS_TOKEN_PROFILE": "true"})
	g := frontGateway(t, true, server, issuer, ln)
	user := server.SignIn(t)
	before := g.settings.built.forwarded.Load()

	ok := g.do(t, http.MethodGet, UserinfoPath, user.GetAccessToken(), "", "")

	body, _ := ok.Body.(map[string]any)
	email, _ := body["email"].(string)
	if ok.Status != 200 || body["sub"] != user.GetUserId() || !strings.HasSuffix(email, "@example.com") || body["email_verified"] != true {
		t.Errorf("%+v", ok)
	}
	if forwarded := g.settings.built.forwarded.Load() - before; forwarded != 0 {
		t.Errorf("forwarded %d userinfo calls to authsvc", forwarded)
	}
}

func TestGoOIDCDiscoversTheIssuerAndVerifiesItsTokens(t *testing.T) {
	g := startGateway(t, true)
	user := g.server.SignIn(t)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()

	provider, err := oidc.NewProvider(ctx, g.url)
	if err != nil {
		t.Fatal(err)
	}
	token, err := provider.Verifier(&oidc.Config{ClientID: "authsvc", SupportedSigningAlgs: []string{"ES256"}}).
		Verify(ctx, user.GetAccessToken())
	rfc8414 := g.do(t, http.MethodGet, RFC8414Path, "", "", "")
	oidcDoc := g.do(t, http.MethodGet, OIDCPath, "", "", "")

	if err != nil || token.Subject != user.GetUserId() {
		t.Fatalf("go-oidc: %v", err)
	}
	doc, _ := oidcDoc.Body.(map[string]any)
	jwks, jwksErr := g.server.Auth.GetJwks(ctx, &authsvcv1.GetJwksRequest{})
	if jwksErr != nil {
		t.Fatal(jwksErr)
	}
	if got, want := mustJSON(doc["id_token_signing_alg_values_supported"]), mustJSON(signingAlgorithms(jwks.GetKeys())); got != want || want == "[]" {
		t.Errorf("algorithms %s, the key set's %s", got, want)
	}
	if !reflect.DeepEqual(rfc8414, oidcDoc) || doc["issuer"] != g.url ||
		doc["introspection_endpoint"] != g.url+IntrospectPath || doc["jwks_uri"] != g.url+"/.well-known/jwks.json" {
		t.Errorf("metadata: %+v / %+v", rfc8414, oidcDoc)
	}
}

func TestIntrospectionNeedsTheScopeAndAnswersRFC7662(t *testing.T) {
	g := startGateway(t, true)
	caller := g.server.SignIn(t, IntrospectScope)
	plain := g.server.SignIn(t)
	form := func(token string) string { return url.Values{"token": {token}}.Encode() }
	const formType = "application/x-www-form-urlencoded"

	active := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType, form(plain.GetAccessToken()))
	garbage := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType, form("abc"))
	refresh := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType,
		url.Values{"token": {plain.GetRefreshToken()}, "token_type_hint": {"refresh_token"}}.Encode())
	noCaller := g.do(t, http.MethodPost, IntrospectPath, "", formType, form(plain.GetAccessToken()))
	noScope := g.do(t, http.MethodPost, IntrospectPath, plain.GetAccessToken(), formType, form(plain.GetAccessToken()))
	noToken := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType, "")
	twice := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType, "token=a&token=b")
	if _, err := g.server.Auth.Refresh(context.Background(), &authsvcv1.RefreshRequest{RefreshToken: plain.GetRefreshToken()}); err != nil {
		t.Fatal(err)
	}
	spent := g.do(t, http.MethodPost, IntrospectPath, caller.GetAccessToken(), formType, form(plain.GetRefreshToken()))

	body, _ := active.Body.(map[string]any)
	if active.Status != 200 || body["active"] != true || body["sub"] != plain.GetUserId() ||
		body["sid"] != plain.GetSessionId() || body["iss"] != g.url || body["token_type"] != "Bearer" {
		t.Errorf("active: %+v", active)
	}
	for name, a := range map[string]answer{"garbage": garbage, "spent refresh token": spent} {
		if a.Status != 200 || !reflect.DeepEqual(a.Body, map[string]any{"active": false}) {
			t.Errorf("%s: %+v", name, a)
		}
	}
	if r, _ := refresh.Body.(map[string]any); refresh.Status != 200 || r["active"] != true || r["sid"] != plain.GetSessionId() {
		t.Errorf("refresh token: %+v", refresh)
	}
	if noCaller.Status != 401 || noCaller.Challenge != `Bearer realm="authsvc"` {
		t.Errorf("no caller: %+v", noCaller)
	}
	if noScope.Status != 403 || !strings.Contains(noScope.Challenge, `scope="authsvc.introspect"`) {
		t.Errorf("no scope: %+v", noScope)
	}
	for name, a := range map[string]answer{"no token": noToken, "token twice": twice} {
		if a.Status != 400 || a.Body.(map[string]any)["error"] != "invalid_request" {
			t.Errorf("%s: %+v", name, a)
		}
	}
}

func TestExtAuthzAllowsWithIdentityHeadersAndDeniesWithTheChallenge(t *testing.T) {
	g := startGateway(t, true)
	user := g.server.SignIn(t, "a", "b")
	conn, err := grpc.NewClient(g.settings.extAuthzAddr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv3.NewAuthorizationClient(conn)
	check := func(headers map[string]string) *authv3.CheckResponse {
		resp, err := client.Check(context.Background(), &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
			Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{Headers: headers}}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}

	allowed := check(map[string]string{"authorization": "Bearer " + user.GetAccessToken(), UserIDHeader: "forged"})
	if _, err := g.server.Auth.Revoke(context.Background(), &authsvcv1.RevokeRequest{Token: user.GetAccessToken()}); err != nil {
		t.Fatal(err)
	}
	var revoked *authv3.CheckResponse
	for deadline := time.Now().Add(patience); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if revoked = check(map[string]string{"authorization": "Bearer " + user.GetAccessToken()}); revoked.GetStatus().GetCode() != 0 {
			break
		}
	}
	missing := check(map[string]string{})
	doubled := check(map[string]string{"authorization": "Bearer a,Bearer b"})

	got := map[string]string{}
	for _, h := range allowed.GetOkResponse().GetHeaders() {
		if h.GetAppendAction() != corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD {
			t.Errorf("%s is appended, not overwritten", h.GetHeader().GetKey())
		}
		got[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
	}
	want := map[string]string{UserIDHeader: user.GetUserId(), SessionIDHeader: user.GetSessionId(), ScopesHeader: "a b"}
	if allowed.GetStatus().GetCode() != int32(codes.OK) || !reflect.DeepEqual(got, want) {
		t.Errorf("allowed: %v", allowed)
	}
	cases := map[string]struct {
		resp      *authv3.CheckResponse
		challenge string
		reason    string
	}{
		"revoked": {revoked, `Bearer realm="authsvc", error="invalid_token", error_description="The access token's session was revoked"`, "TOKEN_REVOKED"},
		"missing": {missing, `Bearer realm="authsvc"`, "TOKEN_MISSING"},
		"doubled": {doubled, `Bearer realm="authsvc", error="invalid_request", error_description="The authorization metadata must hold exactly one Bearer token"`, "TOKEN_INVALID"},
	}
	for name, c := range cases {
		d := c.resp.GetDeniedResponse()
		headers := map[string]string{}
		for _, h := range d.GetHeaders() {
			headers[h.GetHeader().GetKey()] = h.GetHeader().GetValue()
		}
		if c.resp.GetStatus().GetCode() != int32(codes.Unauthenticated) || d.GetStatus().GetCode() != 401 ||
			headers["www-authenticate"] != c.challenge || !strings.Contains(d.GetBody(), `"reason":"`+c.reason+`"`) {
			t.Errorf("%s: %v", name, c.resp)
		}
	}
}
