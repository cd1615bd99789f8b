package oauth

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/authsvc/authsvc/gateway/verify"
)

// The headers an allowed request carries upstream; a client's own values
// under these names are overwritten, never passed on.
const (
	UserIDHeader    = "x-authsvc-user-id"
	SessionIDHeader = "x-authsvc-session-id"
	ScopesHeader    = "x-authsvc-scopes"
)

// extAuthz is Envoy's envoy.service.auth.v3.Authorization: Check decides
// the request's single Authorization: Bearer header as the gateway decides
// Validate (the Go verifier while current, else authsvc), and answers OK
// with the x-authsvc-* headers for the upstream, or denied with authsvc's
// status (401 with the RFC 6750 challenge, 403, 503) and its Status JSON.
type extAuthz struct {
	authv3.UnimplementedAuthorizationServer
	auth *authority
}

// serveExtAuthz listens on addr and serves Check until ctx is done.
func serveExtAuthz(ctx context.Context, addr string, auth *authority) (net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--ext-authz-listen: %w", err)
	}
	srv := grpc.NewServer()
	authv3.RegisterAuthorizationServer(srv, &extAuthz{auth: auth})
	slog.Info(fmt.Sprintf("ext_authz listening on %s", ln.Addr()))
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, srv.GracefulStop)
	return ln.Addr(), nil
}

func (x *extAuthz) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	token, err := verify.BearerToken(authorizationValues(req.GetAttributes().GetRequest().GetHttp()))
	var claims *verify.Claims
	if err == nil {
		claims, err = x.auth.decide(ctx, token)
	}
	if err != nil {
		return denied(verify.AsError(err)), nil
	}
	set := func(name, value string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: name, Value: value},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(codes.OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
			Headers: []*corev3.HeaderValueOption{
				set(UserIDHeader, claims.UserID),
				set(SessionIDHeader, claims.SessionID),
				set(ScopesHeader, strings.Join(claims.Scopes, " ")),
			},
		}},
	}, nil
}

// authorizationValues are the request's Authorization values: each entry
// of header_map (Envoy's encode_raw_headers) or of headers, where Envoy
// joins repeated values with a comma (which no token holds, so two values
// fail the Bearer syntax as two entries would).
func authorizationValues(h *authv3.AttributeContext_HttpRequest) []string {
	var values []string
	for _, hv := range h.GetHeaderMap().GetHeaders() {
		if strings.EqualFold(hv.GetKey(), "authorization") {
			value := hv.GetValue()
			if raw := hv.GetRawValue(); len(raw) > 0 {
				value = string(raw)
			}
			values = append(values, value)
		}
	}
	if len(values) > 0 {
		return values
	}
	for k, v := range h.GetHeaders() {
		if strings.EqualFold(k, "authorization") {
			values = append(values, v)
		}
	}
	return values
}

func denied(e *verify.Error) *authv3.CheckResponse {
	body, _ := protojson.MarshalOptions{UseProtoNames: true}.Marshal(e.GRPCStatus().Proto())
	headers := []*corev3.HeaderValueOption{
		{Header: &corev3.HeaderValue{Key: "content-type", Value: "application/json"}},
		{Header: &corev3.HeaderValue{Key: "cache-control", Value: "no-store"}},
	}
	if c := e.Challenge(); c != "" {
		headers = append(headers, &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "www-authenticate", Value: c}})
	}
	return &authv3.CheckResponse{
		Status: &rpcstatus.Status{Code: int32(e.Code), Message: e.Message},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.HTTPStatus())},
			Headers: headers,
			Body:    string(body),
		}},
	}
}
