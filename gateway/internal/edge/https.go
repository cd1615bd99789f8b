package edge

// HTTPS at the gateway itself (--tls-cert, --tls-key): TLS 1.2 or newer,
// HTTP/2 and HTTP/1.1 offered by ALPN, a Strict-Transport-Security header
// on every answer sent over TLS, and the certificate re-read when its files
// change, so a renewal (cert-manager, certbot, a rotated Kubernetes secret)
// needs no restart.
//
// Without --tls-cert the gateway serves plain HTTP exactly as before, for a
// proxy in front of it that terminates TLS; that proxy then owns
// Strict-Transport-Security too. RFC 6797 section 7.2 forbids sending the
// header over plain HTTP, and the gateway cannot tell whether the client's
// side of the proxy was HTTPS, so on plain HTTP it never sends it.

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

// HTTPSConfig is HTTPS at the gateway. The zero value serves plain HTTP.
type HTTPSConfig struct {
	CertFile string // PEM certificate chain, leaf first; with KeyFile, turns HTTPS on
	KeyFile  string // PEM private key of the leaf
	// HSTSMaxAge is Strict-Transport-Security's max-age (whole seconds).
	// 0 sends max-age=0, which tells browsers to forget the policy
	// (RFC 6797 section 6.1.1): the way to back out of HSTS.
	HSTSMaxAge time.Duration
	// HSTSIncludeSubdomains adds includeSubDomains: then browsers use
	// HTTPS for every subdomain of the gateway's host name as well. Off by
	// default, since the gateway cannot know that they all serve HTTPS.
	HSTSIncludeSubdomains bool
}

// DefaultHSTSMaxAge is two years, the max-age the HSTS preload list asks
// for and what long-lived HTTPS sites send.
const DefaultHSTSMaxAge = 63072000 * time.Second

// On reports whether the gateway serves HTTPS.
func (c HTTPSConfig) On() bool { return c.CertFile != "" }

// RegisterHTTPSFlags adds the HTTPS flags to fs, each with its
// AUTHSVC_GATEWAY_* environment variable read through env, and returns the
// check to run once fs is parsed.
func RegisterHTTPSFlags(fs *flag.FlagSet, cfg *HTTPSConfig, env func(name, fallback string) string) (func() error, error) {
	fs.StringVar(&cfg.CertFile, "tls-cert", env("TLS_CERT", ""),
		"serve HTTPS with this PEM certificate chain (leaf first), re-read when the file changes; needs --tls-key (env AUTHSVC_GATEWAY_TLS_CERT)")
	fs.StringVar(&cfg.KeyFile, "tls-key", env("TLS_KEY", ""),
		"PEM private key of --tls-cert, re-read with it (env AUTHSVC_GATEWAY_TLS_KEY)")
	maxAge, err := time.ParseDuration(env("HSTS_MAX_AGE", DefaultHSTSMaxAge.String()))
	if err != nil {
		return nil, fmt.Errorf("AUTHSVC_GATEWAY_HSTS_MAX_AGE: %w", err)
	}
	fs.DurationVar(&cfg.HSTSMaxAge, "hsts-max-age", maxAge,
		"Strict-Transport-Security max-age on HTTPS answers, whole seconds; 0s tells browsers to forget it (env AUTHSVC_GATEWAY_HSTS_MAX_AGE)")
	sub, err := strconv.ParseBool(env("HSTS_INCLUDE_SUBDOMAINS", "false"))
	if err != nil {
		return nil, fmt.Errorf("AUTHSVC_GATEWAY_HSTS_INCLUDE_SUBDOMAINS: %w", err)
	}
	fs.BoolVar(&cfg.HSTSIncludeSubdomains, "hsts-include-subdomains", sub,
		"add includeSubDomains to Strict-Transport-Security: only when every subdomain of the gateway's host serves HTTPS (env AUTHSVC_GATEWAY_HSTS_INCLUDE_SUBDOMAINS)")
	return func() error { return cfg.Check() }, nil // cfg read after parsing, not now
}

// Check reports an HTTPS configuration that cannot work.
func (c HTTPSConfig) Check() error {
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.HSTSMaxAge < 0 || c.HSTSMaxAge%time.Second != 0 {
		return errors.New("--hsts-max-age must be a whole, non-negative number of seconds")
	}
	if c.HSTSIncludeSubdomains && !c.On() {
		return errors.New("--hsts-include-subdomains needs --tls-cert: on plain HTTP the proxy in front sends Strict-Transport-Security")
	}
	return nil
}

