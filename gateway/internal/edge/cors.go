package edge

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// BrowserConfig is what the edge needs to serve web pages on other origins:
// CORS and cookie mode (cookies.go). The zero value serves no browser on
// another origin and keeps refresh tokens in JSON bodies.
type BrowserConfig struct {
	// CORSOrigins are the exact origins ("https://app.example.com") whose
	// pages may call the gateway with credentials. Nothing else gets a CORS
	// header; there is no wildcard, since credentials are allowed.
	CORSOrigins []string
	// CORSMaxAge is how long a browser may cache a preflight answer.
	CORSMaxAge time.Duration
	// RefreshCookie turns on cookie mode for browsers (see cookies.go).
	RefreshCookie bool
	// InsecureDevCookies drops Secure (and so the __Host- prefix) from the
	// refresh cookie, for http://localhost during development only.
	InsecureDevCookies bool
	// PresenceCookieDomain is the Domain of the presence cookie beside the
	// refresh cookie (cookies.go): empty for the gateway's host only, or a
	// parent domain ("example.com") when the pages are on a sibling host
	// (app.example.com beside auth.example.com) and must read it.
	PresenceCookieDomain string
	// Log receives the refused-origin lines (nil: slog.Default()); Now is
	// their clock (nil: time.Now).
	Log *slog.Logger
	Now func() time.Time
}

// What a preflight grants. Methods are the ones the routes use; headers
// are the three a browser client sends; exposed headers are the two a
// client needs to act on an error (the RFC 6750 challenge and the wait
// after RATE_LIMITED).
const (
	corsAllowMethods  = "GET, POST"
	corsAllowHeaders  = "authorization, content-type, x-request-id"
	corsExposeHeaders = "www-authenticate, retry-after"
)

// RegisterBrowserFlags adds the browser flags to fs, each with its
// AUTHSVC_GATEWAY_* environment variable read through env, and returns the
// check to run once fs is parsed.
func RegisterBrowserFlags(fs *flag.FlagSet, cfg *BrowserConfig, env func(name, fallback string) string) (func() error, error) {
	origins := fs.String("cors-origins", env("CORS_ORIGINS", ""),
		"comma-separated exact origins (scheme://host[:port]) whose pages may call the gateway with credentials (env AUTHSVC_GATEWAY_CORS_ORIGINS)")
	maxAge, err := time.ParseDuration(env("CORS_MAX_AGE", "10m"))
	if err != nil {
		return nil, fmt.Errorf("AUTHSVC_GATEWAY_CORS_MAX_AGE: %w", err)
	}
	fs.DurationVar(&cfg.CORSMaxAge, "cors-max-age", maxAge,
		"how long browsers may cache a CORS preflight answer (env AUTHSVC_GATEWAY_CORS_MAX_AGE)")
	cookie, err := strconv.ParseBool(env("REFRESH_COOKIE", "false"))
	if err != nil {
		return nil, fmt.Errorf("AUTHSVC_GATEWAY_REFRESH_COOKIE: %w", err)
	}
	fs.BoolVar(&cfg.RefreshCookie, "refresh-cookie", cookie,
		"browsers get the refresh token in an HttpOnly __Host- cookie instead of the JSON body (env AUTHSVC_GATEWAY_REFRESH_COOKIE)")
	insecure, err := strconv.ParseBool(env("INSECURE_DEV_COOKIES", "false"))
	if err != nil {
		return nil, fmt.Errorf("AUTHSVC_GATEWAY_INSECURE_DEV_COOKIES: %w", err)
	}
	fs.BoolVar(&cfg.InsecureDevCookies, "insecure-dev-cookies", insecure,
		"DEVELOPMENT ONLY: the refresh cookie without Secure, for http://localhost (env AUTHSVC_GATEWAY_INSECURE_DEV_COOKIES)")
	fs.StringVar(&cfg.PresenceCookieDomain, "presence-cookie-domain", env("PRESENCE_COOKIE_DOMAIN", ""),
		"Domain of the script-readable authsvc_session presence cookie, when pages on a sibling host must read it, e.g. example.com (env AUTHSVC_GATEWAY_PRESENCE_COOKIE_DOMAIN; default: the gateway's host only)")
	return func() error {
		list, err := ParseOrigins(*origins)
		if err != nil {
			return err
		}
		cfg.CORSOrigins = list
		return cfg.Check()
	}, nil
}

