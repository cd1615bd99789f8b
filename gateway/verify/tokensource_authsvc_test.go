//go:build authsvc

package verify_test

import (
	"context"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/authsvc/authsvc/gateway/verify"
	"github.com/authsvc/authsvc/gateway/verify/authsvctest"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

func TestATokenSourceKeepsTheVerifierFollowingAcrossARevocationOfItsSession(t *testing.T) {
	// A verifier whose watch account is a TokenSource follows real authsvc; when the account's own
	// session is revoked, the source signs in again and the verifier follows on (a revoked user's
	// token refused, a valid one accepted) without anyone restarting it.
	server := authsvctest.Start(t, nil)
	source, err := verify.NewTokenSource(server.Conn, verify.Email(server.AddUser(t, "authsvc.revocations")),
		authsvctest.Password, verify.TokenSourceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v := started(t, server.Conn, verify.Options{Account: source})
	client := protected(t, v)
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	own, err := source.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := source.SessionID()

	if _, err := server.Auth.Revoke(ctx, &authsvcv1.RevokeRequest{Token: own}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the source signed in again", func() bool { return source.SessionID() != first })
	user := server.SignIn(t)
	if _, err := server.Auth.Revoke(ctx, &authsvcv1.RevokeRequest{Token: user.GetAccessToken()}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revoked user refused", func() bool {
		return check(client, withBearer(user.GetAccessToken())).reason == "TOKEN_REVOKED"
	})
	valid := check(client, withBearer(server.SignIn(t).GetAccessToken()))

	if valid.code != codes.OK {
		t.Errorf("a valid token after the watch account signed in again: %+v", valid)
	}
	if !v.Following() {
		t.Error("the verifier is not following")
	}
}

func TestATokenSourceRefreshesWithRealAuthsvc(t *testing.T) {
	// Past 80 % of its lifetime (an injected clock), the source's token is replaced through
	// authsvc's Refresh in the same session, and Validate accepts the new one.
	server := authsvctest.Start(t, nil)
	c := testclock.At(time.Now())
	source, err := verify.NewTokenSource(server.Conn, verify.Email(server.AddUser(t)), authsvctest.Password,
		verify.TokenSourceOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	first, err := source.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	session := source.SessionID()

	c.Advance(850 * time.Second) // authsvc's access tokens live 900 s
	_, _ = source.Token(ctx)     // still valid: the refresh runs meanwhile
	eventually(t, "a refreshed token", func() bool {
		tok, err := source.Token(ctx)
		return err == nil && tok != first
	})
	next, _ := source.Token(ctx)
	validated, err := server.Auth.Validate(ctx, &authsvcv1.ValidateRequest{AccessToken: next})

	if err != nil || validated.GetSessionId() != session || source.SessionID() != session {
		t.Errorf("Validate of the refreshed token: %v, session %q; want session %q", err,
			validated.GetSessionId(), session)
	}
}
