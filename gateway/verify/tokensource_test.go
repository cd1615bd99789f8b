package verify_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/credentials/local"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

const (
	accountEmail    = "orders@example.com"
	accountPassword = "a long service password"
	lifetime        = 900 * time.Second
	waitBound       = 30 * time.Second // bound of every wait on a loaded machine
)

// fakeAuth is an authsvc Auth service of sessions in memory, served over a
// real gRPC listener: SignIn checks the password, Refresh rotates refresh
// tokens and refuses those of revoked sessions, WatchRevocations checks the
// bearer and holds the stream open. fail, when set, answers a call instead.
type fakeAuth struct {
	authsvcv1.UnimplementedAuthServer
	mu       sync.Mutex
	n        int
	refresh  map[string]string // live refresh token → session id
	revoked  map[string]bool   // session ids
	access   map[string]string // access token → session id
	bearers  []string          // the bearer of each WatchRevocations, in order
	endWatch chan error        // a value ends the open WatchRevocations with it
	fail     func(method string) error
	gate     chan struct{} // when set, SignIn and Refresh wait for it to close
	signIns  atomic.Int32
	refreshs atomic.Int32
	arrived  atomic.Int32 // SignIn and Refresh calls that reached the handler
}

func serveFake(t *testing.T) (*fakeAuth, *grpc.ClientConn) {
	t.Helper()
	f := &fakeAuth{refresh: map[string]string{}, revoked: map[string]bool{}, access: map[string]string{},
		endWatch: make(chan error, 1)}
	srv := grpc.NewServer()
	authsvcv1.RegisterAuthServer(srv, f)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return f, conn
}

func refusedWith(code codes.Code, reason string, retry time.Duration) error {
	st, err := status.New(code, "refused").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: "authsvc"})
	if err == nil && retry > 0 {
		st, err = st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retry)})
	}
	if err != nil {
		panic(err)
	}
	return st.Err()
}

func (f *fakeAuth) failWith(fail func(method string) error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fail = fail
}

func (f *fakeAuth) holdAt(gate chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gate = gate
}

func (f *fakeAuth) enter(method string) error {
	f.arrived.Add(1)
	f.mu.Lock()
	gate, fail := f.gate, f.fail
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if fail != nil {
		return fail(method)
	}
	return nil
}

// issueLocked starts or continues session sid with new tokens.
func (f *fakeAuth) issueLocked(sid string) (access, refresh string) {
	f.n++
	access, refresh = fmt.Sprintf("access-%d", f.n), fmt.Sprintf("refresh-%d", f.n)
	f.access[access], f.refresh[refresh] = sid, sid
	return access, refresh
}

