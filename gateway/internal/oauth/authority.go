package oauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
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
	resp, err := a.validate(ctx, token, false)
	if err != nil {
		return nil, err
	}
	return claimsOf(resp), nil
}

// profiled returns the claims of token and its user's profile (the OIDC
// standard claims of the user's identifiers): from the token itself when
// the Go verifier accepts it and it carries them (authsvc's
// AUTHSVC_ACCESS_TOKEN_PROFILE), else from authsvc's Validate asked for the
// profile, which reads the user's row (or the token's own claims).
func (a *authority) profiled(ctx context.Context, token string) (*verify.Claims, map[string]any, error) {
	if a.v != nil && a.v.Current() {
		claims, err := a.v.Verify(ctx, token)
		if !errors.Is(err, verify.ErrUnavailable) {
			if err != nil {
				a.local.Add(1)
				return nil, nil, err
			}
			if profile := carriedProfile(token); profile != nil {
				a.local.Add(1)
				return claims, profile, nil
			}
		}
	}
	a.forwarded.Add(1)
	resp, err := a.validate(ctx, token, true)
	if err != nil {
		return nil, nil, err
	}
	return claimsOf(resp), profileOf(resp), nil
}

// validate asks authsvc's Validate about token (and, with profile, for
// its user's profile); a refusal is the *verify.Error it stands for.
func (a *authority) validate(ctx context.Context, token string, profile bool) (*authsvcv1.ValidateResponse, error) {
	if token == "" {
		return nil, verify.ErrTokenMissing
	}
	if len(token) > verify.MaxTokenLength {
		return nil, verify.ErrTokenInvalid
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	resp, err := a.client.Validate(ctx, &authsvcv1.ValidateRequest{AccessToken: token, Profile: profile})
	if err != nil {
		return nil, errorOf(status.Convert(err))
	}
	return resp, nil
}

func claimsOf(resp *authsvcv1.ValidateResponse) *verify.Claims {
	return &verify.Claims{UserID: resp.GetUserId(), SessionID: resp.GetSessionId(), TokenID: resp.GetTokenId(),
		Scopes: resp.GetScopes(), IssuedAt: float64(resp.GetIssuedAt().GetSeconds()),
		NotBefore: float64(resp.GetIssuedAt().GetSeconds()), ExpiresAt: float64(resp.GetExpiresAt().GetSeconds()),
		AMR: resp.GetAmr(), ACR: resp.GetAcr(), AuthTime: float64(resp.GetAuthTime().GetSeconds())}
}

// profileOf is the profile in a Validate answer, by the OIDC names; a
// claim the user has no identifier for is absent.
func profileOf(resp *authsvcv1.ValidateResponse) map[string]any {
	profile := map[string]any{}
	if resp.Email != nil {
		profile["email"] = resp.GetEmail()
	}
	if resp.EmailVerified != nil {
		profile["email_verified"] = resp.GetEmailVerified()
	}
	if resp.PhoneNumber != nil {
		profile["phone_number"] = resp.GetPhoneNumber()
	}
	if resp.PhoneNumberVerified != nil {
		profile["phone_number_verified"] = resp.GetPhoneNumberVerified()
	}
	if resp.PreferredUsername != nil {
		profile["preferred_username"] = resp.GetPreferredUsername()
	}
	return profile
}

// profileClaims are the OIDC claims of a profile and whether each is a
// string (else a boolean), as authsvc's core.tokens.PROFILE_CLAIMS.
var profileClaims = map[string]bool{
	"email": true, "email_verified": false, "phone_number": true,
	"phone_number_verified": false, "preferred_username": true,
}

// carriedProfile is the profile an access token the verifier accepted
// carries (its payload is then authsvc's); nil when it carries none, or
// one that is not shaped as authsvc issues it (authsvc then decides).
func carriedProfile(token string) map[string]any {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil
	}
	var payload map[string]any
	if json.Unmarshal(raw, &payload) != nil {
		return nil
	}
	profile := map[string]any{}
	for name, isString := range profileClaims {
		value, ok := payload[name]
		if !ok {
			continue
		}
		if _, str := value.(string); str != isString {
			return nil
		}
		if _, flag := value.(bool); !isString && !flag {
			return nil
		}
		profile[name] = value
	}
	if len(profile) == 0 {
		return nil
	}
	return profile
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
