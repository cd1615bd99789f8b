package verify

import (
	"errors"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Domain is the google.rpc.ErrorInfo domain of every refusal, as authsvc sends it.
const Domain = "authsvc"

// Realm names the protection space in every RFC 6750 challenge.
const Realm = "authsvc"

// Reason is the google.rpc.ErrorInfo reason string of r: the name of its
// authsvc.v1.ErrorReason value (protos/authsvc/v1/error_reason.proto), where
// every reason authsvc, the gateway and the clients use is declared once. The
// names are the wire strings (INVALID_CREDENTIALS, TOKEN_EXPIRED, ...).
func Reason(r authsvcv1.ErrorReason) string { return r.String() }

// IsReason reports whether s is a declared reason (ERROR_REASON_UNSPECIFIED
// is not one: it is never sent).
func IsReason(s string) bool {
	n, ok := authsvcv1.ErrorReason_value[s]
	return ok && n != int32(authsvcv1.ErrorReason_ERROR_REASON_UNSPECIFIED)
}

// Error is a refusal: the gRPC code, the ErrorInfo reason a client switches
// on, fixed text, and the RFC 6750 error code of the challenge ("" when no
// credentials were sent at all). The values are authsvc's own
// (authsvc/errors.py, authsvc/guard/status.py): one mapping, two languages,
// with the reasons of one enum (Reason).
type Error struct {
	Code    codes.Code
	Reason  string   // ErrorInfo reason; "" for UNAVAILABLE, which carries none
	Message string   // fixed text, never input
	OAuth   string   // RFC 6750 error: invalid_token, invalid_request, insufficient_scope
	Scopes  []string // the scopes a PERMISSION_DENIED asks for
	// RFC 9470 step-up: extra challenge auth-params (acr_values, max_age), in
	// order, and the ErrorInfo metadata (the amr values that would do).
	Params   [][2]string
	Metadata map[string]string
}

func (e *Error) Error() string { return e.Message }

// The refusals the verifier gives.
var (
	ErrTokenMissing = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_MISSING),
		Message: "No access token was sent."}
	ErrTokenInvalid = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_INVALID),
		Message: "The access token is invalid.", OAuth: "invalid_token"}
	ErrTokenNotYetValid = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_INVALID),
		Message: "The access token is not valid yet.", OAuth: "invalid_token"}
	ErrTokenExpired = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_EXPIRED),
		Message: "The access token expired.", OAuth: "invalid_token"}
	ErrTokenRevoked = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_REVOKED),
		Message: "The access token's session was revoked.", OAuth: "invalid_token"}
	// ErrMalformedAuthorization: two authorization values, another scheme,
	// or a malformed Bearer value.
	ErrMalformedAuthorization = &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_TOKEN_INVALID),
		Message: "The authorization metadata must hold exactly one Bearer token.", OAuth: "invalid_request"}
	// ErrUnavailable: the verifier cannot decide (no keys or revocation
	// snapshot yet, or the revocation feed is staler than allowed). It fails closed.
	ErrUnavailable = &Error{Code: codes.Unavailable,
		Message: "The service is temporarily unavailable; retry shortly."}
)

// InsufficientScope is the refusal of a valid token that lacks scopes.
func InsufficientScope(scopes ...string) *Error {
	return &Error{Code: codes.PermissionDenied, Reason: Reason(authsvcv1.ErrorReason_INSUFFICIENT_SCOPE),
		Message: "The access token lacks a required scope.", OAuth: "insufficient_scope", Scopes: scopes}
}

// InsufficientUserAuthentication is RFC 9470's refusal of a valid token whose
// user authenticated too weakly (amr holds none of amr) or too long ago
// (maxAge seconds; -1: no limit asked), as authsvc words it.
func InsufficientUserAuthentication(amr []string, maxAge int) *Error {
	e := &Error{Code: codes.Unauthenticated, Reason: Reason(authsvcv1.ErrorReason_INSUFFICIENT_USER_AUTHENTICATION),
		Message: "A stronger or more recent authentication is required.",
		OAuth:   "insufficient_user_authentication", Metadata: map[string]string{}}
	if len(amr) > 0 {
		e.Params = append(e.Params, [2]string{"acr_values", "aal2"})
		e.Metadata["amr"] = strings.Join(amr, " ")
	}
	if maxAge >= 0 {
		e.Params = append(e.Params, [2]string{"max_age", strconv.Itoa(maxAge)})
		e.Metadata["max_age"] = strconv.Itoa(maxAge)
	}
	return e
}

// AsError returns err as an *Error; anything else is ErrUnavailable (fail closed).
func AsError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrUnavailable
}

// Challenge is the RFC 6750 WWW-Authenticate value for the refusal, or ""
// when it carries none (UNAVAILABLE).
func (e *Error) Challenge() string {
	if e.Code != codes.Unauthenticated && e.Code != codes.PermissionDenied {
		return ""
	}
	parts := []string{`Bearer realm="` + Realm + `"`}
	if e.OAuth != "" {
		parts = append(parts, `error="`+e.OAuth+`"`,
			`error_description="`+strings.TrimRight(e.Message, ".")+`"`)
	}
	if len(e.Scopes) > 0 {
		parts = append(parts, `scope="`+strings.Join(e.Scopes, " ")+`"`)
	}
	for _, p := range e.Params {
		parts = append(parts, p[0]+`="`+p[1]+`"`)
	}
	return strings.Join(parts, ", ")
}

// GRPCStatus is the status authsvc answers with: the code, the fixed
// message and, for a client's refusal, an ErrorInfo detail.
func (e *Error) GRPCStatus() *status.Status {
	st := status.New(e.Code, e.Message)
	if e.Reason == "" {
		return st
	}
	var md map[string]string
	if len(e.Metadata) > 0 {
		md = e.Metadata
	}
	withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Reason, Domain: Domain, Metadata: md})
	if err != nil {
		return st
	}
	return withInfo
}

// Trailer is the trailing metadata of the refusal: www-authenticate.
func (e *Error) Trailer() metadata.MD {
	if c := e.Challenge(); c != "" {
		return metadata.Pairs("www-authenticate", c)
	}
	return nil
}
