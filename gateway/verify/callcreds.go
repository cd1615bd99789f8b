package verify

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"
)

// PerRPCCredentials sends the source's access token as the bearer of every
// call on a connection (grpc.WithPerRPCCredentials) or of one call
// (grpc.PerRPCCredentials). The token goes only over a connection with
// privacy and integrity (TLS, or local credentials over a Unix socket) or
// with local credentials on loopback, as Python's call credentials; over
// any other the call fails with UNAUTHENTICATED and nothing is sent. When
// no token can be had the call fails with UNAVAILABLE, or UNAUTHENTICATED
// after ErrSignInRefused.
func (t *TokenSource) PerRPCCredentials() credentials.PerRPCCredentials { return bearerCredentials{t} }

type bearerCredentials struct{ source *TokenSource }

func (c bearerCredentials) GetRequestMetadata(ctx context.Context, _ ...string) (map[string]string, error) {
	info, _ := credentials.RequestInfoFromContext(ctx)
	local := info.AuthInfo != nil && info.AuthInfo.AuthType() == "local"
	if !local && credentials.CheckSecurityLevel(info.AuthInfo, credentials.PrivacyAndIntegrity) != nil {
		return nil, status.Error(codes.Unauthenticated,
			"verify: the service account's token is sent only over TLS or local credentials")
	}
	token, err := c.source.Token(ctx)
	switch {
	case err == nil:
		return map[string]string{"authorization": "Bearer " + token}, nil
	case errors.Is(err, ErrSignInRefused):
		return nil, status.Error(codes.Unauthenticated, err.Error())
	case ctx.Err() != nil:
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return nil, status.Error(codes.Unavailable, err.Error())
}

// RequireTransportSecurity is false so that local credentials on loopback
// pass grpc's own check; GetRequestMetadata checks the connection itself.
func (bearerCredentials) RequireTransportSecurity() bool { return false }
