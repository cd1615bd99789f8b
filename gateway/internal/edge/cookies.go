package edge

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
)

// Cookie mode (--refresh-cookie) keeps a browser's refresh token where no
// script can read it: an HttpOnly, Secure, SameSite=Strict cookie named
// with the __Host- prefix (so it is bound to the gateway's host, Path=/,
// and cannot be planted by a sibling subdomain). The access token stays in
// the JSON body, for the page to hold in memory.
//
// A browser call is one that carries an Origin header (browsers send one
// on every cross-origin request and every POST; scripts cannot remove it).
// Calls without Origin (native apps, servers) keep body mode, so one
// gateway serves both. For browser calls:
//
//   - the token answers of /v1/auth/signin, /v1/auth/signup,
//     /v1/auth/refresh, /v1/auth/signin/complete (a second factor) and
//     /v1/auth/passkeys/signin move refresh_token out of the body into the cookie
//     whenever the answer has one (SignUp answers without tokens when
//     sign-up needs verification, and is left alone then);
//   - /v1/auth/refresh and /v1/auth/revoke take the token from the cookie
//     when the JSON body has none (an RFC 7009 form to /v1/auth/revoke
//     never does: it must name its token); a revoke that used the cookie clears it, and
//     so does a refresh that authsvc refuses with 401 (the token is dead);
//   - each of these paths requires the Origin to be listed in
//     --cors-origins (403 ORIGIN_NOT_ALLOWED otherwise), and, as every POST,
//     Content-Type: application/json (415 otherwise). Together they force a
//     CORS preflight on any cross-origin call, which only listed origins
//     pass, so a plain cross-site form cannot spend or plant the cookie.
//
// With --insecure-dev-cookies (development on http://localhost only) the
// cookie has no Secure attribute, and so cannot take the __Host- prefix:
// it is named authsvc_refresh and scoped to Path=/v1/auth/ instead.
//
// Beside it goes the presence cookie, authsvc_session=1: set and cleared
// with the refresh cookie and with its lifetime, but readable by scripts
// (not HttpOnly), SameSite=Lax, Path=/ (a page anywhere on the host must
// see it), Secure unless --insecure-dev-cookies, and Domain= only when
// --presence-cookie-domain names the parent domain a page on a sibling host
// needs. It carries no secret: it only tells the browser client that there
// is a refresh cookie to spend, so a signed-out page load makes no refresh
// call at all. A refresh that arrives without a refresh cookie clears it
// (it outlived the cookie it stood for). Planting one costs its planter
// nothing but one refresh call answered 400.
const (
	secureCookieName   = "__Host-authsvc_refresh"
	insecureCookieName = "authsvc_refresh"
	insecureCookiePath = "/v1/auth/"
	presenceCookieName = "authsvc_session"
)

// tokenAnswers are the paths whose answers may carry a refresh token.
var tokenAnswers = map[string]bool{
	"/v1/auth/signin":  true,
	"/v1/auth/signup":  true,
	"/v1/auth/refresh": true,
	// sign-ins completed with a second factor, and with a passkey alone
	"/v1/auth/signin/complete": true,
	"/v1/auth/passkeys/signin": true,
}

// cookieReaders are the paths that take the refresh token from the cookie,
// and the request field it goes into.
var cookieReaders = map[string]string{
	"/v1/auth/refresh": "refresh_token",
	"/v1/auth/revoke":  "token",
}

// jsonNames are the other spellings protojson accepts for a field.
var jsonNames = map[string]string{"refresh_token": "refreshToken", "token": "token"}

type refreshCookie struct {
	name, path string
	secure     bool
	// presenceDomain is the presence cookie's Domain ("": host-only).
	presenceDomain string
}

func newRefreshCookie(insecure bool, presenceDomain string) refreshCookie {
	if insecure {
		return refreshCookie{name: insecureCookieName, path: insecureCookiePath, presenceDomain: presenceDomain}
	}
	return refreshCookie{name: secureCookieName, path: "/", secure: true, presenceDomain: presenceDomain}
}

// set sets the refresh cookie and the presence cookie beside it.
func (c refreshCookie) set(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: value, Path: c.path, MaxAge: maxAge,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	c.setPresence(w, "1", maxAge)
}

// clear clears both cookies.
func (c refreshCookie) clear(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{Name: c.name, Value: "", Path: c.path, MaxAge: -1,
		HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteStrictMode})
	c.setPresence(w, "", -1)
}

func (c refreshCookie) setPresence(w http.ResponseWriter, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: presenceCookieName, Value: value, Path: "/", Domain: c.presenceDomain,
		MaxAge: maxAge, Secure: c.secure, SameSite: http.SameSiteLaxMode})
}

