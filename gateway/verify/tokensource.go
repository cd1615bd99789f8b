package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Identifier names the account a TokenSource signs in as: Email, Phone or Username.
type Identifier struct{ kind, value string }

// Email, Phone and Username name an account by one of its identifiers.
func Email(address string) Identifier { return Identifier{"email", address} }
func Phone(number string) Identifier  { return Identifier{"phone", number} }
func Username(name string) Identifier { return Identifier{"username", name} }
func (i Identifier) String() string   { return i.kind + " " + i.value }
func (i Identifier) valid() bool      { return i.kind != "" && i.value != "" }

// TokenSourceOptions configure a TokenSource. Zero values take the defaults named.
type TokenSourceOptions struct {
	// RefreshAfter is the fraction of an access token's lifetime after which
	// it is refreshed (0.8); each token is refreshed up to Jitter (0.1) of
	// its lifetime earlier, at random, so replicas do not refresh together.
	RefreshAfter float64
	Jitter       float64
	Timeout      time.Duration    // deadline of each SignIn and Refresh, 5 s
	Now          func() time.Time // time.Now
	Logger       *slog.Logger     // slog.Default()
}

// ErrSignInRefused: authsvc refused the account's sign-in for good (wrong
// password, disabled or unknown account, a second factor required, an
// unverified identifier, a malformed identifier). A TokenSource that got it
// gives it to every later call; restart the service with the right
// password. Its text names authsvc's reason, never the password.
var ErrSignInRefused = errors.New("verify: authsvc refused the service account's sign-in")

// TokenSource holds a session of a service's own authsvc account and gives
// a current access token: it signs in on first use, refreshes the token
// after RefreshAfter of its lifetime, and signs in again when the session
// ends (the refresh token refused: REFRESH_TOKEN_INVALID, REFRESH_TOKEN_REUSED,
// the session revoked or expired), so it keeps the password in memory.
// However many callers ask, one SignIn or Refresh is in flight; while the
// current token is still valid callers go on with it and none waits. After
// a failure (UNAVAILABLE, RATE_LIMITED, …) no call reaches authsvc before
// the backoff (0.1 s doubling to 5 s, ±20 %; at least RetryInfo's delay) is
// over. Safe for concurrent use; errors and logs carry codes and reasons,
// never the password or a token.
//
// Use it as the verifier's watch credential (Options.Account), as call
// credentials towards other services (PerRPCCredentials), or call Token.
type TokenSource struct {
	client   authsvcv1.AuthClient
	request  *authsvcv1.SignInRequest // holds the password
	opts     TokenSourceOptions
	describe string

	mu      sync.Mutex
	current *grant        // nil until signed in, and after the session ended
	flight  chan struct{} // closed when the SignIn or Refresh in flight ends
	retryAt time.Time     // after a failure, no attempt before
	failure error         // the last failure, while retryAt is ahead
	ended   error         // ErrSignInRefused, for good
	backoff backoff
}

// grant is one access token and what to do with it when.
type grant struct {
	access, refresh    string
	sessionID, userID  string
	refreshAt, expires time.Time
	refused            bool // a call refused it: renew before handing it out again
}

