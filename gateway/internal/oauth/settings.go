// Package oauth is what the gateway adds on top of grpc-gateway's routes:
// the Go verifier answering Validate at the edge, a userinfo-style claims
// answer, OIDC discovery / RFC 8414 metadata, RFC 7662 introspection, RFC
// 7009's form at the revocation endpoint and Envoy's external
// authorization service. cmd code registers Settings' flags and sets
// edge.Config.Extend to Settings.Extend.
package oauth

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
)

// Settings configure the package; every flag has an AUTHSVC_GATEWAY_* variable.
//
// The token rules (Issuer, Audience, Leeway, AccessTokenTTL, Algorithms)
// need not be given: authsvc publishes its own with its key set
// (GetJwksResponse.rules), and the Go verifier, introspection's iss and aud
// and discovery follow what it publishes. A rule given by a flag or its
// variable wins (the verifier logs a difference once); the values here are
// then the given ones, and otherwise authsvc's defaults, which are what
// applies when authsvc publishes no rules. Settings built in code rather
// than through Register give every rule whose field is not zero.
type Settings struct {
	Issuer         string        // authsvc's AUTHSVC_ISSUER
	Audience       string        // authsvc's AUTHSVC_AUDIENCE
	Leeway         time.Duration // authsvc's AUTHSVC_CLOCK_LEEWAY
	AccessTokenTTL time.Duration // authsvc's AUTHSVC_ACCESS_TOKEN_TTL
	MaxStaleness   time.Duration // how long revocations are trusted after the feed last spoke
	Algorithms     []string      // the algorithms the Go verifier accepts (authsvc's AUTHSVC_SIGNING_ALG)
	// KeySetMaxAge is how long the discovery document, which names the
	// key set's algorithms, is kept and may be cached: the JWKS's max-age.
	KeySetMaxAge time.Duration

	// The service account the gateway signs in as to follow
	// WatchRevocations (it needs scope authsvc.revocations). Without an
	// email the gateway verifies nothing itself and forwards every call.
	WatchEmail        string
	WatchPasswordFile string
	watchPassword     string

	// ExtAuthzListen is the address of the Envoy ext_authz gRPC service; "" serves none.
	ExtAuthzListen string

	given        map[string]bool  // the rules a flag or variable gave (Register); nil: built in code
	built        *authority       // what Extend built, for tests and counters
	discovery    *discovery       // the metadata document Extend serves; nil without one
	extAuthzAddr net.Addr         // where ext_authz listens
	monotonic    func() time.Time // the verifier's staleness clock; nil: time.Now
}

// unset is what env answers for a variable that is not set.
const unset = "\x00unset"

