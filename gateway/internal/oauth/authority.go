package oauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// remoteTimeout bounds each Validate the gateway asks authsvc itself.
const remoteTimeout = 10 * time.Second

// authority decides bearers: with the Go verifier while it is current,
// otherwise (no verifier, not ready, feed staler than allowed) by asking
// authsvc's Validate. Both give the same answer for every token; the
// counters say which one answered.
type authority struct {
	v      *verify.Verifier // nil when the gateway has no watch account
	client authsvcv1.AuthClient

	// names are the issuer and audience introspection reports as iss and aud.
	names func(context.Context) (issuer, audience string, err error)

	local, forwarded atomic.Int64
}

// decide returns the claims of token or its refusal (*verify.Error).
func (a *authority) decide(ctx context.Context, token string) (*verify.Claims, error) {
	if a.v != nil && a.v.Current() {
		claims, err := a.v.Verify(ctx, token)
		if !errors.Is(err, verify.ErrUnavailable) {
			a.local.Add(1)
			return claims, err
		}
	}
	a.forwarded.Add(1)
	return a.remote(ctx, token)
}

func (a *authority) remote(ctx context.Context, token string) (*verify.Claims, error) {
	if token == "" {
		return nil, verify.ErrTokenMissing
	}
	if len(token) > verify.MaxTokenLength {
		return nil, verify.ErrTokenInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	resp, err := a.client.Validate(ctx, &authsvcv1.ValidateRequest{AccessToken: token})
	if err != nil {
		return nil, errorOf(status.Convert(err))
	}
	return &verify.Claims{UserID: resp.GetUserId(), SessionID: resp.GetSessionId(), TokenID: resp.GetTokenId(),
		Scopes: resp.GetScopes(), IssuedAt: float64(resp.GetIssuedAt().GetSeconds()),
		NotBefore: float64(resp.GetIssuedAt().GetSeconds()), ExpiresAt: float64(resp.GetExpiresAt().GetSeconds()),
		AMR: resp.GetAmr(), ACR: resp.GetAcr(), AuthTime: float64(resp.GetAuthTime().GetSeconds())}, nil
}

// errorOf is the refusal a failed Validate stands for (as
// authsvc.guard.status.token_error_of reads it): anything but a token
// refusal fails closed as ErrUnavailable.
func errorOf(st *status.Status) *verify.Error {
	if st.Code() != codes.Unauthenticated && st.Code() != codes.InvalidArgument {
		return verify.ErrUnavailable
	}
	reason := ""
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			reason = info.GetReason()
		}
	}
	switch {
	case reason == "TOKEN_MISSING":
		return verify.ErrTokenMissing
	case reason == "TOKEN_EXPIRED":
		return verify.ErrTokenExpired
	case reason == "TOKEN_REVOKED":
		return verify.ErrTokenRevoked
	case st.Message() == verify.ErrMalformedAuthorization.Message:
		return verify.ErrMalformedAuthorization
	case st.Message() == verify.ErrTokenNotYetValid.Message:
		return verify.ErrTokenNotYetValid
	}
	return verify.ErrTokenInvalid
}

// serviceToken is the watch account's access token: signed in once, then
// refreshed when less than a minute of it is left (signed in again if the
// refresh fails), each time WatchRevocations (re)connects.
type serviceToken struct {
	client   authsvcv1.AuthClient
	email    string
	password string

	mu      sync.Mutex
	access  string
	expires time.Time
	refresh string
}

func (t *serviceToken) token(ctx context.Context) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.access != "" && time.Until(t.expires) > time.Minute {
		return t.access, nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	if t.refresh != "" {
		resp, err := t.client.Refresh(ctx, &authsvcv1.RefreshRequest{RefreshToken: t.refresh})
		if err == nil {
			t.store(resp.GetAccessToken(), resp.GetExpiresIn(), resp.GetRefreshToken())
			return t.access, nil
		}
	}
	resp, err := t.client.SignIn(ctx, &authsvcv1.SignInRequest{
		Identifier: &authsvcv1.SignInRequest_Email{Email: t.email}, Password: t.password})
	if err != nil {
		return "", err
	}
	t.store(resp.GetAccessToken(), resp.GetExpiresIn(), resp.GetRefreshToken())
	return t.access, nil
}

func (t *serviceToken) store(access string, expiresIn int64, refresh string) {
	t.access, t.refresh = access, refresh
	t.expires = time.Now().Add(time.Duration(expiresIn) * time.Second)
}