// NewTokenSource returns a source signing in to authsvc over conn as the
// account id with password; nothing is sent before the first Token.
func NewTokenSource(conn grpc.ClientConnInterface, id Identifier, password string, opts TokenSourceOptions,
) (*TokenSource, error) {
	if !id.valid() {
		return nil, errors.New("verify: NewTokenSource needs an identifier: Email, Phone or Username")
	}
	if password == "" {
		return nil, errors.New("verify: NewTokenSource needs the account's password")
	}
	if opts.RefreshAfter == 0 {
		opts.RefreshAfter = 0.8
	}
	if opts.Jitter == 0 {
		opts.Jitter = 0.1
	}
	if opts.RefreshAfter <= 0 || opts.RefreshAfter >= 1 || opts.Jitter < 0 || opts.Jitter >= opts.RefreshAfter {
		return nil, errors.New("verify: RefreshAfter must be within (0, 1), Jitter within [0, RefreshAfter)")
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	req := &authsvcv1.SignInRequest{Password: password}
	switch id.kind {
	case "email":
		req.Identifier = &authsvcv1.SignInRequest_Email{Email: id.value}
	case "phone":
		req.Identifier = &authsvcv1.SignInRequest_Phone{Phone: id.value}
	case "username":
		req.Identifier = &authsvcv1.SignInRequest_Username{Username: id.value}
	}
	return &TokenSource{client: authsvcv1.NewAuthClient(conn), request: req, opts: opts,
		describe: id.String()}, nil
}

// Token returns a current access token, signing in or refreshing first
// when needed. It waits only when it has no valid token to give; then it
// returns ctx's error if ctx ends first (the attempt goes on for the others).
func (t *TokenSource) Token(ctx context.Context) (string, error) {
	for {
		t.mu.Lock()
		if t.ended != nil {
			t.mu.Unlock()
			return "", t.ended
		}
		now := t.opts.Now()
		g := t.current
		if g != nil && !g.refused && now.Before(g.refreshAt) {
			t.mu.Unlock()
			return g.access, nil
		}
		usable := g != nil && !g.refused && now.Before(g.expires)
		if t.flight == nil {
			if now.Before(t.retryAt) {
				err := t.failure
				t.mu.Unlock()
				if usable {
					return g.access, nil
				}
				return "", err
			}
			t.flight = make(chan struct{})
			go t.renew(g, t.flight)
		}
		flight := t.flight
		t.mu.Unlock()
		if usable {
			return g.access, nil
		}
		select {
		case <-flight:
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

// Refused tells the source that a call refused token (UNAUTHENTICATED:
// the session revoked, the token expired): the next Token renews it first.
// A token other than the current one is ignored.
func (t *TokenSource) Refused(token string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current != nil && t.current.access == token {
		t.current.refused = true
	}
}

// SessionID is the id of the current session ("" before the first sign-in).
func (t *TokenSource) SessionID() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.current == nil {
		return ""
	}
	return t.current.sessionID
}

// SignOut revokes the current session, if any; a later Token signs in again.
func (t *TokenSource) SignOut(ctx context.Context) error {
	t.mu.Lock()
	g := t.current
	t.current = nil
	t.mu.Unlock()
	if g == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, t.opts.Timeout)
	defer cancel()
	_, err := t.client.Revoke(ctx, &authsvcv1.RevokeRequest{Token: g.refresh,
		TokenTypeHint: authsvcv1.TokenTypeHint_TOKEN_TYPE_HINT_REFRESH_TOKEN})
	if err != nil {
		return fmt.Errorf("verify: signing the service account out failed: %s", status.Code(err))
	}
	return nil
}

// renew is the one attempt in flight: Refresh when there is a session,
// SignIn when there is none or authsvc refused its refresh token.
func (t *TokenSource) renew(g *grant, flight chan struct{}) {
	next, ended, err := t.attempt(g)
	t.mu.Lock()
	defer t.mu.Unlock()
	defer close(flight)
	t.flight = nil
	switch {
	case err == nil:
		t.current, t.failure, t.retryAt = next, nil, time.Time{}
		t.backoff.reset()
	case errors.Is(err, ErrSignInRefused):
		t.current, t.ended = nil, err
		t.opts.Logger.Error("authsvc refused the service account's sign-in; restart with the right password",
			"account", t.describe, "error", err.Error())
	default:
		if ended {
			t.current = nil // its refresh token is dead: sign in next time
		}
		wait := t.backoff.wait()
		if delay := retryDelay(err); delay > wait {
			wait = delay
		}
		t.failure, t.retryAt = fmt.Errorf("verify: no access token for the service account: %w", err),
			t.opts.Now().Add(wait)
		t.opts.Logger.Warn("getting the service account's access token failed; retrying",
			"account", t.describe, "code", status.Code(err).String(), "retry_in", wait)
	}
}

// attempt reports ended when authsvc refused g's refresh token.
func (t *TokenSource) attempt(g *grant) (next *grant, ended bool, err error) {
	if g != nil {
		ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
		sent := t.opts.Now()
		resp, err := t.client.Refresh(ctx, &authsvcv1.RefreshRequest{RefreshToken: g.refresh})
		cancel()
		if err == nil {
			return t.grantOf(resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetSessionId(),
				resp.GetUserId(), resp.GetExpiresIn(), sent), false, nil
		}
		if c := status.Code(err); c != codes.Unauthenticated && c != codes.InvalidArgument {
			return nil, false, err
		}
		ended = true
		t.opts.Logger.Warn("the service account's session ended; signing in again",
			"account", t.describe, "session_id", g.sessionID, "reason", reasonOf(err))
	}
	ctx, cancel := context.WithTimeout(context.Background(), t.opts.Timeout)
	defer cancel()
	sent := t.opts.Now()
	resp, err := t.client.SignIn(ctx, t.request)
	if err != nil {
		if c := status.Code(err); c == codes.Unauthenticated || c == codes.InvalidArgument {
			return nil, ended, fmt.Errorf("%w (%s %s)", ErrSignInRefused, c, reasonOf(err))
		}
		return nil, ended, err
	}
	t.opts.Logger.Info("the service account signed in", "account", t.describe, "session_id", resp.GetSessionId())
	return t.grantOf(resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetSessionId(),
		resp.GetUserId(), resp.GetExpiresIn(), sent), ended, nil
}

// grantOf counts the token's lifetime from when the request was sent, so a
// slow answer makes it expire early here, never late.
func (t *TokenSource) grantOf(access, refresh, sid, uid string, expiresIn int64, sent time.Time) *grant {
	lifetime := time.Duration(expiresIn) * time.Second
	after := t.opts.RefreshAfter - t.opts.Jitter*rand.Float64()
	return &grant{access: access, refresh: refresh, sessionID: sid, userID: uid,
		refreshAt: sent.Add(time.Duration(after * float64(lifetime))), expires: sent.Add(lifetime)}
}

// reasonOf is the ErrorInfo reason of a failed call, else its code.
func reasonOf(err error) string {
	st := status.Convert(err)
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetReason() != "" {
			return info.GetReason()
		}
	}
	return st.Code().String()
}

// retryDelay is the RetryInfo delay of a RATE_LIMITED answer, else 0.
func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if info, ok := d.(*errdetails.RetryInfo); ok {
			return info.GetRetryDelay().AsDuration()
		}
	}
	return 0
}
