package edge

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// The rewriter turns singular 64-bit integers into JSON numbers; the
// OpenAPI spec (openapi/config.yaml) must say "integer" for each of them,
// or schemathesis and generated clients expect strings.
func TestOpenAPIDeclaresInt64FieldsAsIntegers(t *testing.T) {
	raw, err := os.ReadFile("../../../openapi/authsvc/v1/auth.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	var spec struct {
		Definitions map[string]struct {
			Properties map[string]struct {
				Type string `json:"type"`
			} `json:"properties"`
		} `json:"definitions"`
	}
	if err := json.Unmarshal(raw, &spec); err != nil {
		t.Fatal(err)
	}
	msgs := authsvcv1.File_authsvc_v1_auth_proto.Messages()
	for i := 0; i < msgs.Len(); i++ {
		md := msgs.Get(i)
		for j := 0; j < md.Fields().Len(); j++ {
			f := md.Fields().Get(j)
			if !isNumeric64(f) {
				continue
			}
			def, described := spec.Definitions["v1"+string(md.Name())]
			if !described {
				// No grpc-gateway binding uses it (StartProviderSignIn and
				// FinishProviderSignIn: the gateway's own handlers in
				// federation.go answer with encoding/json numbers).
				continue
			}
			if got := def.Properties[f.TextName()].Type; got != "integer" {
				t.Errorf("%s.%s is %q in the spec, want integer (add it to openapi/config.yaml)", md.Name(), f.Name(), got)
			}
		}
	}
}

func TestIncomingHeaderMatcherForwardsNoCredentials(t *testing.T) {
	for _, h := range []string{"Authorization", "authorization", "Cookie", "Grpc-Metadata-Authorization", "X-Forwarded-For", "Host"} {
		if key, ok := incomingHeaderMatcher(h); ok {
			t.Errorf("%s forwarded as %q", h, key)
		}
	}
	if key, ok := incomingHeaderMatcher("user-agent"); !ok || key != "grpcgateway-user-agent" {
		t.Errorf("User-Agent -> %q, %v", key, ok)
	}
}

func TestTokenResponseKeepsProtoFieldOrder(t *testing.T) {
	out, err := rewriteResponse(context.Background(), &authsvcv1.RefreshResponse{AccessToken: "a", ExpiresIn: 60, UserId: "u"})
	if err != nil {
		t.Fatal(err)
	}
	got := string(out.(json.RawMessage))
	want := `{"access_token":"a","token_type":"","expires_in":60,"refresh_token":"","refresh_expires_in":0,"session_id":"","user_id":"u"}`
	if strings.ReplaceAll(got, " ", "") != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}
