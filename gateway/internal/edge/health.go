package edge

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// readyTimeout bounds the health check behind /readyz, so a probe gets an
// answer even when authsvc hangs.
const readyTimeout = 2 * time.Second

// healthz answers 200 while the gateway process serves HTTP (liveness).
func healthz(w http.ResponseWriter, _ *http.Request) {
	writeHealth(w, http.StatusOK, "SERVING")
}

// readyz answers 200 only when authsvc's grpc.health.v1 Check for the
// whole server (service "") says SERVING, and 503 otherwise, including when
// authsvc cannot be reached (readiness).
func readyz(conn grpc.ClientConnInterface) http.Handler {
	client := healthpb.NewHealthClient(conn)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		resp, err := client.Check(ctx, &healthpb.HealthCheckRequest{})
		switch {
		case err != nil:
			writeHealth(w, http.StatusServiceUnavailable, "UNREACHABLE")
		case resp.GetStatus() != healthpb.HealthCheckResponse_SERVING:
			writeHealth(w, http.StatusServiceUnavailable, resp.GetStatus().String())
		default:
			writeHealth(w, http.StatusOK, "SERVING")
		}
	})
}

func writeHealth(w http.ResponseWriter, code int, state string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(`{"status":"` + state + `"}` + "\n"))
}
