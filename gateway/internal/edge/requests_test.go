package edge

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

// errorBody is a google.rpc.Status answer as JSON, with the two detail
// types the gateway's own refusals carry.
type errorBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type            string `json:"@type"`
		Reason          string `json:"reason"`
		Domain          string `json:"domain"`
		FieldViolations []struct {
			Field       string `json:"field"`
			Description string `json:"description"`
		} `json:"field_violations"`
	} `json:"details"`
}

func parseErrorBody(t *testing.T, raw []byte) errorBody {
	t.Helper()
	var body errorBody
	if err := json.Unmarshal(raw, &body); err != nil {
		t.Fatalf("body %q: %v", raw, err)
	}
	return body
}

// reason and fields read the ErrorInfo reason and the BadRequest fields.
func (b errorBody) reason() string {
	for _, d := range b.Details {
		if d.Type == "type.googleapis.com/google.rpc.ErrorInfo" && d.Domain == "authsvc" {
			return d.Reason
		}
	}
	return ""
}

func (b errorBody) fields() []string {
	var fields []string
	for _, d := range b.Details {
		if d.Type == "type.googleapis.com/google.rpc.BadRequest" {
			for _, v := range d.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	return fields
}

// assertQuotesNothing fails when raw holds any part of the "<script>"
// markers the requests carry, raw or JSON-escaped.
func assertQuotesNothing(t *testing.T, raw []byte) {
	t.Helper()
	for _, quoted := range []string{"<", `\u003c`, "script>", "alert"} {
		if strings.Contains(strings.ToLower(string(raw)), quoted) {
			t.Errorf("answer quotes the request (%s): %s", quoted, raw)
		}
	}
}

func TestUndecodableBodiesGetAFixed400NamingTheField(t *testing.T) {
	cases := []struct {
		name, path, body   string
		field, description string
	}{
		{"not JSON", "/v1/auth/signin", `<script>alert(1)</script>`, "request", "must be valid JSON"},
		{"broken member", "/v1/auth/signin", `{"<script>": }`, "request", "must be valid JSON"},
		{"truncated", "/v1/auth/signin", `{"email": "<script>`, "request", "must be valid JSON"},
		{"not an object", "/v1/auth/validate", `["<script>"]`, "request", "must be a JSON object"},
		{"string for a bool", "/v1/auth/revoke", `{"token": "t", "all_sessions": "<script>"}`, "all_sessions", "must be true or false"},
		{"by its JSON name", "/v1/auth/revoke", `{"allSessions": "<script>"}`, "all_sessions", "must be true or false"},
		{"list for an enum", "/v1/auth/revoke", `{"token_type_hint": ["<script>"]}`, "token_type_hint", "must be one of the enum's value names or numbers"},
		{"list for a string", "/v1/auth/signin", `{"email": "a@example.com", "password": ["<script>"]}`, "password", "must be a JSON string"},
		{"number for a string", "/v1/auth/validate", `{"access_token": 1e999}`, "access_token", "must be a JSON string"},
		{"invalid UTF-8", "/v1/auth/signin", "{\"password\": \"\xff<script>\"}", "password", "must be a JSON string"},
		{"two identifiers", "/v1/auth/signin", `{"email": "a@example.com", "phone": "<script>"}`, "identifier", "must hold only one of its fields"},
		{"field twice", "/v1/auth/signin", `{"password": "a", "password": "<script>"}`, "password", "must be given only once"},
		{"field twice by two names", "/v1/auth/refresh", `{"refresh_token": "a", "refreshToken": "<script>"}`, "refresh_token", "must be given only once"},
		{"after an unknown member", "/v1/auth/signin", `{"<script>": [1, {}], "password": {"<script>": 1}}`, "password", "must be a JSON string"},
		{"too large", "/v1/auth/signin", `{"password": "<script>` + strings.Repeat("a", maxBodyBytes) + `"}`, "request", "must be at most 64 KiB"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)

			resp, raw := h.send(t, "POST", tc.path, nil, tc.body)

			body := parseErrorBody(t, raw)
			if resp.StatusCode != http.StatusBadRequest || body.Code != int(codes.InvalidArgument) {
				t.Errorf("status %d, code %d, want 400 and INVALID_ARGUMENT", resp.StatusCode, body.Code)
			}
			if want := tc.field + ": " + tc.description; body.Message != want {
				t.Errorf("message %q, want %q", body.Message, want)
			}
			if got := body.fields(); len(got) != 1 || got[0] != tc.field {
				t.Errorf("BadRequest fields %q, want [%s]", got, tc.field)
			}
			if body.reason() != "INVALID_ARGUMENT" {
				t.Errorf("ErrorInfo reason %q, want INVALID_ARGUMENT", body.reason())
			}
			assertQuotesNothing(t, raw)
			if resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
				t.Errorf("Content-Type %q, Cache-Control %q", resp.Header.Get("Content-Type"), resp.Header.Get("Cache-Control"))
			}
			if len(h.fake.calls) != 0 {
				t.Error("authsvc was called")
			}
		})
	}
}

