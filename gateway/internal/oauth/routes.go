package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/authsvc/authsvc/gateway/internal/edge"
	"github.com/authsvc/authsvc/gateway/verify"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// IntrospectScope is the scope a caller of the introspection endpoint needs.
const IntrospectScope = "authsvc.introspect"

// The paths this package serves.
const (
	UserinfoPath    = "/v1/auth/userinfo"
	IntrospectPath  = "/v1/auth/introspect"
	OIDCPath        = "/.well-known/openid-configuration"
	RFC8414Path     = "/.well-known/oauth-authorization-server"
	maxForm         = 64 << 10 // an introspection or revocation form
	maxRefreshToken = 512      // authsvc's refresh_tokens.MAX_LENGTH
)

// Extend is an edge.Config.Extend: it starts the Go verifier (when a watch
// account is configured) and the ext_authz service (when asked), both
// stopped with ctx, and returns the hooks that answer at the edge.
func (s *Settings) Extend(ctx context.Context, conn grpc.ClientConnInterface) (edge.Extension, error) {
	client := authsvcv1.NewAuthClient(conn)
	auth := &authority{client: client, names: s.names(client)}
	if s.WatchEmail != "" {
		source := &serviceToken{client: client, email: s.WatchEmail, password: s.watchPassword}
		v, err := verify.New(conn, s.verifierOptions(verify.Options{MaxStaleness: s.MaxStaleness,
			AccessToken: source.token, Monotonic: s.monotonic}))
		if err != nil {
			return edge.Extension{}, err
		}
		v.Follow()
		context.AfterFunc(ctx, v.Close)
		auth.v = v
	}
	if s.ExtAuthzListen != "" {
		addr, err := serveExtAuthz(ctx, s.ExtAuthzListen, auth)
		if err != nil {
			return edge.Extension{}, err
		}
		s.extAuthzAddr = addr
	}
	s.built = auth
	doc := s.metadata(client)
	s.discovery = doc
	return edge.Extension{
		Conn: func(next grpc.ClientConnInterface) grpc.ClientConnInterface { return edgeValidate{next, auth} },
		// The routes here are served before the edge's JSON-only rule
		// (and its other request rules), which is how they take forms.
		Handler: func(next http.Handler) http.Handler {
			routes := http.NewServeMux()
			routes.Handle("GET "+UserinfoPath, userinfo(auth))
			routes.Handle("POST "+IntrospectPath, introspect(auth))
			routes.Handle("POST "+RevokePath, formRevocation(next))
			if doc != nil {
				routes.Handle("GET "+OIDCPath, doc.orElse(next))
				routes.Handle("GET "+RFC8414Path, doc.orElse(next))
			}
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, pattern := routes.Handler(r); pattern != "" {
					w.Header().Set("X-Content-Type-Options", "nosniff")
					routes.ServeHTTP(w, r)
					return
				}
				next.ServeHTTP(w, r)
			})
		},
	}, nil
}

// verifierOptions is opts with the token rules that were given; the others
// the verifier takes from what authsvc publishes.
func (s *Settings) verifierOptions(opts verify.Options) verify.Options {
	if s.givenRule("issuer") {
		opts.Issuer = s.Issuer
	}
	if s.givenRule("audience") {
		opts.Audience = s.Audience
	}
	if s.givenRule("algorithms") {
		opts.Algorithms = s.Algorithms
	}
	if s.givenRule("leeway") {
		opts.Leeway = s.Leeway
		if s.Leeway == 0 { // verify.Options reads 0 as "published", a negative value as none
			opts.Leeway = -1
		}
	}
	if s.givenRule("access-token-ttl") {
		opts.MaxTokenLifetime = s.AccessTokenTTL
	}
	return opts
}

// bearerOf is the request's single Authorization: Bearer token.
func bearerOf(r *http.Request) (string, error) {
	return verify.BearerToken(r.Header.Values("Authorization"))
}

// userinfo answers GET /v1/auth/userinfo with the bearer token's claims
// (RFC 9068 names) and its user's profile (OpenID Connect's email,
// email_verified, phone_number, phone_number_verified, preferred_username;
// each absent when the user has no such identifier): at the edge when the
// Go verifier is current and the token carries the profile, else from
// authsvc's Validate asked for it (authority.profiled).
func userinfo(auth *authority) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, err := bearerOf(r)
		var claims *verify.Claims
		var profile map[string]any
		if err == nil {
			claims, profile, err = auth.profiled(r.Context(), token)
		}
		if err != nil {
			verify.WriteHTTPError(w, verify.AsError(err))
			return
		}
		answer := map[string]any{
			"sub": claims.UserID, "sid": claims.SessionID, "jti": claims.TokenID,
			"scope": strings.Join(claims.Scopes, " "),
			"iat":   int64(claims.IssuedAt), "exp": int64(claims.ExpiresAt),
		}
		for name, value := range profile {
			answer[name] = value
		}
		writeJSON(w, http.StatusOK, answer)
	})
}

