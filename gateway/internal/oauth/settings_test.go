package oauth

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/authsvc/authsvc/gateway/verify"
)

func parsed(t *testing.T, env map[string]string, args ...string) (*Settings, error) {
	t.Helper()
	var s Settings
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	lookup := func(name, fallback string) string {
		if v, ok := env[name]; ok {
			return v
		}
		return fallback
	}
	if err := s.Register(fs, lookup); err != nil {
		return nil, err
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	return &s, s.Check()
}

func TestDefaultsMatchAuthsvcsAndVerifyNothingLocally(t *testing.T) {
	s, err := parsed(t, nil)

	if err != nil {
		t.Fatal(err)
	}
	if s.Issuer != "authsvc" || s.Audience != "authsvc" || s.Leeway != 30*time.Second ||
		s.AccessTokenTTL != 900*time.Second || s.MaxStaleness != 5*time.Second ||
		len(s.Algorithms) != 3 || s.WatchEmail != "" || s.ExtAuthzListen != "" {
		t.Errorf("got %+v", s)
	}
	if s.issuerURL() != nil {
		t.Error("discovery for a non-URL issuer")
	}
}

func TestTheWatchPasswordComesFromItsFileWithoutTheNewline(t *testing.T) {
	file := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	s, err := parsed(t, map[string]string{"WATCH_EMAIL": "gw@example.com"}, "--watch-password-file", file)

	if err != nil || s.watchPassword != "s3cret" {
		t.Errorf("err %v, password %q", err, s.watchPassword)
	}
}

func TestInvalidSettingsAreRefused(t *testing.T) {
	t.Setenv("AUTHSVC_GATEWAY_WATCH_PASSWORD", "")
	for _, args := range [][]string{
		{"--max-staleness", "1s"},
		{"--algorithms", "ES256,HS256"},
		{"--watch-email", "gw@example.com"},
		{"--watch-email", "gw@example.com", "--watch-password-file", "/nonexistent"},
		{"--issuer", ""},
		{"--access-token-ttl", "0s"},
	} {
		if _, err := parsed(t, nil, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if _, err := parsed(t, map[string]string{"LEEWAY": "soon"}); err == nil {
		t.Error("AUTHSVC_GATEWAY_LEEWAY=soon accepted")
	}
}

func TestOnlyAnAbsoluteHTTPURLIssuerHasDiscovery(t *testing.T) {
	for issuer, want := range map[string]bool{
		"https://auth.example.com":      true,
		"https://auth.example.com/t/1/": true,
		"http://127.0.0.1:8080":         true,
		"auth.example.com":              false,
		"https://":                      false,
		"https://a.example/?x=1":        false,
		"ftp://auth.example.com":        false,
	} {
		s := &Settings{Issuer: issuer}
		if got := s.issuerURL() != nil; got != want {
			t.Errorf("%q: %v", issuer, got)
		}
	}
}

func TestTokenRulesNotGivenAreLeftToWhatAuthsvcPublishes(t *testing.T) {
	s, err := parsed(t, map[string]string{"AUDIENCE": "orders"}, "--leeway", "0s", "--algorithms", "EdDSA")
	if err != nil {
		t.Fatal(err)
	}

	opts := s.verifierOptions(verify.Options{})

	if opts.Issuer != "" || opts.MaxTokenLifetime != 0 {
		t.Errorf("rules not given were set: %+v", opts)
	}
	if opts.Audience != "orders" || opts.Leeway != -1 || !slices.Equal(opts.Algorithms, []string{"EdDSA"}) {
		t.Errorf("given rules lost: %+v", opts)
	}
	if s.Issuer != "authsvc" || s.AccessTokenTTL != 900*time.Second {
		t.Errorf("fallbacks %q %v", s.Issuer, s.AccessTokenTTL)
	}
}
