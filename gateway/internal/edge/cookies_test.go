package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

func cookieConfig() BrowserConfig {
	cfg := corsConfig()
	cfg.RefreshCookie = true
	return cfg
}

func fromApp(extra ...string) http.Header {
	h := http.Header{"Origin": {appOrigin}}
	for i := 0; i+1 < len(extra); i += 2 {
		h.Add(extra[i], extra[i+1])
	}
	return h
}

func refreshCookieOf(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	var found *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == secureCookieName || c.Name == insecureCookieName {
			if found != nil {
				t.Fatalf("two refresh cookies: %q", resp.Header.Values("Set-Cookie"))
			}
			found = c
		}
	}
	if found == nil {
		t.Fatalf("no refresh cookie in %q", resp.Header.Values("Set-Cookie"))
	}
	return found
}

func TestSignInFromABrowserPutsTheRefreshTokenInAHostCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	resp, body := e.call(t, http.MethodPost, "/v1/auth/signin", fromApp(), `{"email":"a@example.com","password":"x"}`)

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	c := refreshCookieOf(t, resp)
	if c.Name != "__Host-authsvc_refresh" || c.Value != "rt-1" || c.Path != "/" || c.Domain != "" ||
		!c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.MaxAge != 3600 {
		t.Errorf("cookie %+v", c)
	}
	const want = `{"access_token":"at-1","token_type":"Bearer","expires_in":900,"refresh_expires_in":3600,"session_id":"s1","user_id":"u1","device_token":""}`
	if body != want {
		t.Errorf("body %s\nwant %s", body, want)
	}
}

func TestCallsWithoutOriginKeepBodyMode(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	resp, body := e.call(t, http.MethodPost, "/v1/auth/signin", nil, `{"email":"a@example.com","password":"x"}`)

	if len(resp.Header.Values("Set-Cookie")) != 0 {
		t.Errorf("Set-Cookie %q", resp.Header.Values("Set-Cookie"))
	}
	if !strings.Contains(body, `"refresh_token":"rt-1"`) {
		t.Errorf("body %s", body)
	}
}

func TestRefreshReadsTheCookieWhenTheBodyHasNoToken(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	for _, body := range []string{"", "{}", `{"refresh_token":""}`, `{"refreshToken":null}`} {
		e.fake.issued = 1
		resp, answer := e.call(t, http.MethodPost, "/v1/auth/refresh",
			fromApp("Cookie", "__Host-authsvc_refresh=rt-1"), body)

		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %d %s", body, resp.StatusCode, answer)
		}
		if c := refreshCookieOf(t, resp); c.Value != "rt-2" || c.MaxAge != 1800 {
			t.Errorf("%q: cookie %+v", body, c)
		}
		if strings.Contains(answer, "refresh_token") {
			t.Errorf("%q: body %s", body, answer)
		}
	}
	if got := strings.Join(e.fake.refreshed, ","); got != "rt-1,rt-1,rt-1,rt-1" {
		t.Errorf("authsvc saw %q", got)
	}
}

func TestATokenInTheBodyWinsOverTheCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	resp, _ := e.call(t, http.MethodPost, "/v1/auth/refresh",
		fromApp("Cookie", "__Host-authsvc_refresh=rt-cookie"), `{"refresh_token":"rt-body"}`)

	if resp.StatusCode != http.StatusOK || strings.Join(e.fake.refreshed, ",") != "rt-body" {
		t.Errorf("status %d, authsvc saw %q", resp.StatusCode, e.fake.refreshed)
	}
}

func TestARefusedRefreshClearsTheCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())
	e.fake.refreshErr = status.Error(codes.Unauthenticated, "refresh token is not valid")

	resp, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp("Cookie", "__Host-authsvc_refresh=rt-old"), "{}")

	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if c := refreshCookieOf(t, resp); c.Value != "" || c.MaxAge != -1 || c.Path != "/" || !c.Secure {
		t.Errorf("cookie %+v", c)
	}
}

