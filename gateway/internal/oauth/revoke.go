package oauth

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"

	"github.com/authsvc/authsvc/gateway/verify"
)

// RevokePath is authsvc's revocation endpoint, RFC 7009's as well.
const RevokePath = "/v1/auth/revoke"

// formType is the media type of RFC 6749's request bodies.
const formType = "application/x-www-form-urlencoded"

// tokenTypeHints are RFC 7009's token_type_hint values (section 2.1,
// IANA's OAuth Token Type Hints) that authsvc has tokens of, as the
// RevokeRequest's enum names them; no hint is "".
var tokenTypeHints = map[string]string{
	"":              "TOKEN_TYPE_HINT_UNSPECIFIED",
	"access_token":  "TOKEN_TYPE_HINT_ACCESS_TOKEN",
	"refresh_token": "TOKEN_TYPE_HINT_REFRESH_TOKEN",
}

// isForm reports whether r's single Content-Type is a form.
func isForm(r *http.Request) bool {
	values := r.Header.Values("Content-Type")
	if len(values) != 1 {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(values[0])
	return err == nil && mediaType == formType
}

// formRevocation answers RFC 7009's revocation request, a form POSTed to
// RevokePath (token, optional token_type_hint, no client authentication:
// discovery names the method "none"), and passes every other request on
// to next, where a JSON revoke takes its usual way.
//
// The form is read as introspection reads its own (formToken), then
// translated into the RevokeRequest JSON body and handed to next, the
// gateway's route for Revoke: the same call to authsvc, with the same
// header guard, forwarded client address and user agent, deadline and
// error answers as a JSON revoke. authsvc answers OK for a token it does
// not know (RFC 7009 section 2.2), so does this; a token longer than any
// authsvc issues is answered 200 here, as one authsvc could not know
// (authsvc would call it INVALID_ARGUMENT, which RFC 7009 does not allow).
//
// The refresh cookie is never read for a form: the request goes on
// without its Cookie header, so the form must name its token, and a form
// that names none is refused (invalid_request) rather than filled from
// the cookie. Cookie mode's other rule still applies, as the request
// passes through it: a browser call (one with an Origin) must come from
// a listed origin. A cross-site form can therefore revoke nothing but a
// token it already holds, and that only when cookie mode is off.
//
// Refusals are RFC 6749 section 5.2 error objects: invalid_request for a
// body that is not one form with one token, unsupported_token_type for a
// token_type_hint that names a type authsvc has no tokens of.
func formRevocation(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || !isForm(r) {
			next.ServeHTTP(w, r)
			return
		}
		token, problem := formToken(w, r)
		if problem != "" {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": problem})
			return
		}
		hint, known := tokenTypeHints[r.PostForm.Get("token_type_hint")]
		if !known {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_token_type",
				"error_description": "token_type_hint must be access_token or refresh_token"})
			return
		}
		if len(token) > verify.MaxTokenLength {
			writeJSON(w, http.StatusOK, struct{}{})
			return
		}
		body, err := json.Marshal(map[string]string{"token": token, "token_type_hint": hint})
		if err != nil {
			writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
			return
		}
		call := r.Clone(r.Context())
		call.Header.Set("Content-Type", "application/json")
		call.Header.Del("Cookie")
		call.Header.Del("Content-Length")
		call.Body, call.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
		call.Form, call.PostForm = nil, nil
		next.ServeHTTP(w, call)
	})
}
