package edge

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// maxBodyBytes bounds a request body. The largest legitimate one is a
// sign-in, well under a kilobyte.
const maxBodyBytes = 64 << 10

// violation is one google.rpc.BadRequest field violation that the gateway
// finds itself. Both parts are fixed text or names taken from the proto
// descriptors, never anything the client sent, so they may be shown.
type violation struct{ field, description string }

// Violations of the body as a whole are reported on the field "request",
// as authsvc reports a request message it cannot decode.
var (
	bodyTooLarge  = violation{"request", "must be at most 64 KiB"}
	bodyNotJSON   = violation{"request", "must be valid JSON"}
	bodyNotObject = violation{"request", "must be a JSON object"}
	bodyInvalid   = violation{"request", "is not a valid request for this method"}
	bodyUnread    = violation{"request", "could not be read"}
)

// requestBody is every request's body once limitBody has wrapped it: at
// most maxBodyBytes, and the place where the decoder leaves the violation
// it found for the error handler to report.
//
// That detour exists because grpc-gateway's generated handlers turn a
// decoding error into status.Errorf(codes.InvalidArgument, "%v", err),
// which keeps only the error's text. The handlers pass req.Body itself to
// the decoder and req itself to the error handler, so the body is a
// channel between the two that does not depend on any text. Should that
// change, the answer is still a fixed message, only without the field.
type requestBody struct {
	io.ReadCloser
	problem *violation
}

// requireJSON answers 415 Unsupported Media Type, before anything reaches
// authsvc, to every POST whose Content-Type is not application/json.
//
// A web page can make a visitor's browser POST to another origin without a
// CORS preflight when the body is text/plain, a form or multipart, or has
// no Content-Type at all; the page cannot read the answer, but the request
// is made, so it could spend the visitor's browser on sign-in guesses.
// application/json needs a preflight, which the gateway grants only to the
// origins of --cors-origins (cors.go), so only those pages, same-origin
// pages and non-browser clients get through. The rule holds for every
// POST the generated routes serve, even one without a body.
//
// The only forms taken are the two RFC 6749 family endpoints that require
// them, served by Config.Extend's handler in front of this rule
// (internal/oauth): introspection, which needs a bearer token with scope
// authsvc.introspect, and RFC 7009 revocation of the token the form names,
// which never reads the refresh cookie and still passes cookie mode's
// origin check. Neither spends a password or a cookie, so a cross-site
// form gains nothing from either.
//
// The media type is compared case-insensitively (RFC 9110 section 8.3.1)
// and parameters are allowed, but a charset other than UTF-8 is refused:
// JSON is UTF-8 (RFC 8259 section 8.1), and a body in another charset would
// be misread rather than refused. Exactly one Content-Type header is
// accepted; a list or an unparsable value is not application/json.
func requireJSON(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && !isJSON(r.Header.Values("Content-Type")) {
			writeStatus(w, http.StatusUnsupportedMediaType, notJSON, "")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func isJSON(contentType []string) bool {
	if len(contentType) != 1 {
		return false
	}
	mediaType, params, err := mime.ParseMediaType(contentType[0])
	if err != nil || mediaType != "application/json" {
		return false
	}
	charset, given := params["charset"]
	return !given || strings.EqualFold(charset, "utf-8")
}

// notJSON is the 415 answer: the error shape of every other refusal, with
// fixed text and no BadRequest, since no field of the request is at fault.
var notJSON = func() *status.Status {
	st, _ := status.New(codes.InvalidArgument, "The request body must be JSON, sent with Content-Type: application/json.").
		WithDetails(&errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "authsvc"})
	return st
}()

func limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = &requestBody{ReadCloser: http.MaxBytesReader(w, r.Body, maxBodyBytes)}
		next.ServeHTTP(w, r)
	})
}

// bodyProblem returns the violation the decoder recorded for r, if any.
func bodyProblem(r *http.Request) *violation {
	if r == nil {
		return nil
	}
	if body, ok := r.Body.(*requestBody); ok {
		return body.problem
	}
	return nil
}

// errUndecodable is what the decoder returns for a body it cannot use. Its
// text is never shown: the error handler answers every InvalidArgument that
// does not come from authsvc with invalidRequest.
var errUndecodable = errors.New("the request body is not a valid request")

// requestJSON is the mux's marshaler: runtime.JSONPb, with a decoder that
// keeps protojson's error text to itself. protojson quotes what it could
// not parse (`invalid value for bool field allSessions: "<script>"`), and
// grpc-gateway would send that text to the client. Decoding succeeds and
// fails exactly as with JSONPb; only on failure does diagnose work out a
// field name to report.
type requestJSON struct{ *runtime.JSONPb }