func TestSignOutRevokesTheCookiesTokenAndClearsIt(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	resp, body := e.call(t, http.MethodPost, "/v1/auth/revoke", fromApp("Cookie", "__Host-authsvc_refresh=rt-7"), "{}")

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d %s", resp.StatusCode, body)
	}
	if len(e.fake.revoked) != 1 || e.fake.revoked[0].GetToken() != "rt-7" ||
		e.fake.revoked[0].GetTokenTypeHint() != authsvcv1.TokenTypeHint_TOKEN_TYPE_HINT_REFRESH_TOKEN {
		t.Errorf("authsvc saw %v", e.fake.revoked)
	}
	if c := refreshCookieOf(t, resp); c.Value != "" || c.MaxAge != -1 {
		t.Errorf("cookie %+v", c)
	}
}

func TestCookieCallsFromUnlistedOrWithoutOriginsAreRefused(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())
	cases := []http.Header{
		{"Origin": {otherOrigin}, "Cookie": {"__Host-authsvc_refresh=rt-1"}},
		{"Origin": {"null"}, "Cookie": {"__Host-authsvc_refresh=rt-1"}},
		{"Origin": {appOrigin, otherOrigin}, "Cookie": {"__Host-authsvc_refresh=rt-1"}},
	}
	for _, h := range cases {
		for _, path := range []string{"/v1/auth/refresh", "/v1/auth/revoke", "/v1/auth/signin"} {
			resp, body := e.call(t, http.MethodPost, path, h, "{}")

			if resp.StatusCode != http.StatusForbidden || parseErrorBody(t, []byte(body)).reason() != "ORIGIN_NOT_ALLOWED" {
				t.Errorf("%s %v: status %d %s", path, h, resp.StatusCode, body)
			}
			if len(resp.Header.Values("Set-Cookie")) != 0 {
				t.Errorf("%s: Set-Cookie %q", path, resp.Header.Values("Set-Cookie"))
			}
		}
	}
	if len(e.fake.refreshed) != 0 || len(e.fake.revoked) != 0 {
		t.Errorf("authsvc reached: %q %v", e.fake.refreshed, e.fake.revoked)
	}
	// Without Origin the cookie is never read: the body has no token.
	resp, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", http.Header{"Cookie": {"__Host-authsvc_refresh=rt-1"}}, "{}")
	if resp.StatusCode != http.StatusOK || strings.Join(e.fake.refreshed, ",") != "" {
		t.Errorf("status %d, authsvc saw %q", resp.StatusCode, e.fake.refreshed)
	}
}

func TestAPlainFormPostCannotSpendTheCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	for _, ct := range []string{"application/x-www-form-urlencoded", "text/plain", "multipart/form-data; boundary=x"} {
		resp, _ := e.call(t, http.MethodPost, "/v1/auth/refresh",
			fromApp("Cookie", "__Host-authsvc_refresh=rt-1", "Content-Type", ct), "refresh_token=")

		if resp.StatusCode != http.StatusUnsupportedMediaType {
			t.Errorf("%s: status %d", ct, resp.StatusCode)
		}
	}
	if len(e.fake.refreshed) != 0 {
		t.Errorf("authsvc saw %q", e.fake.refreshed)
	}
}

func TestInsecureDevCookiesArePathScopedAndNotSecure(t *testing.T) {
	cfg := cookieConfig()
	cfg.InsecureDevCookies = true
	e := newBrowserEdge(t, cfg)

	resp, _ := e.call(t, http.MethodPost, "/v1/auth/signin", fromApp(), `{"username":"a","password":"x"}`)
	c := refreshCookieOf(t, resp)
	again, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp("Cookie", "authsvc_refresh="+c.Value), "{}")

	if c.Name != "authsvc_refresh" || c.Path != "/v1/auth/" || c.Secure || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v", c)
	}
	if again.StatusCode != http.StatusOK || strings.Join(e.fake.refreshed, ",") != "rt-1" {
		t.Errorf("status %d, authsvc saw %q", again.StatusCode, e.fake.refreshed)
	}
}

func TestTakeMemberKeepsTheOtherMembersInOrder(t *testing.T) {
	value, rest, ok := takeMember([]byte(`{"b":1,"refresh_token":"x","a":{"c":[1]}}`), "refresh_token")

	if !ok || value != "x" || string(rest) != `{"b":1,"a":{"c":[1]}}` {
		t.Errorf("%v %q %s", ok, value, rest)
	}
	if _, _, ok := takeMember([]byte(`{"refresh_token":5}`), "refresh_token"); ok {
		t.Error("a number taken as a token")
	}
	var v any
	if json.Unmarshal(rest, &v) != nil {
		t.Error("rest is not JSON")
	}
}

