package verify

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// bearerPattern is authsvc.guard.bearer's: the scheme case-insensitively,
// then an RFC 6750 b64token.
var bearerPattern = regexp.MustCompile(`^[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)$`)

// BearerToken is the token of exactly one authorization value: "" when
// there is none, ErrMalformedAuthorization for two values, another scheme
// or a malformed value (never "first one wins").
func BearerToken(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", ErrMalformedAuthorization
	}
	m := bearerPattern.FindStringSubmatch(values[0])
	if m == nil {
		return "", ErrMalformedAuthorization
	}
	return m[1], nil
}

type claimsKey struct{}

// ClaimsFrom returns the verified claims the interceptor or middleware
// put in ctx; nil in a public method.
func ClaimsFrom(ctx context.Context) *Claims {
	c, _ := ctx.Value(claimsKey{}).(*Claims)
	return c
}

// WithClaims returns ctx carrying claims, as the interceptors publish them.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, claimsKey{}, c)
}

// DefaultPublic are the methods callable without a token: gRPC health
// checking and server reflection.
var DefaultPublic = []string{
	"/grpc.health.v1.Health/Check",
	"/grpc.health.v1.Health/List",
	"/grpc.health.v1.Health/Watch",
	"/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
	"/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
}

// Policy says which methods are public and which scopes others need.
type Policy struct {
	// Public full method names ("/pkg.Service/Method"); nil: DefaultPublic.
	Public []string
	// Scopes maps a service ("pkg.Service") or a full method name to the
	// scopes it needs; a method needs those of its service and its own.
	Scopes map[string][]string
	// RequireAMR maps a service or a full method name to amr values of which
	// the token must carry at least one (e.g. "otp", "hwk", "swk": any second
	// factor); MaxAge to the most seconds since the user authenticated (the
	// token's auth_time). A method's own entry wins over its service's. A
	// token that falls short is refused UNAUTHENTICATED
	// INSUFFICIENT_USER_AUTHENTICATION with an RFC 9470 challenge, as
	// authsvc's Python interceptor does.
	RequireAMR map[string][]string
	MaxAge     map[string]int
}

func (p Policy) public(method string) bool {
	public := p.Public
	if public == nil {
		public = DefaultPublic
	}
	for _, m := range public {
		if m == method {
			return true
		}
	}
	return false
}

func (p Policy) scopesOf(method string) []string {
	service := strings.TrimPrefix(method, "/")
	if i := strings.LastIndex(service, "/"); i >= 0 {
		service = service[:i]
	}
	return append(append([]string(nil), p.Scopes[service]...), p.Scopes[method]...)
}

func serviceOf(method string) string {
	service := strings.TrimPrefix(method, "/")
	if i := strings.LastIndex(service, "/"); i >= 0 {
		service = service[:i]
	}
	return service
}

// stepUp checks the token's amr and auth_time against what method asks.
func (p Policy) stepUp(method string, claims *Claims, now float64) error {
	amr, ok := p.RequireAMR[method]
	if !ok {
		amr = p.RequireAMR[serviceOf(method)]
	}
	maxAge, ok := p.MaxAge[method]
	if !ok {
		if maxAge, ok = p.MaxAge[serviceOf(method)]; !ok {
			maxAge = -1
		}
	}
	short := len(amr) > 0 && !claims.HasAnyAMR(amr...)
	stale := maxAge >= 0 && (claims.AuthTime == 0 || now-claims.AuthTime > float64(maxAge))
	if short || stale {
		return InsufficientUserAuthentication(amr, maxAge)
	}
	return nil
}

// authorize verifies the call's bearer and checks the method's scopes and step-up.
func (v *Verifier) authorize(ctx context.Context, p Policy, method string) (context.Context, error) {
	if p.public(method) {
		return ctx, nil
	}
	md, _ := metadata.FromIncomingContext(ctx)
	token, err := BearerToken(md.Get("authorization"))
	if err != nil {
		return nil, err
	}
	claims, err := v.Verify(ctx, token)
	if err != nil {
		return nil, err
	}
	if need := p.scopesOf(method); !claims.HasScopes(need...) {
		return nil, InsufficientScope(need...)
	}
	if err := p.stepUp(method, claims, v.now()); err != nil {
		return nil, err
	}
	return WithClaims(ctx, claims), nil
}

// refuse turns a refusal into the status and trailer authsvc itself sends.
func refuse(ctx context.Context, err error) error {
	e := AsError(err)
	if t := e.Trailer(); t != nil {
		_ = grpc.SetTrailer(ctx, t)
	}
	return e.GRPCStatus().Err()
}

// UnaryServerInterceptor protects every unary method not public under p:
// a refusal is UNAUTHENTICATED (TOKEN_MISSING, TOKEN_INVALID,
// TOKEN_EXPIRED, TOKEN_REVOKED), PERMISSION_DENIED (INSUFFICIENT_SCOPE) or
// UNAVAILABLE, with authsvc's ErrorInfo and www-authenticate trailer.
// Handlers read the claims with ClaimsFrom(ctx).
func (v *Verifier) UnaryServerInterceptor(p Policy) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		authorized, err := v.authorize(ctx, p, info.FullMethod)
		if err != nil {
			return nil, refuse(ctx, err)
		}
		return handler(authorized, req)
	}
}

// StreamServerInterceptor is UnaryServerInterceptor for streaming methods.
func (v *Verifier) StreamServerInterceptor(p Policy) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		authorized, err := v.authorize(ss.Context(), p, info.FullMethod)
		if err != nil {
			return refuse(ss.Context(), err)
		}
		return handler(srv, &claimsStream{ss, authorized})
	}
}

type claimsStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *claimsStream) Context() context.Context { return s.ctx }

// Middleware protects an http.Handler: every request needs a single
// Authorization: Bearer header with a valid token carrying scopes. A
// refusal is 401 (with the RFC 6750 challenge), 403 or 503, its body the
// google.rpc.Status JSON the gateway answers with. The handler reads the
// claims with ClaimsFrom(r.Context()).
func (v *Verifier) Middleware(next http.Handler, scopes ...string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := BearerToken(r.Header.Values("Authorization"))
		var claims *Claims
		if err == nil {
			claims, err = v.Verify(r.Context(), token)
		}
		if err == nil && !claims.HasScopes(scopes...) {
			err = InsufficientScope(scopes...)
		}
		if err != nil {
			WriteHTTPError(w, AsError(err))
			return
		}
		next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
	})
}

// HTTPStatus is the HTTP status of a refusal: 401, 403 or 503.
func (e *Error) HTTPStatus() int {
	switch e.Code {
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.PermissionDenied:
		return http.StatusForbidden
	}
	return http.StatusServiceUnavailable
}

// WriteHTTPError answers a refusal: the status, WWW-Authenticate, and the
// google.rpc.Status as JSON (proto field names), never cached.
func WriteHTTPError(w http.ResponseWriter, e *Error) {
	body, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(e.GRPCStatus().Proto())
	if err != nil {
		body, _ = json.Marshal(map[string]any{"code": int(e.Code), "message": e.Message})
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if c := e.Challenge(); c != "" {
		h.Set("WWW-Authenticate", c)
	}
	w.WriteHeader(e.HTTPStatus())
	_, _ = w.Write(body)
}
