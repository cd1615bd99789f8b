// Package authsvctest starts a real authsvc for the integration tests of the
// verify and gateway modules (build tag "authsvc"), which tests/system runs with
// `go test -tags authsvc`: AUTHSVC_TEST_BIN names the authsvc command,
// AUTHSVC_TEST_DATABASE_URL a migrated database of its own, and
// AUTHSVC_KEY_ENCRYPTION_KEY the key every server on it shares.
package authsvctest

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Password is every test user's password.
const Password = "correct horse battery staple"

const startupTimeout = 90 * time.Second

// Server is one `authsvc serve` process.
type Server struct {
	Addr        string // host:port of its gRPC service
	DatabaseURL string
	Conn        *grpc.ClientConn
	Auth        authsvcv1.AuthClient
	cmd         *exec.Cmd
	env         []string
}

func setting(t testing.TB, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set: run these tests through tests/system/test_go_verifier.py "+
			"(or set it, with AUTHSVC_TEST_BIN, AUTHSVC_TEST_DATABASE_URL and AUTHSVC_KEY_ENCRYPTION_KEY)", name)
	}
	return v
}

var listening = regexp.MustCompile(`listening on (127\.0\.0\.1:\d+)`)

// Start runs authsvc (one worker, cheap argon2, no throttling budget
// surprises) with env's AUTHSVC_* settings added; it is stopped when t ends.
func Start(t testing.TB, env map[string]string) *Server {
	t.Helper()
	bin := setting(t, "AUTHSVC_TEST_BIN")
	s := &Server{DatabaseURL: setting(t, "AUTHSVC_TEST_DATABASE_URL")}
	setting(t, "AUTHSVC_KEY_ENCRYPTION_KEY")
	s.env = append(os.Environ(), "AUTHSVC_ARGON2_PROFILE=test-only-cheapest",
		"AUTHSVC_METRICS_LISTEN=127.0.0.1:0", "AUTHSVC_SHUTDOWN_GRACE=0.5")
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	s.cmd = exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--workers", "1",
		"--database-url", s.DatabaseURL)
	s.cmd.Env = s.env
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	addr := make(chan string, 1)
	var log strings.Builder
	var logMu sync.Mutex
	go func() {
		scanner := bufio.NewScanner(stderr)
		for scanner.Scan() {
			logMu.Lock()
			log.WriteString(scanner.Text() + "\n")
			logMu.Unlock()
			if m := listening.FindStringSubmatch(scanner.Text()); m != nil {
				select {
				case addr <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			logMu.Lock()
			defer logMu.Unlock()
			t.Fatalf("authsvc exited:\n%s", log.String())
		}
		s.Addr = a
	case <-time.After(startupTimeout):
		t.Fatal("authsvc did not start in time")
	}
	s.Conn = s.Dial(t)
	s.Auth = authsvcv1.NewAuthClient(s.Conn)
	return s
}

// Dial opens a new plain connection to the server, closed when t ends.
func (s *Server) Dial(t testing.TB) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(s.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// Stop ends the process (SIGTERM, then SIGKILL after 15 s).
func (s *Server) Stop() {
	if s.cmd.Process == nil || s.cmd.ProcessState != nil {
		return
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

var userCount struct {
	sync.Mutex
	n int
}

// AddUser creates a user with scopes through the CLI; returns its email.
func (s *Server) AddUser(t testing.TB, scopes ...string) string {
	t.Helper()
	userCount.Lock()
	userCount.n++
	email := fmt.Sprintf("go-%d-%d@example.com", os.Getpid(), userCount.n)
	userCount.Unlock()
	args := []string{"users", "add", "--email", email, "--password-stdin", "--database-url", s.DatabaseURL}
	for _, scope := range scopes {
		args = append(args, "--scope", scope)
	}
	cmd := exec.Command(s.cmd.Path, args...)
	cmd.Env = s.env
	cmd.Stdin = strings.NewReader(Password)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("authsvc users add: %v\n%s", err, out)
	}
	return email
}

// SignIn signs a new user with scopes in.
func (s *Server) SignIn(t testing.TB, scopes ...string) *authsvcv1.SignInResponse {
	t.Helper()
	email := s.AddUser(t, scopes...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := s.Auth.SignIn(ctx, &authsvcv1.SignInRequest{
		Identifier: &authsvcv1.SignInRequest_Email{Email: email}, Password: Password})
	if err != nil {
		t.Fatalf("SignIn: %v", err)
	}
	return resp
}

// WatchToken returns an access-token source for a new service account
// allowed to follow WatchRevocations.
func (s *Server) WatchToken(t testing.TB) func(context.Context) (string, error) {
	t.Helper()
	token := s.SignIn(t, "authsvc.revocations").GetAccessToken()
	return func(context.Context) (string, error) { return token, nil }
}

// Bin is the authsvc command the tests run.
func Bin(t testing.TB) string { return setting(t, "AUTHSVC_TEST_BIN") }