func (f *fakeAuth) SignIn(_ context.Context, r *authsvcv1.SignInRequest) (*authsvcv1.SignInResponse, error) {
	f.signIns.Add(1)
	if err := f.enter("SignIn"); err != nil {
		return nil, err
	}
	if r.GetEmail() != accountEmail || r.GetPassword() != accountPassword {
		return nil, refusedWith(codes.Unauthenticated, "INVALID_CREDENTIALS", 0)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sid := fmt.Sprintf("session-%d", f.n+1)
	access, refresh := f.issueLocked(sid)
	return &authsvcv1.SignInResponse{AccessToken: access, RefreshToken: refresh, ExpiresIn: int64(lifetime.Seconds()),
		SessionId: sid, UserId: "user-1", TokenType: "Bearer"}, nil
}

func (f *fakeAuth) Refresh(_ context.Context, r *authsvcv1.RefreshRequest) (*authsvcv1.RefreshResponse, error) {
	f.refreshs.Add(1)
	if err := f.enter("Refresh"); err != nil {
		return nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	sid, ok := f.refresh[r.GetRefreshToken()]
	if !ok || f.revoked[sid] {
		return nil, refusedWith(codes.Unauthenticated, "REFRESH_TOKEN_INVALID", 0)
	}
	delete(f.refresh, r.GetRefreshToken())
	access, refresh := f.issueLocked(sid)
	return &authsvcv1.RefreshResponse{AccessToken: access, RefreshToken: refresh, ExpiresIn: int64(lifetime.Seconds()),
		SessionId: sid, UserId: "user-1", TokenType: "Bearer"}, nil
}

func (f *fakeAuth) GetJwks(context.Context, *authsvcv1.GetJwksRequest) (*authsvcv1.GetJwksResponse, error) {
	return &authsvcv1.GetJwksResponse{}, nil
}

func (f *fakeAuth) WatchRevocations(_ *authsvcv1.WatchRevocationsRequest,
	stream grpc.ServerStreamingServer[authsvcv1.WatchRevocationsResponse]) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	bearer := strings.TrimPrefix(strings.Join(md.Get("authorization"), ","), "Bearer ")
	f.mu.Lock()
	f.bearers = append(f.bearers, bearer)
	sid, known := f.access[bearer]
	revoked := f.revoked[sid]
	f.mu.Unlock()
	switch {
	case !known:
		return refusedWith(codes.Unauthenticated, "TOKEN_INVALID", 0)
	case revoked:
		return refusedWith(codes.Unauthenticated, "TOKEN_REVOKED", 0)
	}
	if err := stream.Send(&authsvcv1.WatchRevocationsResponse{Snapshot: true}); err != nil {
		return err
	}
	select {
	case err := <-f.endWatch:
		return err
	case <-stream.Context().Done():
		return nil
	}
}

func (f *fakeAuth) revoke(sid string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[sid] = true
}

func (f *fakeAuth) watchBearers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.bearers...)
}

func newClock() *testclock.Clock { return testclock.At(time.Unix(1_800_000_000, 0)) }

func newSource(t *testing.T, conn grpc.ClientConnInterface, c *testclock.Clock) *verify.TokenSource {
	t.Helper()
	source, err := verify.NewTokenSource(conn, verify.Email(accountEmail), accountPassword,
		verify.TokenSourceOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return source
}

func token(t *testing.T, source *verify.TokenSource) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	tok, err := source.Token(ctx)
	if err != nil {
		t.Fatalf("Token: %v", err)
	}
	return tok
}

// eventually polls cond until it holds or waitBound runs out.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitBound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", waitBound, what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTheFirstTokenSignsInAndLaterOnesReuseIt(t *testing.T) {
	// A source signs in once, with the account's identifier and password, and hands out that token.
	auth, conn := serveFake(t)
	source := newSource(t, conn, newClock())

	first, second := token(t, source), token(t, source)

	if first != "access-1" || second != first {
		t.Errorf("tokens %q, %q; want access-1 twice", first, second)
	}
	if n := auth.signIns.Load(); n != 1 {
		t.Errorf("%d SignIns; want 1", n)
	}
	if source.SessionID() != "session-1" {
		t.Errorf("session %q", source.SessionID())
	}
}

func TestTheTokenIsRefreshedAfterItsFractionOfTheLifetimeNotBefore(t *testing.T) {
	// Before 70 % of the lifetime the token stays; past 80 % one Refresh replaces it, while it is still valid.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	first := token(t, source)

	c.Advance(lifetime * 69 / 100)
	early := token(t, source)
	refreshesEarly := auth.refreshs.Load()
	c.Advance(lifetime * 12 / 100)
	_ = token(t, source) // still valid: handed out while the Refresh runs
	eventually(t, "the refreshed token", func() bool { return token(t, source) != first })

	if early != first || refreshesEarly != 0 {
		t.Errorf("at 69 %%: token %q after %d Refreshes; want %q and none", early, refreshesEarly, first)
	}
	if got := token(t, source); got != "access-2" {
		t.Errorf("after the refresh: %q, want access-2", got)
	}
	if auth.refreshs.Load() != 1 || auth.signIns.Load() != 1 {
		t.Errorf("%d Refreshes, %d SignIns; want 1 and 1", auth.refreshs.Load(), auth.signIns.Load())
	}
}

