package edge

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authsvc/authsvc/gateway/verify/testclock"
)

// certificatePEM is a self-signed certificate for localhost with serial,
// and its key, both PEM.
func certificatePEM(t *testing.T, serial int64) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}

// pairFiles are a certificate and key file in a temporary directory.
type pairFiles struct{ cert, key string }

func newPairFiles(t *testing.T) pairFiles {
	dir := t.TempDir()
	return pairFiles{filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")}
}

// writeSerial puts a new pair with serial in the files.
func (p pairFiles) writeSerial(t *testing.T, serial int64) {
	t.Helper()
	certPEM, keyPEM := certificatePEM(t, serial)
	p.write(t, certPEM, keyPEM)
}

func (p pairFiles) write(t *testing.T, certPEM, keyPEM []byte) {
	t.Helper()
	if err := os.WriteFile(p.cert, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p.key, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
}

// logBuffer collects log lines safely across goroutines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *logBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

func (b *logBuffer) count(substr string) int { return strings.Count(b.String(), substr) }

func serialOf(t *testing.T, files *certificateFiles) int64 {
	t.Helper()
	cert, err := files.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil || cert == nil || cert.Leaf == nil {
		t.Fatalf("GetCertificate: %v, %v", cert, err)
	}
	return cert.Leaf.SerialNumber.Int64()
}

func TestTheCertificateIsReloadedWhenItsFilesChangeAtMostOncePerSecond(t *testing.T) {
	pair := newPairFiles(t)
	pair.writeSerial(t, 1)
	clock := testclock.At(time.Unix(1000, 0))
	logs := &logBuffer{}
	files, err := loadCertificateFiles(pair.cert, pair.key, clock.Now, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	first := serialOf(t, files)

	pair.writeSerial(t, 2)
	clock.Advance(reloadCheckInterval - time.Millisecond)
	withinTheInterval := serialOf(t, files)
	clock.Advance(time.Millisecond)
	afterIt := serialOf(t, files)
	clock.Advance(reloadCheckInterval)
	unchanged := serialOf(t, files)

	if first != 1 || withinTheInterval != 1 || afterIt != 2 || unchanged != 2 {
		t.Errorf("serials: first %d, within the interval %d, after it %d, then %d", first, withinTheInterval, afterIt, unchanged)
	}
	if logs.count("TLS certificate reloaded") != 1 || logs.count("serial=2") != 1 {
		t.Errorf("log:\n%s", logs)
	}
}

func TestAFileReplacedByRenameIsSeenEvenWithTheSameSizeAndTime(t *testing.T) {
	pair := newPairFiles(t)
	pair.writeSerial(t, 1)
	clock := testclock.At(time.Unix(1000, 0))
	files, err := loadCertificateFiles(pair.cert, pair.key, clock.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	before := serialOf(t, files)
	old, err := os.Stat(pair.cert)
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := os.Stat(pair.key)
	if err != nil {
		t.Fatal(err)
	}

	// Both new files are written beside the old ones, stamped with the old
	// times, and renamed over them, as Kubernetes and cert tools do.
	certPEM, keyPEM := certificatePEM(t, 2)
	next := pairFiles{pair.cert + ".new", pair.key + ".new"}
	next.write(t, certPEM, keyPEM)
	for _, f := range []struct {
		from, to string
		stamp    time.Time
	}{{next.cert, pair.cert, old.ModTime()}, {next.key, pair.key, oldKey.ModTime()}} {
		if err := os.Chtimes(f.from, f.stamp, f.stamp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.from, f.to); err != nil {
			t.Fatal(err)
		}
	}
	clock.Advance(reloadCheckInterval)

	if after := serialOf(t, files); before != 1 || after != 2 {
		t.Errorf("serial %d, after the rename %d", before, after)
	}
}

func TestABadNewPairKeepsTheOldCertificateAndIsLoggedOnce(t *testing.T) {
	pair := newPairFiles(t)
	pair.writeSerial(t, 1)
	clock := testclock.At(time.Unix(1000, 0))
	logs := &logBuffer{}
	files, err := loadCertificateFiles(pair.cert, pair.key, clock.Now, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	newCert, newKey := certificatePEM(t, 2)

	// The new certificate lands first: it does not match the old key.
	if err := os.WriteFile(pair.cert, newCert, 0o600); err != nil {
		t.Fatal(err)
	}
	var halfway []int64
	for range 3 {
		clock.Advance(reloadCheckInterval)
		halfway = append(halfway, serialOf(t, files))
	}
	failures := logs.count("TLS certificate not reloaded")
	// Then its key: the pair is whole again.
	if err := os.WriteFile(pair.key, newKey, 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(reloadCheckInterval)
	whole := serialOf(t, files)
	// A key file that is not PEM at all, and a missing one, keep serial 2.
	if err := os.WriteFile(pair.key, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock.Advance(reloadCheckInterval)
	garbage := serialOf(t, files)
	if err := os.Remove(pair.key); err != nil {
		t.Fatal(err)
	}
	clock.Advance(reloadCheckInterval)
	missing := serialOf(t, files)

	if len(halfway) != 3 || halfway[0] != 1 || halfway[1] != 1 || halfway[2] != 1 || whole != 2 || garbage != 2 || missing != 2 {
		t.Errorf("serials: half-written %v, whole %d, garbage key %d, missing key %d", halfway, whole, garbage, missing)
	}
	if failures != 1 || logs.count("TLS certificate not reloaded") != 3 {
		t.Errorf("%d failures logged while half-written, %d in all:\n%s", failures, logs.count("TLS certificate not reloaded"), logs)
	}
}

func TestAnUnusablePairIsAStartupError(t *testing.T) {
	good := newPairFiles(t)
	good.writeSerial(t, 1)
	otherCert, _ := certificatePEM(t, 2)
	mismatched := newPairFiles(t)
	_, key := certificatePEM(t, 3)
	mismatched.write(t, otherCert, key)
	cases := map[string]pairFiles{
		"missing cert":  {filepath.Join(t.TempDir(), "none.crt"), good.key},
		"missing key":   {good.cert, filepath.Join(t.TempDir(), "none.key")},
		"key mismatch":  mismatched,
		"cert for key":  {good.key, good.key},
		"key for certs": {good.cert, good.cert},
	}
	for name, p := range cases {
		if _, err := loadCertificateFiles(p.cert, p.key, time.Now, slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

func TestHTTPSConfigChecks(t *testing.T) {
	bad := map[string]HTTPSConfig{
		"cert without key":      {CertFile: "c"},
		"key without cert":      {KeyFile: "k"},
		"negative max-age":      {CertFile: "c", KeyFile: "k", HSTSMaxAge: -time.Second},
		"fractional max-age":    {CertFile: "c", KeyFile: "k", HSTSMaxAge: 1500 * time.Millisecond},
		"subdomains, no HTTPS":  {HSTSIncludeSubdomains: true},
		"subdomains, key alone": {KeyFile: "k", HSTSIncludeSubdomains: true},
	}
	for name, c := range bad {
		if c.Check() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	for _, c := range []HTTPSConfig{{}, {CertFile: "c", KeyFile: "k", HSTSMaxAge: DefaultHSTSMaxAge, HSTSIncludeSubdomains: true}} {
		if err := c.Check(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	if v := (HTTPSConfig{CertFile: "c", HSTSMaxAge: DefaultHSTSMaxAge}).hstsValue(); v != "max-age=63072000" {
		t.Errorf("default: %q", v)
	}
	if v := (HTTPSConfig{CertFile: "c", HSTSIncludeSubdomains: true}).hstsValue(); v != "max-age=0; includeSubDomains" {
		t.Errorf("zero with subdomains: %q", v)
	}
}

// runGateway runs Run with cfg until the test ends; it returns the address
// Run logged and the log.
func runGateway(t *testing.T, cfg Config) (string, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg, slog.New(slog.NewTextHandler(logs, nil))) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	listening := regexp.MustCompile(`listening on (https?://127\.0\.0\.1:\d+)`)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if m := listening.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case err := <-done:
			t.Fatalf("Run ended: %v\n%s", err, logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("not listening:\n%s", logs)
		}
	}
}

func TestRunServesHTTP2OverTLSWithHSTSAndPlainHTTPWithout(t *testing.T) {
	pair := newPairFiles(t)
	certPEM, keyPEM := certificatePEM(t, 7)
	pair.write(t, certPEM, keyPEM)
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	base := Config{Listen: "127.0.0.1:0", Upstream: "127.0.0.1:1", UpstreamConnections: 1, Timeout: time.Second}
	secure := base
	secure.HTTPS = HTTPSConfig{CertFile: pair.cert, KeyFile: pair.key, HSTSMaxAge: DefaultHSTSMaxAge, HSTSIncludeSubdomains: true}
	httpsURL, logs := runGateway(t, secure)
	plainURL, _ := runGateway(t, base)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, ServerName: "localhost"},
		ForceAttemptHTTP2: true,
	}}
	get := func(url string) *http.Response {
		t.Helper()
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	overTLS := get(httpsURL + "/healthz")
	notFound := get(httpsURL + "/v1/nope")
	plain := get(plainURL + "/healthz")

	if !strings.HasPrefix(httpsURL, "https://") || !strings.HasPrefix(plainURL, "http://") {
		t.Fatalf("listening on %s and %s", httpsURL, plainURL)
	}
	if overTLS.StatusCode != 200 || overTLS.ProtoMajor != 2 || overTLS.TLS == nil || overTLS.TLS.PeerCertificates[0].SerialNumber.Int64() != 7 {
		t.Errorf("over TLS: %d %s", overTLS.StatusCode, overTLS.Proto)
	}
	for name, resp := range map[string]*http.Response{"healthz": overTLS, "404": notFound} {
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
			t.Errorf("%s over TLS: Strict-Transport-Security %q", name, got)
		}
	}
	if plain.StatusCode != 200 || plain.ProtoMajor != 1 || plain.Header.Values("Strict-Transport-Security") != nil {
		t.Errorf("plain HTTP: %d %s %v", plain.StatusCode, plain.Proto, plain.Header)
	}
	if !strings.Contains(logs.String(), "TLS certificate loaded") || !strings.Contains(logs.String(), "serial=7") {
		t.Errorf("log:\n%s", logs)
	}
}