func presenceCookieOf(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, c := range resp.Cookies() {
		if c.Name == "authsvc_session" {
			return c
		}
	}
	t.Fatalf("no presence cookie in %q", resp.Header.Values("Set-Cookie"))
	return nil
}

func TestAPresenceCookieScriptsCanReadGoesWithTheRefreshCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())

	signedIn, _ := e.call(t, http.MethodPost, "/v1/auth/signin", fromApp(), `{"email":"a@example.com","password":"x"}`)
	refreshed, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp("Cookie", "__Host-authsvc_refresh=rt-1"), "{}")
	revoked, _ := e.call(t, http.MethodPost, "/v1/auth/revoke", fromApp("Cookie", "__Host-authsvc_refresh=rt-2"), "{}")

	if c := presenceCookieOf(t, signedIn); c.Value != "1" || c.Path != "/" || c.Domain != "" || c.HttpOnly ||
		!c.Secure || c.SameSite != http.SameSiteLaxMode || c.MaxAge != 3600 {
		t.Errorf("after sign-in: %+v", c)
	}
	if c := presenceCookieOf(t, refreshed); c.Value != "1" || c.MaxAge != 1800 {
		t.Errorf("after refresh: %+v", c)
	}
	if c := presenceCookieOf(t, revoked); c.Value != "" || c.MaxAge != -1 || c.Path != "/" {
		t.Errorf("after sign-out: %+v", c)
	}
}

func TestARefusedRefreshClearsThePresenceCookie(t *testing.T) {
	e := newBrowserEdge(t, cookieConfig())
	e.fake.refreshErr = status.Error(codes.Unauthenticated, "refresh token is not valid")

	dead, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp("Cookie", "__Host-authsvc_refresh=rt-old"), "{}")
	orphan, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp("Cookie", "authsvc_session=1"), "{}")
	none, _ := e.call(t, http.MethodPost, "/v1/auth/refresh", fromApp(), "{}")

	if c := presenceCookieOf(t, dead); c.Value != "" || c.MaxAge != -1 {
		t.Errorf("dead refresh token: %+v", c)
	}
	// A presence cookie that outlived its refresh cookie is cleared by the refresh it caused.
	if c := presenceCookieOf(t, orphan); c.Value != "" || c.MaxAge != -1 || orphan.StatusCode == http.StatusOK {
		t.Errorf("no refresh cookie: status %d, %+v", orphan.StatusCode, c)
	}
	if got := none.Header.Values("Set-Cookie"); len(got) != 0 {
		t.Errorf("no cookies at all: Set-Cookie %q", got)
	}
}

func TestThePresenceCookieTakesTheConfiguredDomainAndDevMode(t *testing.T) {
	cfg := cookieConfig()
	cfg.PresenceCookieDomain = "example.com"
	shared := newBrowserEdge(t, cfg)
	dev := cookieConfig()
	dev.InsecureDevCookies = true
	local := newBrowserEdge(t, dev)

	sharedResp, _ := shared.call(t, http.MethodPost, "/v1/auth/signin", fromApp(), `{"email":"a@example.com","password":"x"}`)
	localResp, _ := local.call(t, http.MethodPost, "/v1/auth/signin", fromApp(), `{"email":"a@example.com","password":"x"}`)

	if c := presenceCookieOf(t, sharedResp); c.Domain != "example.com" || !c.Secure {
		t.Errorf("with a domain: %+v", c)
	}
	if c := refreshCookieOf(t, sharedResp); c.Domain != "" {
		t.Errorf("the refresh cookie stays host-only: %+v", c)
	}
	// The refresh cookie is scoped to /v1/auth/ in dev mode; the presence cookie must
	// still reach the page's own paths.
	if c := presenceCookieOf(t, localResp); c.Secure || c.Path != "/" || c.Value != "1" {
		t.Errorf("dev mode: %+v", c)
	}
}
