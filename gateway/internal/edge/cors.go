package edge

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
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
	return nil
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
// origins configured it adds nothing.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) from
// a listed origin is answered 204 here, never reaching authsvc; from any
// other origin it is answered 403 without CORS headers, so the browser
// refuses the real request. Every other request goes on; its answer
// carries Access-Control-Allow-Origin (the request's own origin, never
// "*"), Allow-Credentials and the exposed headers only when the origin is
// listed. Vary: Origin is on every answer, since each depends on it.
func withCORS(cfg BrowserConfig, next http.Handler) http.Handler {
	if len(cfg.CORSOrigins) == 0 {
		return next
	}
	origins := newOriginSet(cfg.CORSOrigins)
	maxAge := strconv.Itoa(int(cfg.CORSMaxAge / time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		listed := origins.allowed(r)
		if r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
			r.Header.Get("Access-Control-Request-Method") != "" {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
			if !listed {
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