// Register adds the flags to fs; env(name, fallback) reads AUTHSVC_GATEWAY_name.
func (s *Settings) Register(fs *flag.FlagSet, env func(name, fallback string) string) error {
	s.given = map[string]bool{}
	published := " (default: what authsvc publishes, else %s; env AUTHSVC_GATEWAY_%s)"
	words := []struct {
		p                    *string
		flag, name, fallback string
		usage                string
	}{
		{&s.Issuer, "issuer", "ISSUER", "authsvc", "authsvc's token issuer (AUTHSVC_ISSUER); an http(s) URL also turns on discovery"},
		{&s.Audience, "audience", "AUDIENCE", "authsvc", "authsvc's token audience (AUTHSVC_AUDIENCE)"},
	}
	for _, w := range words {
		*w.p = w.fallback
		if v := env(w.name, unset); v != unset {
			*w.p, s.given[w.flag] = v, true
		}
		fs.Func(w.flag, w.usage+fmt.Sprintf(published, w.fallback, w.name), func(v string) error {
			*w.p, s.given[w.flag] = v, true
			return nil
		})
	}
	durations := []struct {
		p                    *time.Duration
		flag, name, fallback string
		usage                string
		rule                 bool // one of the token rules authsvc publishes
	}{
		{&s.Leeway, "leeway", "LEEWAY", "30s", "authsvc's AUTHSVC_CLOCK_LEEWAY", true},
		{&s.AccessTokenTTL, "access-token-ttl", "ACCESS_TOKEN_TTL", "900s", "authsvc's AUTHSVC_ACCESS_TOKEN_TTL", true},
		{&s.MaxStaleness, "max-staleness", "MAX_STALENESS", "5s",
			"how long revocations are trusted after the feed last spoke; then calls are forwarded", false},
	}
	for _, d := range durations {
		raw := env(d.name, unset)
		if raw == unset {
			raw = d.fallback
		} else if d.rule {
			s.given[d.flag] = true
		}
		v, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("AUTHSVC_GATEWAY_%s: %w", d.name, err)
		}
		if !d.rule {
			fs.DurationVar(d.p, d.flag, v, d.usage+" (env AUTHSVC_GATEWAY_"+d.name+")")
			continue
		}
		*d.p = v
		fs.Func(d.flag, d.usage+fmt.Sprintf(published, d.fallback, d.name), func(v string) error {
			parsed, err := time.ParseDuration(v)
			*d.p, s.given[d.flag] = parsed, true
			return err
		})
	}
	s.Algorithms = strings.Split("ES256,EdDSA,RS256", ",")
	if v := env("ALGORITHMS", unset); v != unset {
		s.Algorithms, s.given["algorithms"] = strings.Split(v, ","), true
	}
	fs.Func("algorithms", "comma-separated signing algorithms accepted (AUTHSVC_SIGNING_ALG)"+
		fmt.Sprintf(published, "ES256,EdDSA,RS256", "ALGORITHMS"), func(v string) error {
		s.Algorithms, s.given["algorithms"] = strings.Split(v, ","), true
		return nil
	})
	fs.StringVar(&s.WatchEmail, "watch-email", env("WATCH_EMAIL", ""),
		"service account (scope authsvc.revocations) the gateway signs in as to verify tokens itself (env AUTHSVC_GATEWAY_WATCH_EMAIL)")
	fs.StringVar(&s.WatchPasswordFile, "watch-password-file", env("WATCH_PASSWORD_FILE", ""),
		"file holding that account's password; or env AUTHSVC_GATEWAY_WATCH_PASSWORD (env AUTHSVC_GATEWAY_WATCH_PASSWORD_FILE)")
	fs.StringVar(&s.ExtAuthzListen, "ext-authz-listen", env("EXT_AUTHZ_LISTEN", ""),
		"serve Envoy's envoy.service.auth.v3.Authorization on HOST:PORT (env AUTHSVC_GATEWAY_EXT_AUTHZ_LISTEN)")
	return nil
}

// Check validates the parsed values and reads the watch password.
func (s *Settings) Check() error {
	if s.Issuer == "" || s.Audience == "" {
		return errors.New("--issuer and --audience must not be empty")
	}
	if s.Leeway < 0 || s.AccessTokenTTL <= 0 {
		return errors.New("--leeway must not be negative and --access-token-ttl must be positive")
	}
	if s.MaxStaleness < 2*time.Second {
		return errors.New("--max-staleness must be at least 2s (authsvc's heartbeat is 1 s)")
	}
	for _, a := range s.Algorithms {
		if a != "ES256" && a != "EdDSA" && a != "RS256" {
			return fmt.Errorf("--algorithms: %q is not one authsvc signs with", a)
		}
	}
	if s.WatchEmail == "" {
		return nil
	}
	s.watchPassword = os.Getenv("AUTHSVC_GATEWAY_WATCH_PASSWORD")
	if s.WatchPasswordFile != "" {
		raw, err := os.ReadFile(s.WatchPasswordFile)
		if err != nil {
			return fmt.Errorf("--watch-password-file: %w", err)
		}
		s.watchPassword = strings.TrimRight(string(raw), "\r\n")
	}
	if s.watchPassword == "" {
		return errors.New("--watch-email needs --watch-password-file or AUTHSVC_GATEWAY_WATCH_PASSWORD")
	}
	return nil
}

// givenRule reports whether the token rule named by its flag was given,
// rather than left to what authsvc publishes.
func (s *Settings) givenRule(flag string) bool {
	if s.given != nil {
		return s.given[flag]
	}
	switch flag { // built in code: what is set is given
	case "issuer":
		return s.Issuer != ""
	case "audience":
		return s.Audience != ""
	case "leeway":
		return s.Leeway != 0
	case "access-token-ttl":
		return s.AccessTokenTTL != 0
	case "algorithms":
		return len(s.Algorithms) > 0
	}
	return false
}

// issuerURL is the issuer as an absolute http(s) URL without a trailing
// slash, or nil when it is not one (then there is no discovery).
func (s *Settings) issuerURL() *url.URL { return issuerURLOf(s.Issuer) }

func issuerURLOf(issuer string) *url.URL {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil
	}
	return u
}
