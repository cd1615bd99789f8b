package edge

// OpenTelemetry tracing of the edge, on only when OTEL_EXPORTER_OTLP_ENDPOINT
// (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: the standard OpenTelemetry
// variables configure the OTLP/gRPC exporter, the resource
// (OTEL_SERVICE_NAME, default "authsvc-gateway"; OTEL_RESOURCE_ATTRIBUTES)
// and the sampler (OTEL_TRACES_SAMPLER, default parent-based always-on).
//
// otelhttp makes a server span per HTTP request, continuing an incoming W3C
// traceparent; otelgrpc makes a client span per call to authsvc and sends
// the trace on in the call's traceparent metadata, where authsvc continues
// it. Off, both are left out entirely.
//
// Attributes that name an address (the client's, a peer's, authsvc's), the
// client's User-Agent or a query string are dropped before export
// (redactingExporter), so no span carries anything that identifies a person.

import (
	"context"
	"net/http"
	"os"
	"strings"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc/filters"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
)

// tracingOn is set by SetupTracing when an endpoint is configured.
var tracingOn bool

// TracingWanted reports whether an OTLP endpoint is configured.
func TracingWanted() bool {
	return os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" ||
		os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// SetupTracing turns tracing on when an OTLP endpoint is configured; the
// returned function flushes and stops it (call it once the server stopped).
func SetupTracing(ctx context.Context) (func(context.Context) error, error) {
	if !TracingWanted() {
		return func(context.Context) error { return nil }, nil
	}
	exporter, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, err
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "authsvc-gateway")),
		resource.WithFromEnv(), resource.WithTelemetrySDK())
	if err != nil {
		return nil, err
	}
	provider := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(redactingExporter{exporter}), sdktrace.WithResource(res))
	otel.SetTracerProvider(provider)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(
		propagation.TraceContext{}, propagation.Baggage{}))
	tracingOn = true
	return provider.Shutdown, nil
}

// traced wraps the whole HTTP surface in a server span per request, but for
// the probes (/healthz, /readyz), which would be most of the traces.
func traced(next http.Handler) http.Handler {
	if !tracingOn {
		return next
	}
	return otelhttp.NewHandler(next, "gateway",
		otelhttp.WithFilter(func(r *http.Request) bool { return !isProbe(r.URL.Path) }),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
			return r.Method + " " + r.URL.Path
		}))
}

func isProbe(path string) bool { return path == "/healthz" || path == "/readyz" }

// tracedDial adds a client span per call to authsvc (health checks aside),
// which carries the trace on in traceparent metadata.
func tracedDial() []grpc.DialOption {
	if !tracingOn {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(
		otelgrpc.WithFilter(filters.Not(filters.HealthCheck()))))}
}

// redactingExporter drops attributes that could identify a person or a host
// before the spans leave the process.
type redactingExporter struct{ sdktrace.SpanExporter }

func (e redactingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	clean := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, span := range spans {
		clean[i] = redactedSpan{span}
	}
	return e.SpanExporter.ExportSpans(ctx, clean)
}

type redactedSpan struct{ sdktrace.ReadOnlySpan }

func (s redactedSpan) Attributes() []attribute.KeyValue {
	var kept []attribute.KeyValue
	for _, kv := range s.ReadOnlySpan.Attributes() {
		if !redacted(string(kv.Key)) {
			kept = append(kept, kv)
		}
	}
	return kept
}

// redacted reports whether an attribute key names something personal or an
// address: client.address, network.peer.address, server.address and their
// ports, user_agent.original, url.query, and HTTP/gRPC header captures.
func redacted(key string) bool {
	for _, part := range []string{"address", "peer", ".ip", "port", "user_agent", "url.query",
		"url.full", "header", "metadata"} {
		if strings.Contains(key, part) {
			return true
		}
	}
	return false
}
