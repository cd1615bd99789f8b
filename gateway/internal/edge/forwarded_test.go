package edge

import (
	"net/http"
	"strings"
	"testing"
)

// forged are headers a client might send to set x-forwarded-user-agent
// itself; none of their values may reach authsvc.
var forged = http.Header{
	"X-Forwarded-User-Agent":             {"forged/1"},
	"Grpcgateway-X-Forwarded-User-Agent": {"forged/2"},
	"Grpcgateway-User-Agent":             {"forged/3"},
}

func TestClientUserAgentReachesAuthsvcAsXForwardedUserAgent(t *testing.T) {
	cases := []struct{ name, sent, want string }{
		{"plain", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0"},
		{"non-ASCII and a tab", "caf\u00e9/1.0\t(b\u00eata)", "caf??/1.0?(b??ta)"},
		{"too long", strings.Repeat("A", 1000), strings.Repeat("A", maxUserAgent)},
		{"cut inside a UTF-8 sequence", strings.Repeat("A", maxUserAgent-1) + "\u00e9", strings.Repeat("A", maxUserAgent-1) + "?"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			header := forged.Clone()
			header.Set("User-Agent", tc.sent)

			resp, _ := h.do(t, "POST", "/v1/auth/signin", header)

			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			md := h.fake.calls[0]
			if got := md.Get("x-forwarded-user-agent"); len(got) != 1 || got[0] != tc.want {
				t.Errorf("x-forwarded-user-agent = %q, want [%q]", got, tc.want)
			}
			assertNothingForged(t, md)
		})
	}
}

func TestWithoutUserAgentNoXForwardedUserAgentReachesAuthsvc(t *testing.T) {
	h := newHarness(t)
	header := forged.Clone()
	header["User-Agent"] = []string{""} // net/http then sends none

	resp, _ := h.do(t, "POST", "/v1/auth/signin", header)

	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if got := h.fake.calls[0].Get("x-forwarded-user-agent"); len(got) != 0 {
		t.Errorf("x-forwarded-user-agent = %q, want none", got)
	}
	assertNothingForged(t, h.fake.calls[0])
}

func TestNoHeaderIsMatchedToXForwardedUserAgent(t *testing.T) {
	for _, h := range []string{"X-Forwarded-User-Agent", "x-forwarded-user-agent", "Grpcgateway-X-Forwarded-User-Agent",
		"Grpc-Metadata-X-Forwarded-User-Agent", "User-Agent", "X-Request-Id"} {
		if key, ok := incomingHeaderMatcher(h); ok && key == forwardedUserAgentKey {
			t.Errorf("%s forwarded as %q", h, key)
		}
	}
}

func assertNothingForged(t *testing.T, md map[string][]string) {
	t.Helper()
	for key, values := range md {
		for _, v := range values {
			if strings.Contains(v, "forged") {
				t.Errorf("client-sent value reached authsvc as %s: %q", key, v)
			}
		}
	}
}
