package edge

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// realm names the protection space in every WWW-Authenticate challenge.
const realm = `Bearer realm="authsvc"`

// errorHandler is the gateway's runtime.ErrorHandlerFunc. It maps the gRPC
// status to HTTP (UNAUTHENTICATED 401, PERMISSION_DENIED 403,
// INVALID_ARGUMENT 400, RESOURCE_EXHAUSTED 429, UNAVAILABLE 503, the rest as
// grpc-gateway does), adds WWW-Authenticate and Retry-After where they
// belong, and writes the google.rpc.Status as JSON without internals.
//
// grpc-gateway's default handler copies the status message into
// WWW-Authenticate; this one uses authsvc's www-authenticate metadata, which
// authsvc builds from fixed strings, and never anything from the request.
//
// An INVALID_ARGUMENT that did not come back from a call to authsvc is the
// gateway's own refusal, which grpc-gateway words with the request's text
// (protojson's parse error, a malformed Grpc-Timeout header). It is answered
// with invalidRequest instead: fixed text, naming the field the decoder
// recorded on the request body, if any. authsvc's own answers keep their
// message, which authsvc builds from fixed text.
func errorHandler(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	httpStatus := 0
	var custom *runtime.HTTPStatusError // routing errors: 404, 405
	if errors.As(err, &custom) {
		httpStatus, err = custom.HTTPStatus, custom.Err
	}
	st := status.Convert(err)
	var answered upstreamError
	if st.Code() == codes.InvalidArgument && !errors.As(err, &answered) {
		st = invalidRequest(bodyProblem(r))
	}
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	md, _ := runtime.ServerMetadataFromContext(ctx)

	var wwwAuthenticate string
	switch st.Code() {
	case codes.Unauthenticated:
		wwwAuthenticate = upstreamChallenge(md, "")
	case codes.PermissionDenied:
		wwwAuthenticate = upstreamChallenge(md, "insufficient_scope")
	case codes.ResourceExhausted, codes.Unavailable:
		if seconds, ok := retryAfter(st); ok {
			w.Header().Set("Retry-After", strconv.Itoa(seconds))
		}
	case codes.Internal, codes.Unknown, codes.DataLoss:
		slog.Error("upstream error", "code", st.Code().String(), "message", st.Message())
	}
	writeStatus(w, httpStatus, publicStatus(st), wwwAuthenticate)
}

// upstream is the connection to authsvc as the generated handlers use it:
// the error of every call comes back as an upstreamError, so the error
// handler can tell authsvc's answers from the gateway's own refusals.
// (Streams pass through; no streaming RPC has an HTTP binding.)
type upstream struct{ grpc.ClientConnInterface }

func (u upstream) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	if err := u.ClientConnInterface.Invoke(ctx, method, args, reply, opts...); err != nil {
		return upstreamError{status.Convert(err)}
	}
	return nil
}

// upstreamError is the status a call to authsvc ended with, marked as such.
// It is a gRPC status error (GRPCStatus) with the status's own text.
type upstreamError struct{ st *status.Status }

func (e upstreamError) Error() string              { return e.st.Err().Error() }
func (e upstreamError) GRPCStatus() *status.Status { return e.st }

// routingErrorHandler answers an unknown path 404 and a known path with
// the wrong method 405 (grpc-gateway's default says 501 for the latter),
// both through errorHandler.
func routingErrorHandler(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	code := codes.Internal
	switch httpStatus {
	case http.StatusNotFound:
		code = codes.NotFound
	case http.StatusMethodNotAllowed:
		code = codes.Unimplemented
	case http.StatusBadRequest:
		code = codes.InvalidArgument
	}
	err := &runtime.HTTPStatusError{HTTPStatus: httpStatus, Err: status.Error(code, http.StatusText(httpStatus))}
	errorHandler(ctx, mux, m, w, r, err)
}

