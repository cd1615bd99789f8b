package edge

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"

	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Sign-in with another identity provider, at the HTTP edge:
//
//   - GET /v1/auth/providers/{id}/start?redirect_to=URL calls
//     StartProviderSignIn, sets the flow's binding cookie and answers 302 to
//     the provider. The cookie holds the flow_id (authsvc keeps only its
//     hash), is HttpOnly, SameSite=Lax (the provider's redirect back is a
//     top-level GET navigation, which Lax lets through and a cross-site
//     subrequest does not) and lives as long as the flow. It is named after
//     the flow's state (authsvc_fed_ + the state's first 16 characters, with
//     the __Host- prefix unless --insecure-dev-cookies), so several tabs can
//     sign in at once without overwriting one another's binding.
//   - GET /v1/auth/providers/{id}/callback?state&code&iss (or error) takes
//     the cookie named by the state (none: 401 FEDERATION_FLOW_INVALID,
//     before authsvc is asked), clears it, and calls FinishProviderSignIn
//     with it. authsvc checks everything else (the flow is single use, the
//     binding, iss, the code, the id_token). On success, in cookie mode
//     (--refresh-cookie) the refresh token goes into the refresh cookie as
//     after SignIn, and the answer is 302 to the flow's redirect_to when it
//     has one (authsvc allowed it at start, from AUTHSVC_REDIRECT_ORIGINS;
//     the page then refreshes through the cookie for its access token);
//     otherwise the answer is the JSON token response of SignIn (200). A
//     link flow answers 302 to its redirect_to, or 200 {"linked": true}.
//     Errors are the usual JSON error bodies (MFA_REQUIRED included: the
//     page completes the sign-in with CompleteSignIn).
const (
	flowCookiePrefix = "authsvc_fed_"
	flowCookiePath   = "/v1/auth/providers/"
)

var providerID = regexp.MustCompile(`^[a-z0-9_-]{1,32}$`)

// stateChars is what a state authsvc makes consists of: base64url, the flow sealed in
// it (about 170 characters, plus about 1.4 per character of redirect_to).
var stateChars = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

// maxState is the longest state authsvc reads (its federation.state.MAX_STATE).
const maxState = 4096

// validState is whether state can be one authsvc made: 16 to maxState base64url
// characters (the first 16 name the flow's cookie).
func validState(state string) bool {
	return len(state) >= 16 && len(state) <= maxState && stateChars.MatchString(state)
}

var flowRefused = func() *status.Status {
	st, _ := status.New(codes.Unauthenticated, "The sign-in with the provider is unknown, expired or already used; start again.").
		WithDetails(&errdetails.ErrorInfo{Reason: "FEDERATION_FLOW_INVALID", Domain: "authsvc"})
	return st
}()

type federation struct {
	client authsvcv1.AuthClient
	cookie refreshCookie
	mode   bool // cookie mode (--refresh-cookie)
}

func registerFederation(mux *http.ServeMux, client authsvcv1.AuthClient, cfg BrowserConfig, timeout time.Duration) {
	f := federation{client: client, cookie: newRefreshCookie(cfg.InsecureDevCookies, cfg.PresenceCookieDomain),
		mode: cfg.RefreshCookie}
	mux.Handle("GET /v1/auth/providers/{id}/start", withTimeout(timeout, http.HandlerFunc(f.start)))
	mux.Handle("GET /v1/auth/providers/{id}/callback", withTimeout(timeout, http.HandlerFunc(f.callback)))
}

func (f federation) flowCookie(state string) *http.Cookie {
	c := &http.Cookie{Name: "__Host-" + flowCookiePrefix + state[:16], Path: "/", HttpOnly: true,
		Secure: true, SameSite: http.SameSiteLaxMode}
	if !f.cookie.secure {
		c.Name, c.Path, c.Secure = flowCookiePrefix+state[:16], flowCookiePath, false
	}
	return c
}