// introspect is RFC 7662: the caller shows a bearer with scope
// authsvc.introspect; the form's token is answered {"active": false}
// unless it is a valid access token, which is answered with its claims.
func introspect(auth *authority) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, err := bearerOf(r)
		var claims *verify.Claims
		if err == nil {
			claims, err = auth.decide(r.Context(), caller)
		}
		if err == nil && !claims.HasScopes(IntrospectScope) {
			err = verify.InsufficientScope(IntrospectScope)
		}
		if err != nil {
			verify.WriteHTTPError(w, verify.AsError(err))
			return
		}
		token, problem := formToken(w, r)
		if problem != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": problem})
			return
		}
		var answer map[string]any
		if r.PostForm.Get("token_type_hint") == "refresh_token" {
			answer, err = auth.refreshToken(r.Context(), caller, token)
			if err == nil && answer == nil {
				answer, err = auth.accessToken(r.Context(), token)
			}
		} else {
			answer, err = auth.accessToken(r.Context(), token)
			if err == nil && answer == nil {
				answer, err = auth.refreshToken(r.Context(), caller, token)
			}
		}
		if err != nil {
			verify.WriteHTTPError(w, verify.ErrUnavailable)
			return
		}
		if answer == nil {
			answer = map[string]any{"active": false}
		}
		writeJSON(w, http.StatusOK, answer)
	})
}

// accessToken is the introspection answer for a valid access token, nil
// for a token that is none; an error when it cannot be decided.
func (a *authority) accessToken(ctx context.Context, token string) (map[string]any, error) {
	found, err := a.decide(ctx, token)
	if errors.Is(err, verify.ErrUnavailable) {
		return nil, err
	}
	if err != nil {
		return nil, nil
	}
	issuer, audience, err := a.names(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"active": true, "token_type": "Bearer", "scope": strings.Join(found.Scopes, " "),
		"sub": found.UserID, "sid": found.SessionID, "jti": found.TokenID,
		"iss": issuer, "aud": audience,
		"iat": int64(found.IssuedAt), "nbf": int64(found.NotBefore), "exp": int64(found.ExpiresAt),
	}, nil
}

// refreshToken asks authsvc whether token is an active refresh token,
// with the caller's own bearer (authsvc checks its scope again).
func (a *authority) refreshToken(ctx context.Context, caller, token string) (map[string]any, error) {
	if len(token) > maxRefreshToken {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+caller), remoteTimeout)
	defer cancel()
	resp, err := a.client.IntrospectRefreshToken(ctx, &authsvcv1.IntrospectRefreshTokenRequest{RefreshToken: token})
	if err != nil {
		return nil, err
	}
	if !resp.GetActive() {
		return nil, nil
	}
	issuer, _, err := a.names(ctx)
	if err != nil {
		return nil, err
	}
	return map[string]any{
		"active": true, "token_type": "refresh_token", "scope": strings.Join(resp.GetScopes(), " "),
		"sub": resp.GetUserId(), "sid": resp.GetSessionId(), "iss": issuer,
		"exp": resp.GetExpiresAt().GetSeconds(),
	}, nil
}

// formToken reads the single token parameter of an RFC 6749 form body
// (introspection, revocation); the problem is fixed text, never the request's.
func formToken(w http.ResponseWriter, r *http.Request) (string, string) {
	if !isForm(r) {
		return "", "the body must be " + formType
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		return "", "the body is not a valid form of at most 64 KiB"
	}
	for _, values := range r.PostForm { // RFC 6749 section 3.1
		if len(values) > 1 {
			return "", "a parameter appears more than once"
		}
	}
	token := r.PostForm.Get("token")
	if token == "" {
		return "", "the token parameter is required"
	}
	return token, ""
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		slog.Error("encoding an answer", "error", err)
		code, body = http.StatusInternalServerError, []byte(`{"error":"server_error"}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(code)
	_, _ = w.Write(body)
}
