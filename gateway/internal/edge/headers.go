package edge

import (
	"context"
	"net/http"
	"net/textproto"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// What reaches authsvc as gRPC metadata, and why:
//
//   - authorization: grpc-gateway itself forwards every HTTP Authorization
//     value as "authorization", ahead of anything the matcher adds. The guard
//     below lets through at most one, so authsvc sees exactly one value or
//     none. The matcher does not map Authorization again, so there is no
//     "grpcgateway-authorization" copy for anything to half-trust.
//   - x-forwarded-for, x-forwarded-host: set by grpc-gateway, the peer's
//     address appended last (authsvc trusts only the right-most hop, and only
//     from a configured proxy).
//   - x-forwarded-user-agent: the client's User-Agent, sanitised, set by
//     forwardedUserAgent below and by nothing else.
//   - grpcgateway-user-agent, x-request-id: as before, for authsvc's audit
//     log. grpcgateway-user-agent is the client's User-Agent unsanitised
//     (grpc-gateway only drops non-ASCII values); read x-forwarded-user-agent
//     instead.
//
// Nothing else: cookies, and Grpc-Metadata-* headers that would let a client
// set arbitrary metadata, never reach authsvc. No header is matched to
// x-forwarded-user-agent, so a client's X-Forwarded-User-Agent (or any other
// header) cannot become that key.
func incomingHeaderMatcher(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "User-Agent":
		return "grpcgateway-user-agent", true
	case "X-Request-Id":
		return "x-request-id", true
	}
	return "", false
}

// forwardedUserAgentKey is the gRPC metadata key that carries the HTTP
// client's User-Agent to authsvc. grpc-go sends its own user-agent
// ("grpc-go/…"), which is all authsvc's audit log would otherwise see of a
// call through the gateway. authsvc should believe this key only on calls
// from a trusted proxy, as it does x-forwarded-for: any other gRPC client
// can set it.
const forwardedUserAgentKey = "x-forwarded-user-agent"

// maxUserAgent bounds the forwarded User-Agent, as authsvc bounds the one it
// stores.
const maxUserAgent = 256

// forwardedUserAgent is the mux's metadata annotator: it sends the client's
// User-Agent (the first, if there are several) as x-forwarded-user-agent.
// grpc-gateway lets an annotator's keys replace whatever the request
// headers produced under the same name. A request without a User-Agent
// sends no x-forwarded-user-agent at all, rather than an empty one.
func forwardedUserAgent(_ context.Context, r *http.Request) metadata.MD {
	ua := r.Header.Get("User-Agent")
	if ua == "" {
		return nil
	}
	return metadata.Pairs(forwardedUserAgentKey, sanitizeUserAgent(ua))
}

// sanitizeUserAgent cuts ua to maxUserAgent bytes and replaces every byte
// that is not printable ASCII (control characters, tabs, each byte of a
// UTF-8 sequence) with '?', as authsvc sanitises the user agents it stores.
// gRPC metadata values must be printable ASCII in any case.
func sanitizeUserAgent(ua string) string {
	b := []byte(ua[:min(len(ua), maxUserAgent)])
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// dropMetadata keeps authsvc's response metadata out of HTTP headers (no
// Grpc-Metadata-* or Grpc-Trailer-* in responses); the error handler reads
// the one value the edge needs, www-authenticate, itself.
func dropMetadata(string) (string, bool) { return "", false }

// metadataHeaderPrefix is the prefix by which grpc-gateway's legacy matcher
// let HTTP clients set gRPC metadata directly.
const metadataHeaderPrefix = "Grpc-Metadata-"

// guardHeaders refuses, before anything reaches authsvc, a request whose
// credentials are ambiguous: several Authorization headers, an
// Authorization value that cannot travel as gRPC metadata (the gateway
// would silently drop it), or any Grpc-Metadata-* header (for example
// Grpc-Metadata-Authorization, a second credential smuggled past the first).
// RFC 6750 section 3.1 makes such a request invalid_request, HTTP 400.
func guardHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if msg := headerProblem(r.Header); msg != "" {
			writeStatus(w, http.StatusBadRequest, status.New(codes.InvalidArgument, msg),
				challenge("invalid_request"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// headerProblem says what is wrong with the request's credential headers,
// or returns "" when nothing is.
func headerProblem(h http.Header) string {
	auth := h.Values("Authorization")
	if len(auth) > 1 {
		return "send at most one Authorization header"
	}
	if len(auth) == 1 && !isPrintableASCII(auth[0]) {
		return "the Authorization header must be printable ASCII"
	}
	for key := range h {
		if strings.HasPrefix(textproto.CanonicalMIMEHeaderKey(key), metadataHeaderPrefix) {
			return "Grpc-Metadata-* request headers are not accepted; send credentials in one Authorization header"
		}
	}
	return ""
}

func isPrintableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}