// Check reports a browser configuration that cannot work.
func (c BrowserConfig) Check() error {
	if c.CORSMaxAge < 0 {
		return fmt.Errorf("--cors-max-age must not be negative")
	}
	if c.RefreshCookie && len(c.CORSOrigins) == 0 {
		return fmt.Errorf("--refresh-cookie needs --cors-origins: a cookie is only accepted from a listed origin (list the page's own origin when it is served with the gateway)")
	}
	if c.InsecureDevCookies && !c.RefreshCookie {
		return fmt.Errorf("--insecure-dev-cookies only makes sense with --refresh-cookie")
	}
	if c.PresenceCookieDomain != "" {
		if !c.RefreshCookie {
			return fmt.Errorf("--presence-cookie-domain only makes sense with --refresh-cookie")
		}
		if !isCookieDomain(c.PresenceCookieDomain) {
			return fmt.Errorf("--presence-cookie-domain: %q is not a domain like example.com (lower case, no scheme, port or leading dot)", c.PresenceCookieDomain)
		}
	}
	return nil
}

// isCookieDomain reports whether d is a lower-case DNS name with at least
// two labels, as a cookie's Domain attribute takes it.
func isCookieDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(labels) < 2 || len(d) > 253 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, ch := range l {
			if (ch < 'a' || ch > 'z') && (ch < '0' || ch > '9') && ch != '-' {
				return false
			}
		}
	}
	return true
}

// ParseOrigins splits a comma-separated list of origins and checks that
// each is exactly an origin as a browser sends it: http or https, a host,
// an optional port, nothing else. "*" is refused: with credentials allowed
// a wildcard would hand every site the visitor's session.
func ParseOrigins(list string) ([]string, error) {
	var out []string
	for _, raw := range strings.Split(list, ",") {
		origin := strings.TrimSpace(raw)
		if origin == "" {
			continue
		}
		if strings.Contains(origin, "*") {
			return nil, fmt.Errorf("--cors-origins: %q: no wildcards; list each origin exactly", origin)
		}
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.User != nil || u.Path != "" || u.RawQuery != "" || u.Fragment != "" ||
			origin != u.Scheme+"://"+u.Host || strings.ToLower(origin) != origin {
			return nil, fmt.Errorf("--cors-origins: %q is not an origin like https://app.example.com (lower case, no path or trailing slash)", origin)
		}
		out = append(out, origin)
	}
	return out, nil
}

// originSet answers whether an Origin header value is listed.
type originSet map[string]bool

func newOriginSet(origins []string) originSet {
	set := originSet{}
	for _, o := range origins {
		set[o] = true
	}
	return set
}

// allowed reports whether r carries exactly one Origin header and it is
// listed. "null" (sandboxed frames, file: pages) is never listed.
func (s originSet) allowed(r *http.Request) bool {
	values := r.Header.Values("Origin")
	return len(values) == 1 && s[values[0]]
}

