package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// noSniff sets X-Content-Type-Options: nosniff on every answer the gateway
// gives: successes, errors from authsvc and from the gateway itself, the
// JWKS, the probes and routing errors. Error bodies are JSON built from fixed
// text, but a browser that sniffed one as HTML would still be a risk the
// header removes for free. It is set before the rest of the chain runs, so no
// handler can answer without it. (Answers net/http gives itself before any
// handler runs, such as 431 for oversized headers, cannot carry it.)
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// cacheHeaders returns the option that sets caching headers on successful
// responses. The JWKS is public and may be cached for jwksMaxAge; everything
// else carries tokens or token facts and must not be stored (RFC 6749
// section 5.1: Cache-Control: no-store, Pragma: no-cache).
//
// jwksMaxAge must not exceed how long authsvc publishes a new key before it
// signs with it (authsvc keys rotate --publish-ahead, 60 s by default):
// otherwise a shared cache could serve a key set that lacks the key of a
// fresh token. Verifiers that meet an unknown kid should fetch again anyway.
func cacheHeaders(jwksMaxAge time.Duration) func(context.Context, http.ResponseWriter, proto.Message) error {
	jwks := "public, max-age=" + strconv.Itoa(int(jwksMaxAge/time.Second))
	return func(_ context.Context, w http.ResponseWriter, m proto.Message) error {
		if _, ok := m.(*authsvcv1.GetJwksResponse); ok {
			w.Header().Set("Cache-Control", jwks)
			return nil
		}
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		return nil
	}
}

// jwkJSON leaves out empty members: an EC key has no "n", an RSA key no
// "crv", and RFC 7517 consumers should not meet them as "".
var jwkJSON = protojson.MarshalOptions{UseProtoNames: true}

// rewriteResponse is the mux's response rewriter. It shapes two things
// protojson alone gets wrong for an OAuth-style API:
//
//   - top-level 64-bit integers become JSON numbers, not strings, so
//     "expires_in": 900 reads as RFC 6749 section 5.1 shows it (a
//     JavaScript client would otherwise add a string to a date);
//   - the JWKS omits empty members of each key, and is {"keys": []} when
//     there are none;
//   - the JWKS is a plain RFC 7517 JWK Set, {"keys": [...]} and nothing else:
//     the token rules authsvc publishes beside the keys (GetJwksResponse.rules)
//     are for verifiers that fetch the keys over gRPC (the Go verifier, the
//     Python guard), not a member of the public, cacheable document.
//
// openapi/config.yaml declares the same shapes in the OpenAPI spec.
func rewriteResponse(_ context.Context, m proto.Message) (any, error) {
	if jwks, ok := m.(*authsvcv1.GetJwksResponse); ok {
		if len(jwks.GetKeys()) == 0 {
			return json.RawMessage(`{"keys":[]}`), nil
		}
		b, err := jwkJSON.Marshal(&authsvcv1.GetJwksResponse{Keys: jwks.GetKeys()})
		return json.RawMessage(b), err
	}
	return int64sAsNumbers(m)
}

// int64sAsNumbers renders m like the mux's marshaler, then turns the
// quoted values of its top-level singular 64-bit integer fields into
// numbers, keeping the fields in proto order. Messages without such fields
// pass through untouched.
func int64sAsNumbers(m proto.Message) (any, error) {
	fields := m.ProtoReflect().Descriptor().Fields()
	numeric := false
	for i := 0; i < fields.Len(); i++ {
		numeric = numeric || isNumeric64(fields.Get(i))
	}
	if !numeric {
		return m, nil
	}
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return nil, err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, err
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for i := 0; i < fields.Len(); i++ {
		f := fields.Get(i)
		raw, ok := obj[f.TextName()]
		if !ok {
			continue
		}
		var s string
		if isNumeric64(f) && json.Unmarshal(raw, &s) == nil && isInteger(s) {
			raw = json.RawMessage(s)
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(f.TextName())
		out.Write(name)
		out.WriteByte(':')
		out.Write(raw)
	}
	out.WriteByte('}')
	return json.RawMessage(out.Bytes()), nil
}

// isNumeric64 reports whether f is a singular 64-bit integer, which
// protojson renders as a string.
func isNumeric64(f protoreflect.FieldDescriptor) bool {
	return f.Cardinality() != protoreflect.Repeated && is64BitInt(f.Kind())
}

func isInteger(s string) bool {
	if _, err := strconv.ParseInt(s, 10, 64); err == nil {
		return true
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

func is64BitInt(k protoreflect.Kind) bool {
	switch k {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return true
	}
	return false
}