func TestCallersWithAValidTokenDoNotWaitForTheRefresh(t *testing.T) {
	// While a Refresh hangs, a token still within its lifetime is handed out at once.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	first := token(t, source)
	gate := make(chan struct{})
	auth.holdAt(gate)
	defer close(gate)
	c.Advance(lifetime * 85 / 100)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	got, err := source.Token(ctx)
	eventually(t, "the Refresh reaching authsvc", func() bool { return auth.arrived.Load() == 2 })
	again, err2 := source.Token(ctx)

	if err != nil || err2 != nil || got != first || again != first {
		t.Errorf("during the refresh: %q %v, %q %v; want %q", got, err, again, err2, first)
	}
}

func TestARevokedSessionSignsInAgain(t *testing.T) {
	// A token refused because its session was revoked is renewed: the Refresh is refused
	// (REFRESH_TOKEN_INVALID), so the source signs in again and hands out the new session's token.
	auth, conn := serveFake(t)
	source := newSource(t, conn, newClock())
	first := token(t, source)
	auth.revoke("session-1")

	source.Refused(first)
	next := token(t, source)

	if next == first || source.SessionID() != "session-2" {
		t.Errorf("after the revocation: token %q of %s; want a token of session-2", next, source.SessionID())
	}
	if auth.refreshs.Load() != 1 || auth.signIns.Load() != 2 {
		t.Errorf("%d Refreshes, %d SignIns; want 1 and 2", auth.refreshs.Load(), auth.signIns.Load())
	}
}

func TestAReusedRefreshTokenAlsoSignsInAgain(t *testing.T) {
	// REFRESH_TOKEN_REUSED (authsvc revoked the whole session) at the due refresh: a new sign-in.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	first := token(t, source)
	auth.failWith(func(method string) error {
		if method == "Refresh" {
			return refusedWith(codes.Unauthenticated, "REFRESH_TOKEN_REUSED", 0)
		}
		return nil
	})

	c.Advance(lifetime + time.Second)
	next := token(t, source)

	if next == first || auth.signIns.Load() != 2 {
		t.Errorf("token %q after %d SignIns; want a new one after 2", next, auth.signIns.Load())
	}
}

func TestTheVerifierSignsItsWatchInAgainAfterARevocation(t *testing.T) {
	// Given Options.Account, the verifier's WatchRevocations stream refused because the account's
	// session was revoked reconnects with the token of a new sign-in, not the revoked one.
	auth, conn := serveFake(t)
	source := newSource(t, conn, newClock())
	v, err := verify.New(conn, verify.Options{Account: source})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	auth.revoke("session-1")
	auth.endWatch <- refusedWith(codes.Unauthenticated, "TOKEN_REVOKED", 0)
	eventually(t, "the watch following again", func() bool {
		bearers := auth.watchBearers()
		return v.Following() && bearers[len(bearers)-1] != "access-1"
	})

	bearers := auth.watchBearers()
	if bearers[0] != "access-1" || bearers[len(bearers)-1] != "access-2" || source.SessionID() != "session-2" {
		t.Errorf("watch bearers %v, session %s; want access-1 … access-2 of session-2", bearers, source.SessionID())
	}
}

