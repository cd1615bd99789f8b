package oauth

import (
	"context"
	"errors"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// edgeValidate is the connection grpc-gateway's handlers call: Validate is
// answered by the Go verifier while it is current, exactly as authsvc would
// answer it (same response, same status, ErrorInfo and www-authenticate
// trailer, which the edge's error handler turns into HTTP); every other
// call, and Validate while the verifier is not current, goes to authsvc.
type edgeValidate struct {
	grpc.ClientConnInterface
	auth *authority
}

func (e edgeValidate) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	req, isValidate := args.(*authsvcv1.ValidateRequest)
	resp, _ := reply.(*authsvcv1.ValidateResponse)
	v := e.auth.v
	if method != authsvcv1.Auth_Validate_FullMethodName || !isValidate || resp == nil ||
		v == nil || !v.Current() || len(req.GetAccessToken()) > verify.MaxTokenLength {
		return e.forward(ctx, method, args, reply, opts)
	}
	token := req.GetAccessToken()
	var err error
	if token == "" { // as authsvc's Validate: the single authorization value
		md, _ := metadata.FromOutgoingContext(ctx)
		token, err = verify.BearerToken(md.Get("authorization"))
	}
	var claims *verify.Claims
	if err == nil {
		claims, err = v.Verify(ctx, token)
	}
	if errors.Is(err, verify.ErrUnavailable) {
		return e.forward(ctx, method, args, reply, opts)
	}
	e.auth.local.Add(1)
	if err != nil {
		refusal := verify.AsError(err)
		for _, o := range opts {
			if t, ok := o.(grpc.TrailerCallOption); ok {
				*t.TrailerAddr = refusal.Trailer()
			}
		}
		return refusal.GRPCStatus().Err()
	}
	resp.UserId, resp.SessionId, resp.TokenId = claims.UserID, claims.SessionID, claims.TokenID
	resp.Scopes = claims.Scopes
	resp.IssuedAt = &timestamppb.Timestamp{Seconds: int64(claims.IssuedAt)}
	resp.ExpiresAt = &timestamppb.Timestamp{Seconds: int64(claims.ExpiresAt)}
	resp.Amr, resp.Acr = claims.AMR, claims.ACR
	if claims.AuthTime != 0 {
		resp.AuthTime = &timestamppb.Timestamp{Seconds: int64(claims.AuthTime)}
	}
	return nil
}

func (e edgeValidate) forward(ctx context.Context, method string, args, reply any, opts []grpc.CallOption) error {
	if method == authsvcv1.Auth_Validate_FullMethodName {
		e.auth.forwarded.Add(1)
	}
	return e.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}
