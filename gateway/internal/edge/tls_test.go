package edge

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// selfSigned returns a server certificate for name and its PEM.
func selfSigned(t *testing.T, name string) (tls.Certificate, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// tlsHealthServer serves grpc.health.v1 (SERVING) over TLS with cert.
func tlsHealthServer(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

func TestUpstreamTLSVerifiesAgainstTheGivenCA(t *testing.T) {
	cert, caPEM := selfSigned(t, "authsvc.internal")
	addr := tlsHealthServer(t, cert)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	check := func(cfg Config) error {
		conn, err := dialUpstream(cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
		return err
	}

	trusted := Config{Upstream: addr, UpstreamTLS: true, UpstreamCA: caFile, UpstreamServerName: "authsvc.internal"}
	if err := check(trusted); err != nil {
		t.Errorf("with the CA and server name: %v", err)
	}
	if err := check(Config{Upstream: addr, UpstreamTLS: true, UpstreamServerName: "authsvc.internal"}); err == nil {
		t.Error("a certificate from an unknown CA was accepted")
	}
	if err := check(Config{Upstream: addr, UpstreamTLS: true, UpstreamCA: caFile, UpstreamServerName: "other.internal"}); err == nil {
		t.Error("a certificate for another name was accepted")
	}
}

func TestUpstreamCAMustBePEM(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{bad, filepath.Join(t.TempDir(), "missing.pem")} {
		if _, err := dialUpstream(Config{Upstream: "127.0.0.1:1", UpstreamTLS: true, UpstreamCA: file}); err == nil {
			t.Errorf("%s accepted as a CA file", file)
		}
	}
}