func TestConcurrentCallersShareOneSignInAndOneRefresh(t *testing.T) {
	// Fifty callers without a valid token wait for one SignIn, later for one Refresh, and all get its token.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)

	for round, want := range []string{"access-1", "access-2"} {
		gate := make(chan struct{})
		auth.holdAt(gate)
		const callers = 50
		var started sync.WaitGroup
		var wg sync.WaitGroup
		got := make([]string, callers)
		errs := make([]error, callers)
		started.Add(callers)
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				started.Done()
				ctx, cancel := context.WithTimeout(context.Background(), waitBound)
				defer cancel()
				got[i], errs[i] = source.Token(ctx)
			}()
		}
		started.Wait()
		eventually(t, "the first call reaching authsvc", func() bool { return auth.arrived.Load() == int32(round+1) })
		close(gate)
		wg.Wait()

		for i := range callers {
			if errs[i] != nil || got[i] != want {
				t.Fatalf("round %d caller %d: %q %v; want %q", round, i, got[i], errs[i], want)
			}
		}
		c.Advance(lifetime + time.Second) // the next round finds the token expired
	}
	if auth.signIns.Load() != 1 || auth.refreshs.Load() != 1 {
		t.Errorf("%d SignIns, %d Refreshes; want 1 and 1", auth.signIns.Load(), auth.refreshs.Load())
	}
}

func TestAnUnavailableAuthsvcIsRetriedAfterABackoffNotBefore(t *testing.T) {
	// After an UNAVAILABLE sign-in, calls fail at once without reaching authsvc until the backoff
	// is over (at most 0.12 s for the first); the next call after it signs in.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	var down atomic.Bool
	down.Store(true)
	auth.failWith(func(string) error {
		if down.Load() {
			return status.Error(codes.Unavailable, "authsvc is down")
		}
		return nil
	})
	ctx := context.Background()

	_, first := source.Token(ctx)
	_, during := source.Token(ctx)
	callsDuring := auth.signIns.Load()
	down.Store(false)
	c.Advance(120 * time.Millisecond)
	after := token(t, source)

	if status.Code(first) != codes.Unavailable || status.Code(during) != codes.Unavailable {
		t.Errorf("errors %v, %v; want UNAVAILABLE", first, during)
	}
	if callsDuring != 1 {
		t.Errorf("%d SignIns during the backoff; want 1", callsDuring)
	}
	if after != "access-1" || auth.signIns.Load() != 2 {
		t.Errorf("after the backoff: %q after %d SignIns; want access-1 after 2", after, auth.signIns.Load())
	}
}

func TestRateLimitedWaitsForTheRetryDelay(t *testing.T) {
	// RATE_LIMITED with RetryInfo 30 s: no new sign-in before those 30 s, one after.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	auth.failWith(func(string) error {
		if auth.signIns.Load() == 1 {
			return refusedWith(codes.ResourceExhausted, "RATE_LIMITED", 30*time.Second)
		}
		return nil
	})
	_, limited := source.Token(context.Background())

	c.Advance(29 * time.Second)
	_, early := source.Token(context.Background())
	c.Advance(2 * time.Second)
	after := token(t, source)

	if status.Code(limited) != codes.ResourceExhausted || status.Code(early) != codes.ResourceExhausted {
		t.Errorf("errors %v, %v; want RESOURCE_EXHAUSTED", limited, early)
	}
	if after != "access-1" || auth.signIns.Load() != 2 {
		t.Errorf("%q after %d SignIns; want access-1 after 2", after, auth.signIns.Load())
	}
}

func TestAFailedRefreshKeepsTheValidTokenAndFailsOnlyPastExpiry(t *testing.T) {
	// A Refresh failing with UNAVAILABLE leaves the still-valid token in use; past its expiry the
	// call fails with UNAVAILABLE.
	auth, conn := serveFake(t)
	c := newClock()
	source := newSource(t, conn, c)
	first := token(t, source)
	auth.failWith(func(string) error { return status.Error(codes.Unavailable, "authsvc is down") })

	c.Advance(lifetime * 85 / 100)
	during := token(t, source)
	eventually(t, "the Refresh failing", func() bool { return auth.refreshs.Load() == 1 })
	c.Advance(lifetime * 16 / 100)
	_, expired := source.Token(context.Background())

	if during != first {
		t.Errorf("before expiry: %q, want %q", during, first)
	}
	if status.Code(expired) != codes.Unavailable {
		t.Errorf("past expiry: %v, want UNAVAILABLE", expired)
	}
}