// withRefreshCookie is cookie mode; without cfg.RefreshCookie it adds nothing.
// It runs after requireJSON and limitBody.
func withRefreshCookie(cfg BrowserConfig, next http.Handler) http.Handler {
	if !cfg.RefreshCookie {
		return next
	}
	cookie := newRefreshCookie(cfg.InsecureDevCookies, cfg.PresenceCookieDomain)
	origins := newOriginSet(cfg.CORSOrigins)
	refusals := newRefusalLog(cfg)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		field, reads := cookieReaders[r.URL.Path]
		answers := tokenAnswers[r.URL.Path]
		if r.Method != http.MethodPost || len(r.Header.Values("Origin")) == 0 || (!reads && !answers) {
			next.ServeHTTP(w, r)
			return
		}
		if !origins.allowed(r) {
			refusals.refused(r, "cookie call")
			writeStatus(w, http.StatusForbidden, originRefused, "")
			return
		}
		usedCookie, hadCookie := false, false
		if reads {
			if c, err := r.Cookie(cookie.name); err == nil && c.Value != "" {
				hadCookie = true
				usedCookie = fillFromCookie(r, field, c.Value)
			}
		}
		rec := &recorder{ResponseWriter: w, code: http.StatusOK}
		next.ServeHTTP(rec, r)
		body := rec.body.Bytes()
		switch {
		case answers && rec.code == http.StatusOK:
			if token, rest, ok := takeMember(body, "refresh_token"); ok && token != "" {
				cookie.set(w, token, refreshMaxAge(rest))
				body = rest
			}
		case usedCookie && r.URL.Path == "/v1/auth/refresh" && rec.code == http.StatusUnauthorized:
			cookie.clear(w)
		case !hadCookie && r.URL.Path == "/v1/auth/refresh" && rec.code != http.StatusOK && hasCookie(r, presenceCookieName):
			cookie.setPresence(w, "", -1) // it outlived the refresh cookie it stood for
		}
		if usedCookie && r.URL.Path == "/v1/auth/revoke" && rec.code < 500 {
			cookie.clear(w)
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.code)
		_, _ = w.Write(body)
	})
}

func hasCookie(r *http.Request, name string) bool {
	_, err := r.Cookie(name)
	return err == nil
}

// refreshMaxAge is the cookie's Max-Age: the answer's refresh_expires_in,
// or 0 (a session cookie) when it has none.
func refreshMaxAge(answer []byte) int {
	var fields struct {
		RefreshExpiresIn json.Number `json:"refresh_expires_in"`
	}
	if json.Unmarshal(answer, &fields) != nil {
		return 0
	}
	n, err := strconv.Atoi(fields.RefreshExpiresIn.String())
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// fillFromCookie puts token into r's JSON body as field, when the body is a
// JSON object (or empty) without a non-empty value for field; a revoke also
// gets token_type_hint REFRESH_TOKEN unless it names one. It reports
// whether the cookie was used. A body it cannot read or parse goes on
// unchanged, for the decoder to refuse as usual.
func fillFromCookie(r *http.Request, field, token string) bool {
	raw, err := io.ReadAll(r.Body)
	if err != nil {
		replaceBody(r, io.MultiReader(bytes.NewReader(raw), errorReader{err}))
		return false
	}
	obj := map[string]json.RawMessage{}
	if len(bytes.TrimSpace(raw)) > 0 && json.Unmarshal(raw, &obj) != nil {
		replaceBody(r, bytes.NewReader(raw))
		return false
	}
	for _, name := range []string{field, jsonNames[field]} {
		var given string
		if v, ok := obj[name]; ok && json.Unmarshal(v, &given) == nil && given != "" {
			replaceBody(r, bytes.NewReader(raw)) // the body names its own token
			return false
		}
		delete(obj, name)
	}
	obj[field], _ = json.Marshal(token)
	if field == "token" {
		if _, ok := obj["token_type_hint"]; !ok {
			if _, ok := obj["tokenTypeHint"]; !ok {
				obj["token_type_hint"] = json.RawMessage(`"TOKEN_TYPE_HINT_REFRESH_TOKEN"`)
			}
		}
	}
	filled, _ := json.Marshal(obj)
	replaceBody(r, bytes.NewReader(filled))
	r.ContentLength = int64(len(filled))
	return true
}

// replaceBody swaps what r's body reads, keeping limitBody's requestBody
// (the decoder reports through it) when it is there.
func replaceBody(r *http.Request, content io.Reader) {
	if body, ok := r.Body.(*requestBody); ok {
		body.ReadCloser = readCloser{content, body.ReadCloser}
		return
	}
	r.Body = readCloser{content, r.Body}
}

type readCloser struct {
	io.Reader
	io.Closer
}

type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// takeMember removes the top-level member name from the JSON object raw,
// keeping the others in order. It returns the member's string value and
// the rest; ok is false when raw is not an object with a string member name.
func takeMember(raw []byte, name string) (value string, rest []byte, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "", nil, false
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return "", nil, false
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "", nil, false
		}
		if key == name {
			if json.Unmarshal(v, &value) != nil {
				return "", nil, false
			}
			ok = true
			continue
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(key)
		out.Write(k)
		out.WriteByte(':')
		out.Write(v)
	}
	out.WriteByte('}')
	return value, out.Bytes(), ok
}

// recorder holds an answer back so cookie mode can edit it. Headers go to
// the real writer's map at once; status and body wait.
type recorder struct {
	http.ResponseWriter
	code int
	body bytes.Buffer
}

func (r *recorder) WriteHeader(code int)        { r.code = code }
func (r *recorder) Write(b []byte) (int, error) { return r.body.Write(b) }