func TestMalformedGrpcTimeoutIsRefusedWithoutQuotingIt(t *testing.T) {
	h := newHarness(t)

	resp, raw := h.send(t, "POST", "/v1/auth/validate", http.Header{"Grpc-Timeout": {"<script>"}}, "{}")

	body := parseErrorBody(t, raw)
	if resp.StatusCode != http.StatusBadRequest || body.Message != "The request is not valid." {
		t.Errorf("status %d, message %q", resp.StatusCode, body.Message)
	}
	if body.reason() != "INVALID_ARGUMENT" || len(body.fields()) != 0 {
		t.Errorf("details %+v, want only ErrorInfo INVALID_ARGUMENT", body.Details)
	}
	assertQuotesNothing(t, raw)
	if len(h.fake.calls) != 0 {
		t.Error("authsvc was called")
	}
}

func TestUnknownMembersAndEmptyBodiesAreStillAccepted(t *testing.T) {
	for _, body := range []string{`{"<script>": {"x": [1, null]}, "email": "a@example.com"}`, ``, `{"email": null, "phone": "+1"}`} {
		h := newHarness(t)

		resp, raw := h.send(t, "POST", "/v1/auth/signin", nil, body)

		if resp.StatusCode != http.StatusOK || len(h.fake.calls) != 1 {
			t.Errorf("body %q: status %d (%s), %d calls", body, resp.StatusCode, raw, len(h.fake.calls))
		}
	}
}

func TestPostsMustBeLabelledJSON(t *testing.T) {
	refused := map[string][]string{
		"missing":                   nil,
		"text/plain":                {"text/plain"},
		"text/plain with a charset": {"text/plain;charset=UTF-8"},
		"form":                      {"application/x-www-form-urlencoded"},
		"multipart":                 {"multipart/form-data; boundary=x"},
		"lookalike":                 {"application/jsonx"},
		"structured suffix":         {"application/problem+json"},
		"another charset":           {"application/json; charset=iso-8859-1"},
		"a list":                    {"application/json, text/plain"},
		"two headers":               {"application/json", "text/plain"},
		"unparsable":                {"application/json; charset"},
	}
	for name, contentType := range refused {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t)

			resp, raw := h.send(t, "POST", "/v1/auth/signin", http.Header{"Content-Type": contentType},
				`{"email": "a@example.com", "password": "guess"}`)

			body := parseErrorBody(t, raw)
			if resp.StatusCode != http.StatusUnsupportedMediaType || body.Code != int(codes.InvalidArgument) {
				t.Errorf("status %d, code %d, want 415 and INVALID_ARGUMENT", resp.StatusCode, body.Code)
			}
			if body.Message != "The request body must be JSON, sent with Content-Type: application/json." || body.reason() != "INVALID_ARGUMENT" {
				t.Errorf("body %s", raw)
			}
			for k, want := range map[string]string{"Content-Type": "application/json", "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if len(h.fake.calls) != 0 {
				t.Error("authsvc was called")
			}
		})
	}
	accepted := []string{"application/json", "Application/JSON", "application/json; charset=utf-8", `application/json;Charset="UTF-8"`, "application/json; v=1"}
	for _, contentType := range accepted {
		h := newHarness(t)

		resp, raw := h.send(t, "POST", "/v1/auth/signin", http.Header{"Content-Type": {contentType}}, `{}`)

		if resp.StatusCode != http.StatusOK || len(h.fake.calls) != 1 {
			t.Errorf("%q: status %d (%s), %d calls", contentType, resp.StatusCode, raw, len(h.fake.calls))
		}
	}
}
