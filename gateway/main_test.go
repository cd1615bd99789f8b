package main

import (
	"testing"
	"time"
)

func TestFlagsWinOverEnvironmentWhichWinsOverDefaults(t *testing.T) {
	t.Setenv("AUTHSVC_GATEWAY_LISTEN", "0.0.0.0:9000")
	t.Setenv("AUTHSVC_GATEWAY_UPSTREAM", "authsvc:50051")

	cfg, err := parseFlags([]string{"--listen", "127.0.0.1:9999"})

	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.Upstream != "authsvc:50051" || cfg.Timeout != 10*time.Second || cfg.JWKSMaxAge != time.Minute || cfg.UpstreamConnections != 8 {
		t.Errorf("got %+v", cfg)
	}
	if cfg.UpstreamTLS {
		t.Error("TLS on by default")
	}
}

func TestUpstreamCAImpliesTLS(t *testing.T) {
	cfg, err := parseFlags([]string{"--upstream-ca", "ca.pem"})

	if err != nil || !cfg.UpstreamTLS {
		t.Errorf("cfg %+v, err %v", cfg, err)
	}
}

func TestInvalidValuesAreErrors(t *testing.T) {
	for _, args := range [][]string{{"--timeout", "soon"}, {"stray"}, {"--jwks-max-age", "-1s"}, {"--upstream-connections", "0"}, {"--max-staleness", "1s"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	t.Setenv("AUTHSVC_GATEWAY_UPSTREAM_TLS", "maybe")
	if _, err := parseFlags(nil); err == nil {
		t.Error("AUTHSVC_GATEWAY_UPSTREAM_TLS=maybe accepted")
	}
}

func TestBrowserFlagsAndTheirEnvironment(t *testing.T) {
	t.Setenv("AUTHSVC_GATEWAY_CORS_ORIGINS", "https://app.example.com")
	t.Setenv("AUTHSVC_GATEWAY_REFRESH_COOKIE", "true")

	cfg, err := parseFlags([]string{"--cors-max-age", "1m"})

	if err != nil {
		t.Fatal(err)
	}
	b := cfg.Browser
	if len(b.CORSOrigins) != 1 || b.CORSOrigins[0] != "https://app.example.com" || !b.RefreshCookie ||
		b.InsecureDevCookies || b.CORSMaxAge != time.Minute {
		t.Errorf("got %+v", b)
	}
	for _, args := range [][]string{{"--cors-origins", "*"}, {"--cors-origins", ""}, {"--insecure-dev-cookies", "--refresh-cookie=false"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

func TestHTTPSFlagsAndTheirEnvironment(t *testing.T) {
	t.Setenv("AUTHSVC_GATEWAY_TLS_CERT", "/tls/tls.crt")
	t.Setenv("AUTHSVC_GATEWAY_TLS_KEY", "/tls/tls.key")

	plain, errPlain := parseFlags([]string{"--tls-cert", "", "--tls-key", ""})
	cfg, err := parseFlags([]string{"--hsts-include-subdomains"})

	if errPlain != nil || plain.HTTPS.On() || plain.HTTPS.HSTSMaxAge != 63072000*time.Second {
		t.Errorf("plain: %+v, %v", plain.HTTPS, errPlain)
	}
	if err != nil || cfg.HTTPS.CertFile != "/tls/tls.crt" || cfg.HTTPS.KeyFile != "/tls/tls.key" || !cfg.HTTPS.HSTSIncludeSubdomains {
		t.Errorf("https: %+v, %v", cfg.HTTPS, err)
	}
	for _, args := range [][]string{{"--tls-key", ""}, {"--hsts-max-age", "-1s"}, {"--hsts-max-age", "1.5s"},
		{"--tls-cert", "", "--tls-key", "", "--hsts-include-subdomains"},
		{"--cors-origins", "https://app.example.com", "--refresh-cookie", "--insecure-dev-cookies"}} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	t.Setenv("AUTHSVC_GATEWAY_HSTS_MAX_AGE", "a year")
	if _, err := parseFlags(nil); err == nil {
		t.Error("AUTHSVC_GATEWAY_HSTS_MAX_AGE=a year accepted")
	}
}