// NewDecoder reads the whole (bounded) body first, so that a failed decode
// can be looked at again.
func (m requestJSON) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		raw, err := io.ReadAll(r)
		if err != nil {
			var tooLarge *http.MaxBytesError
			problem := bodyUnread
			if errors.As(err, &tooLarge) {
				problem = bodyTooLarge
			}
			return record(r, problem)
		}
		err = m.JSONPb.NewDecoder(bytes.NewReader(raw)).Decode(v)
		if err == nil || errors.Is(err, io.EOF) { // io.EOF: no body, an empty request
			return err
		}
		problem := bodyInvalid
		if msg, ok := v.(proto.Message); ok {
			problem = diagnose(raw, msg, m.UnmarshalOptions)
		}
		return record(r, problem)
	})
}

func record(r io.Reader, problem violation) error {
	if body, ok := r.(*requestBody); ok {
		body.problem = &problem
	}
	return errUndecodable
}

// diagnose names what is wrong with raw, a body protojson refused to decode
// into msg. It walks the top-level members in order and stops where
// protojson stops: at a field given twice (by its proto or its JSON name),
// at a second field of a oneof, or at a value protojson refuses for that
// field alone. Unknown members are skipped, as the marshaler discards them.
// What it cannot place is blamed on the request as a whole. Whether a body
// is refused is protojson's decision alone; this only names the field.
func diagnose(raw []byte, msg proto.Message, opts protojson.UnmarshalOptions) violation {
	var first json.RawMessage // what JSONPb's decoder parses: the first JSON value
	if json.NewDecoder(bytes.NewReader(raw)).Decode(&first) != nil {
		return bodyNotJSON
	}
	dec := json.NewDecoder(bytes.NewReader(first))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return bodyNotObject
	}
	md := msg.ProtoReflect().Descriptor()
	seen := map[protoreflect.FieldNumber]bool{}
	oneofs := map[protoreflect.Name]bool{}
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return bodyNotJSON
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return bodyNotJSON
		}
		name, _ := key.(string)
		fd := md.Fields().ByJSONName(name)
		if fd == nil {
			fd = md.Fields().ByTextName(name)
		}
		if fd == nil {
			continue
		}
		if seen[fd.Number()] {
			return violation{string(fd.Name()), "must be given only once"}
		}
		seen[fd.Number()] = true
		if string(value) == "null" { // protojson leaves the field unset
			continue
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if oneofs[od.Name()] {
				return violation{string(od.Name()), "must hold only one of its fields"}
			}
			oneofs[od.Name()] = true
		}
		alone, _ := json.Marshal(map[string]json.RawMessage{fd.TextName(): value})
		if opts.Unmarshal(alone, msg.ProtoReflect().New().Interface()) != nil {
			return violation{string(fd.Name()), expected(fd)}
		}
	}
	return bodyInvalid
}

// expected says, in fixed words, what a field's JSON value must be.
func expected(fd protoreflect.FieldDescriptor) string {
	if fd.IsList() {
		return "must be a JSON array"
	}
	switch fd.Kind() {
	case protoreflect.StringKind:
		return "must be a JSON string"
	case protoreflect.BytesKind:
		return "must be a base64 JSON string"
	case protoreflect.BoolKind:
		return "must be true or false"
	case protoreflect.EnumKind:
		return "must be one of the enum's value names or numbers"
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return "must be a JSON object"
	case protoreflect.FloatKind, protoreflect.DoubleKind:
		return "must be a number"
	default:
		return "must be an integer"
	}
}

// invalidRequest is the gateway's answer to a request it refuses as
// INVALID_ARGUMENT itself: the shape of authsvc's own INVALID_ARGUMENT
// answers (message "field: description", ErrorInfo reason
// INVALID_ARGUMENT in domain authsvc, a BadRequest naming the field), built
// from fixed text. Without a known violation there is no BadRequest.
func invalidRequest(problem *violation) *status.Status {
	info := &errdetails.ErrorInfo{Reason: "INVALID_ARGUMENT", Domain: "authsvc"}
	if problem == nil {
		st, _ := status.New(codes.InvalidArgument, "The request is not valid.").WithDetails(info)
		return st
	}
	bad := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: problem.field, Description: problem.description},
	}}
	st, _ := status.New(codes.InvalidArgument, problem.field+": "+problem.description).WithDetails(info, bad)
	return st
}