// withCORS answers preflights and marks answers to listed origins. With no
// origins configured it adds no CORS header to anything but the origin check.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) from
// a listed origin is answered 204 here, never reaching authsvc; from any
// other origin it is answered 403 without CORS headers, so the browser
// refuses the real request. Every other request goes on; its answer
// carries Access-Control-Allow-Origin (the request's own origin, never
// "*"), Allow-Credentials and the exposed headers only when the origin is
// listed. Vary: Origin is on every answer, since each depends on it.
//
// A refused preflight is logged (refusalLog: at most one line per origin a
// minute), and so is an origin check from an unlisted origin; answers to
// unlisted origins that needed no preflight are not, since a page's own
// origin sends Origin on its POSTs without being refused anything.
func withCORS(cfg BrowserConfig, next http.Handler) http.Handler {
	refusals := newRefusalLog(cfg)
	check := originCheck(cfg, refusals)
	if len(cfg.CORSOrigins) == 0 {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == originCheckPath {
				check(w, r)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	origins := newOriginSet(cfg.CORSOrigins)
	maxAge := strconv.Itoa(int(cfg.CORSMaxAge / time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == originCheckPath {
			check(w, r)
			return
		}
		h := w.Header()
		h.Add("Vary", "Origin")
		listed := origins.allowed(r)
		if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
			r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !listed {
				refusals.refused(r, "preflight "+r.Header.Get("Access-Control-Request-Method"))
				writeStatus(w, http.StatusForbidden, originRefused, "")
				return
			}
			h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Allow-Methods", corsAllowMethods)
			h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
			h.Set("Access-Control-Max-Age", maxAge)
			h.Set("Cache-Control", "no-store")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if listed {
			h.Set("Access-Control-Allow-Origin", r.Header.Get("Origin"))
			h.Set("Access-Control-Allow-Credentials", "true")
			h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
		}
		next.ServeHTTP(w, r)
	})
}

// originRefused answers a preflight, or a cookie-authenticated call, from
// an origin that is not listed: 403, ErrorInfo reason ORIGIN_NOT_ALLOWED.
var originRefused = func() *status.Status {
	st, _ := status.New(codes.PermissionDenied, "This origin may not call the gateway from a browser.").
		WithDetails(&errdetails.ErrorInfo{Reason: "ORIGIN_NOT_ALLOWED", Domain: "authsvc"})
	return st
}()

// originCheckPath answers a page whether its origin may call the gateway.
// A refused CORS call is opaque to the page (fetch rejects with the same
// TypeError as for a gateway that is down), so the browser client, after
// such a failure, asks here: the answer is readable from any origin
// (Access-Control-Allow-Origin: *, no credentials) and says only what the
// page's own preflight would have shown, {"origin": ..., "allowed": bool}.
// The client then reports ORIGIN_NOT_ALLOWED rather than NETWORK_ERROR.
const originCheckPath = "/v1/auth/origin-check"

func originCheck(cfg BrowserConfig, refusals *refusalLog) http.HandlerFunc {
	origins := newOriginSet(cfg.CORSOrigins)
	return func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			writeStatus(w, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "Method Not Allowed"), "")
			return
		}
		values := r.Header.Values("Origin")
		origin := ""
		if len(values) == 1 {
			origin = values[0]
		}
		allowed := origins.allowed(r)
		if !allowed && origin != "" {
			refusals.refused(r, "origin check")
		}
		h.Set("Content-Type", "application/json")
		body, _ := json.Marshal(struct {
			Origin  string `json:"origin"`
			Allowed bool   `json:"allowed"`
		}{origin, allowed})
		_, _ = w.Write(append(body, '\n'))
	}
}

// refusalLog writes one line per refused origin at most once a minute (the
// CORS layer has one, cookie mode another: a browser meets only one of
// them for a given page), so
// an operator sees "origin not allowed" where the page only sees a failed
// fetch, and a flood of forged Origin headers cannot flood the log: it
// remembers at most refusalLogSize origins a minute and drops the rest.
type refusalLog struct {
	log  *slog.Logger
	now  func() time.Time
	mu   sync.Mutex
	last map[string]time.Time
}

const (
	refusalLogEvery = time.Minute
	refusalLogSize  = 1024
	// refusalOriginMax bounds how much of a forged Origin reaches the log.
	refusalOriginMax = 200
)

func newRefusalLog(cfg BrowserConfig) *refusalLog {
	l := &refusalLog{log: cfg.Log, now: cfg.Now, last: map[string]time.Time{}}
	if l.log == nil {
		l.log = slog.Default()
	}
	if l.now == nil {
		l.now = time.Now
	}
	return l
}

// refused logs that r's origin was refused (what: the kind of call), unless
// that origin was logged less than a minute ago.
func (l *refusalLog) refused(r *http.Request, what string) {
	origin := strings.Join(r.Header.Values("Origin"), ", ")
	if len(origin) > refusalOriginMax {
		origin = origin[:refusalOriginMax] + "…"
	}
	now := l.now()
	l.mu.Lock()
	if t, seen := l.last[origin]; seen && now.Sub(t) < refusalLogEvery {
		l.mu.Unlock()
		return
	}
	if len(l.last) >= refusalLogSize {
		for o, t := range l.last {
			if now.Sub(t) >= refusalLogEvery {
				delete(l.last, o)
			}
		}
		if len(l.last) >= refusalLogSize {
			l.mu.Unlock()
			return
		}
	}
	l.last[origin] = now
	l.mu.Unlock()
	l.log.Warn("origin not allowed: a page on this origin called the gateway; list it in --cors-origins if it should",
		"origin", origin, "call", what, "path", r.URL.Path)
}