func TestARefusedPasswordEndsTheSourceWithoutLeakingIt(t *testing.T) {
	// INVALID_CREDENTIALS is final: ErrSignInRefused naming the reason, never the password, and
	// later calls get it without reaching authsvc.
	auth, conn := serveFake(t)
	source, err := verify.NewTokenSource(conn, verify.Email(accountEmail), "the wrong password",
		verify.TokenSourceOptions{Now: newClock().Now})
	if err != nil {
		t.Fatal(err)
	}

	_, first := source.Token(context.Background())
	_, again := source.Token(context.Background())

	if !errors.Is(first, verify.ErrSignInRefused) || again != first {
		t.Fatalf("errors %v, %v; want ErrSignInRefused twice", first, again)
	}
	if !strings.Contains(first.Error(), "INVALID_CREDENTIALS") || strings.Contains(first.Error(), "wrong password") {
		t.Errorf("error text %q: want the reason, not the password", first)
	}
	if auth.signIns.Load() != 1 {
		t.Errorf("%d SignIns; want 1", auth.signIns.Load())
	}
}

func TestANewSourceNeedsAnIdentifierAndAPassword(t *testing.T) {
	// No identifier, an empty password or a refresh fraction outside (0, 1) is refused at construction.
	_, conn := serveFake(t)
	for name, build := range map[string]func() error{
		"identifier": func() error {
			_, err := verify.NewTokenSource(conn, verify.Identifier{}, accountPassword, verify.TokenSourceOptions{})
			return err
		},
		"password": func() error {
			_, err := verify.NewTokenSource(conn, verify.Username("orders"), "", verify.TokenSourceOptions{})
			return err
		},
		"fraction": func() error {
			_, err := verify.NewTokenSource(conn, verify.Username("orders"), accountPassword,
				verify.TokenSourceOptions{RefreshAfter: 1.5})
			return err
		},
	} {
		if build() == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// echo is a health server recording the authorization metadata it receives.
type echo struct {
	healthpb.HealthServer
	mu   sync.Mutex
	seen []string
}

func (e *echo) Check(ctx context.Context, r *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	e.mu.Lock()
	e.seen = append(e.seen, strings.Join(md.Get("authorization"), ","))
	e.mu.Unlock()
	return e.HealthServer.Check(ctx, r)
}

func TestPerRPCCredentialsSendTheBearerOnlyOverAProtectedConnection(t *testing.T) {
	// Over local credentials the call carries "Bearer <token>"; over a plaintext connection it fails
	// with UNAUTHENTICATED before anything reaches the server.
	_, conn := serveFake(t)
	source := newSource(t, conn, newClock())
	server := &echo{HealthServer: health.NewServer()}
	srv := grpc.NewServer(grpc.Creds(local.NewCredentials()))
	healthpb.RegisterHealthServer(srv, server)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Stop()
	open := func(creds grpc.DialOption) healthpb.HealthClient {
		c, err := grpc.NewClient(ln.Addr().String(), creds, grpc.WithPerRPCCredentials(source.PerRPCCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return healthpb.NewHealthClient(c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitBound)
	defer cancel()

	_, okErr := open(grpc.WithTransportCredentials(local.NewCredentials())).Check(ctx, &healthpb.HealthCheckRequest{})
	_, plainErr := open(grpc.WithTransportCredentials(insecure.NewCredentials())).Check(ctx, &healthpb.HealthCheckRequest{})

	if okErr != nil {
		t.Fatalf("over local credentials: %v", okErr)
	}
	if status.Code(plainErr) != codes.Unauthenticated {
		t.Errorf("over plaintext: %v, want UNAUTHENTICATED", plainErr)
	}
	server.mu.Lock()
	defer server.mu.Unlock()
	if len(server.seen) != 1 || server.seen[0] != "Bearer access-1" {
		t.Errorf("the server saw %q; want one call with Bearer access-1", server.seen)
	}
}