func (f federation) start(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !providerID.MatchString(id) {
		writeStatus(w, http.StatusNotFound, status.New(codes.NotFound, "No such identity provider."), "")
		return
	}
	var trailer metadata.MD
	started, err := f.client.StartProviderSignIn(r.Context(), &authsvcv1.StartProviderSignInRequest{
		Provider: id, RedirectTo: r.URL.Query().Get("redirect_to")}, grpc.Trailer(&trailer))
	if err != nil {
		writeUpstreamError(w, err, trailer)
		return
	}
	if !validState(started.GetState()) {
		writeStatus(w, http.StatusBadGateway, status.New(codes.Internal, "Internal error."), "")
		return
	}
	c := f.flowCookie(started.GetState())
	c.Value, c.MaxAge = started.GetFlowId(), int(started.GetExpiresIn())
	http.SetCookie(w, c)
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, started.GetAuthorizationUrl(), http.StatusFound)
}

func (f federation) callback(w http.ResponseWriter, r *http.Request) {
	id, query := r.PathValue("id"), r.URL.Query()
	state := query.Get("state")
	w.Header().Set("Referrer-Policy", "no-referrer")
	if !providerID.MatchString(id) || !validState(state) {
		writeStatus(w, http.StatusUnauthorized, flowRefused, realm)
		return
	}
	cookie := f.flowCookie(state)
	bound, err := r.Cookie(cookie.Name)
	if err != nil || bound.Value == "" {
		writeStatus(w, http.StatusUnauthorized, flowRefused, realm)
		return
	}
	cookie.MaxAge = -1 // the flow is spent whatever authsvc answers
	http.SetCookie(w, cookie)
	var trailer metadata.MD
	done, err := f.client.FinishProviderSignIn(r.Context(), &authsvcv1.FinishProviderSignInRequest{
		Provider: id, FlowId: bound.Value, State: state, Code: query.Get("code"),
		Iss: query.Get("iss"), Error: query.Get("error")}, grpc.Trailer(&trailer))
	if err != nil {
		writeUpstreamError(w, err, trailer)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if done.GetLinked() {
		if done.GetRedirectTo() != "" {
			http.Redirect(w, r, done.GetRedirectTo(), http.StatusFound)
			return
		}
		writeJSON(w, map[string]any{"linked": true})
		return
	}
	answer := map[string]any{
		"access_token": done.GetAccessToken(), "token_type": done.GetTokenType(),
		"expires_in": done.GetExpiresIn(), "refresh_token": done.GetRefreshToken(),
		"refresh_expires_in": done.GetRefreshExpiresIn(), "session_id": done.GetSessionId(),
		"user_id": done.GetUserId(), "redirect_to": done.GetRedirectTo(), "created": done.GetCreated(),
	}
	if f.mode {
		f.cookie.set(w, done.GetRefreshToken(), int(done.GetRefreshExpiresIn()))
		delete(answer, "refresh_token")
		if done.GetRedirectTo() != "" {
			http.Redirect(w, r, done.GetRedirectTo(), http.StatusFound)
			return
		}
	}
	writeJSON(w, answer)
}

func writeJSON(w http.ResponseWriter, v any) {
	body, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// writeUpstreamError answers a failed call to authsvc as errorHandler does.
func writeUpstreamError(w http.ResponseWriter, err error, trailer metadata.MD) {
	st := status.Convert(err)
	var wwwAuthenticate string
	switch st.Code() {
	case codes.Unauthenticated:
		wwwAuthenticate = realm
		if values := trailer.Get("www-authenticate"); len(values) == 1 && wellFormedChallenge(values[0]) {
			wwwAuthenticate = values[0]
		}
	case codes.ResourceExhausted, codes.Unavailable:
		if seconds, ok := retryAfter(st); ok {
			w.Header().Set("Retry-After", strconv.Itoa(seconds))
		}
	}
	writeStatus(w, runtime.HTTPStatusFromCode(st.Code()), publicStatus(st), wwwAuthenticate)
}