// writeStatus writes an error response. Errors are never cached.
func writeStatus(w http.ResponseWriter, httpStatus int, st *status.Status, wwwAuthenticate string) {
	body, err := jsonOptions.Marshal(st.Proto())
	if err != nil { // only a detail type not linked in; keep code and message
		body, _ = jsonOptions.Marshal(&spb.Status{Code: int32(st.Code()), Message: st.Message()})
	}
	h := w.Header()
	h.Del("Trailer")
	h.Del("Transfer-Encoding")
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if wwwAuthenticate != "" {
		h.Set("WWW-Authenticate", wwwAuthenticate)
	}
	w.WriteHeader(httpStatus)
	_, _ = w.Write(body)
}

// challenge builds an RFC 6750 challenge from fixed parts only.
func challenge(errorCode string) string {
	if errorCode == "" {
		return realm
	}
	return realm + `, error="` + errorCode + `"`
}

// upstreamChallenge returns authsvc's www-authenticate value (trailers
// first, where a failed call carries it, then headers) if it is a
// well-formed Bearer challenge and, when want is set, carries
// error="want". Otherwise it builds one.
func upstreamChallenge(md runtime.ServerMetadata, want string) string {
	for _, v := range append(md.TrailerMD.Get("www-authenticate"), md.HeaderMD.Get("www-authenticate")...) {
		if wellFormedChallenge(v) && (want == "" || strings.Contains(v, `error="`+want+`"`)) {
			return v
		}
	}
	return challenge(want)
}

// wellFormedChallenge accepts a short, printable-ASCII Bearer challenge:
// enough to keep a broken or hostile upstream value out of the header.
func wellFormedChallenge(v string) bool {
	return len(v) <= 1024 && isPrintableASCII(v) &&
		(v == "Bearer" || strings.HasPrefix(strings.ToLower(v), "bearer "))
}

// retryAfter turns a google.rpc.RetryInfo detail into whole seconds,
// rounded up and at least 1.
func retryAfter(st *status.Status) (int, bool) {
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			delay := ri.GetRetryDelay().AsDuration()
			seconds := int((delay + time.Second - 1) / time.Second)
			return max(seconds, 1), true
		}
	}
	return 0, false
}

// publicDetails are the google.rpc detail types a client may see. Others
// (DebugInfo carries stack traces) are dropped.
var publicDetails = map[string]bool{
	"type.googleapis.com/google.rpc.ErrorInfo":           true,
	"type.googleapis.com/google.rpc.BadRequest":          true,
	"type.googleapis.com/google.rpc.RetryInfo":           true,
	"type.googleapis.com/google.rpc.QuotaFailure":        true,
	"type.googleapis.com/google.rpc.PreconditionFailure": true,
	"type.googleapis.com/google.rpc.Help":                true,
	"type.googleapis.com/google.rpc.LocalizedMessage":    true,
}

// publicStatus is what the client may see of st. authsvc's own answers
// pass with their message and public details. Errors that did not come
// from authsvc's error mapping (a failed connection, a timeout, an
// unexpected exception) get a fixed message, since theirs can name
// internal addresses or code.
func publicStatus(st *status.Status) *status.Status {
	p := st.Proto()
	out := &spb.Status{Code: p.GetCode(), Message: p.GetMessage()}
	for _, d := range p.GetDetails() {
		if publicDetails[d.GetTypeUrl()] {
			out.Details = append(out.Details, d)
		}
	}
	switch st.Code() {
	case codes.Internal, codes.Unknown, codes.DataLoss:
		out.Message, out.Details = "internal error", nil
	case codes.Unavailable:
		if !fromAuthsvc(out.Details) {
			out.Message = "authsvc is unavailable; try again later"
		}
	case codes.DeadlineExceeded:
		out.Message = "authsvc did not answer in time"
	}
	return status.FromProto(out)
}

// fromAuthsvc reports whether details hold authsvc's ErrorInfo, the mark
// of a status that authsvc's error mapping built on purpose.
func fromAuthsvc(details []*anypb.Any) bool {
	for _, d := range details {
		var info errdetails.ErrorInfo
		if d.UnmarshalTo(&info) == nil && info.GetDomain() == "authsvc" {
			return true
		}
	}
	return false
}