// hstsValue is the Strict-Transport-Security value of c.
func (c HTTPSConfig) hstsValue() string {
	v := "max-age=" + strconv.FormatInt(int64(c.HSTSMaxAge/time.Second), 10)
	if c.HSTSIncludeSubdomains {
		v += "; includeSubDomains"
	}
	return v
}

// withHSTS sets Strict-Transport-Security on every answer to a request that
// came over TLS, errors and probes included, and on nothing else.
func withHSTS(c HTTPSConfig, next http.Handler) http.Handler {
	if !c.On() {
		return next
	}
	value := c.hstsValue()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			w.Header().Set("Strict-Transport-Security", value)
		}
		next.ServeHTTP(w, r)
	})
}

// serverTLS is the listener's TLS configuration: the certificate from
// files, TLS 1.2 at least. net/http adds "h2" and "http/1.1" to NextProtos
// itself (Server.Protocols).
func serverTLS(files *certificateFiles) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: files.GetCertificate}
}

// httpsProtocols are what an HTTPS listener offers: HTTP/2 and HTTP/1.1.
func httpsProtocols() *http.Protocols {
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	return &p
}

// reloadCheckInterval is how often, at most, the certificate files are
// read again: on the next handshake once the interval has passed.
const reloadCheckInterval = time.Second

// certificateFiles is the serving certificate, read from a certificate and
// a key file and read again when either changes.
//
// The files are read on a TLS handshake, at most once per
// reloadCheckInterval (two small files; no handshake waits longer than
// that read). When their bytes differ from the pair last tried, the pair
// is parsed; one that does not load (a half-written file, a key that does
// not match, a missing file) is logged and the certificate in use stays.
// Each new content is tried once, so a writer that puts the certificate
// and the key in place one after the other is followed as soon as both
// are there, and a bad pair is logged once rather than every second.
// Contents are compared rather than modification times, which the kernel
// keeps with a coarse clock: two writes a millisecond apart can share one.
type certificateFiles struct {
	certFile, keyFile string
	now               func() time.Time
	log               *slog.Logger

	mu      sync.Mutex
	current *tls.Certificate
	tried   [2][]byte // the files' contents when last tried
	checked time.Time // when the files were last read
	problem string    // the last failure logged, so it is logged once
}

// loadCertificateFiles reads the pair once; an unusable pair is an error
// here, at start-up, rather than a log line.
func loadCertificateFiles(certFile, keyFile string, now func() time.Time, log *slog.Logger) (*certificateFiles, error) {
	c := &certificateFiles{certFile: certFile, keyFile: keyFile, now: now, log: log}
	contents, err := c.read()
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	cert, err := tls.X509KeyPair(contents[0], contents[1])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s, --tls-key %s: %w", certFile, keyFile, err)
	}
	c.current, c.tried, c.checked = &cert, contents, now()
	return c, nil
}

// GetCertificate is tls.Config.GetCertificate.
func (c *certificateFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if now := c.now(); now.Sub(c.checked) >= reloadCheckInterval || now.Before(c.checked) {
		c.checked = now
		c.reload()
	}
	return c.current, nil
}

// reload reads the pair again and uses it if it changed and loads. c.mu is held.
func (c *certificateFiles) reload() {
	contents, err := c.read()
	if err != nil {
		c.failed(err)
		return
	}
	if bytes.Equal(contents[0], c.tried[0]) && bytes.Equal(contents[1], c.tried[1]) {
		return
	}
	c.tried = contents
	cert, err := tls.X509KeyPair(contents[0], contents[1])
	if err != nil {
		c.failed(err)
		return
	}
	c.current, c.problem = &cert, ""
	c.log.Info("TLS certificate reloaded", certificateAttrs(c.certFile, &cert)...)
}

func (c *certificateFiles) failed(err error) {
	if msg := err.Error(); msg != c.problem {
		c.problem = msg
		c.log.Error("TLS certificate not reloaded; still serving the previous one",
			"cert", c.certFile, "key", c.keyFile, "error", err)
	}
}

// read returns the contents of the certificate and the key file (following
// symbolic links, as Kubernetes secret volumes use them).
func (c *certificateFiles) read() ([2][]byte, error) {
	var contents [2][]byte
	for i, name := range []string{c.certFile, c.keyFile} {
		raw, err := os.ReadFile(name)
		if err != nil {
			return contents, err
		}
		contents[i] = raw
	}
	return contents, nil
}

// certificateAttrs describe a loaded certificate for the log.
func certificateAttrs(file string, cert *tls.Certificate) []any {
	attrs := []any{"cert", file}
	if leaf := cert.Leaf; leaf != nil {
		attrs = append(attrs, "serial", leaf.SerialNumber.String(), "subject", leaf.Subject.String(),
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return attrs
}
