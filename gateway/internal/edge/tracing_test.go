package edge

import "testing"

// Addresses, ports, the User-Agent, query strings and header captures never
// leave the gateway in a span; method, route and status do.
func TestRedactedAttributes(t *testing.T) {
	for _, key := range []string{"client.address", "network.peer.address", "network.peer.port",
		"server.address", "server.port", "user_agent.original", "url.query", "url.full",
		"http.request.header.authorization", "rpc.grpc.request.metadata.authorization", "net.sock.peer.addr"} {
		if !redacted(key) {
			t.Errorf("%s is exported", key)
		}
	}
	for _, key := range []string{"http.request.method", "http.route", "url.path",
		"http.response.status_code", "rpc.method", "rpc.service", "rpc.grpc.status_code"} {
		if redacted(key) {
			t.Errorf("%s is dropped", key)
		}
	}
}

// The probes make no traces; every API path does.
func TestProbesAreNotTraced(t *testing.T) {
	for path, probe := range map[string]bool{"/healthz": true, "/readyz": true, "/v1/auth/signin": false, "/.well-known/jwks.json": false} {
		if isProbe(path) != probe {
			t.Errorf("isProbe(%s) = %v", path, !probe)
		}
	}
}
