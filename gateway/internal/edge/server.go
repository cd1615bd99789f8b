// Package edge is the HTTP/JSON face of authsvc: a grpc-gateway mux over
// a pool of gRPC connections to authsvc, with the header, error, caching and health
// behaviour an OAuth-style HTTP API needs. cmd code only builds a Config and
// calls Run.
package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	authsvcgw "github.com/authsvc/authsvc/gateway/gen/authsvc/v1"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Config is everything the gateway is told at start-up.
type Config struct {
	Listen   string // HTTP address, HOST:PORT (port 0 picks a free one)
	Upstream string // authsvc's gRPC address, HOST:PORT
	// UpstreamConnections is how many connections to authsvc calls are
	// spread over, round-robin (upstreamPool); at least 1.
	UpstreamConnections int

	UpstreamTLS        bool   // speak TLS to authsvc
	UpstreamCA         string // PEM file of CAs for authsvc's certificate; empty: system roots
	UpstreamServerName string // name to verify in authsvc's certificate; empty: host of Upstream

	// Timeout bounds each call to authsvc; past it the client gets 504.
	Timeout time.Duration
	// JWKSMaxAge is the Cache-Control max-age of the JWKS (see cacheHeaders).
	JWKSMaxAge time.Duration
	// Browser is CORS and cookie mode (cors.go, cookies.go).
	Browser BrowserConfig
	// HTTPS serves TLS on Listen instead of plain HTTP (https.go).
	HTTPS HTTPSConfig

	// Extend, when set, is called once with the connection to authsvc and
	// adds to the gateway what other packages build on it (the Go verifier,
	// discovery, introspection, ext_authz: internal/oauth).
	Extend func(ctx context.Context, conn grpc.ClientConnInterface) (Extension, error)
}

// Extension is what Config.Extend adds. Either field may be nil.
type Extension struct {
	// Conn wraps the connection the generated handlers call, so some calls
	// can be answered in the gateway itself.
	Conn func(grpc.ClientConnInterface) grpc.ClientConnInterface
	// Handler wraps the whole HTTP surface, to serve routes of its own.
	Handler func(http.Handler) http.Handler
}

// jsonOptions render every response: proto field names (access_token, not
// accessToken), and zero values present ("scopes": [], "session_id": "") so
// clients see every field. EmitDefaultValues rather than EmitUnpopulated:
// an unset message field is left out instead of rendered as null, which
// the OpenAPI spec could not describe.
var jsonOptions = protojson.MarshalOptions{UseProtoNames: true, EmitDefaultValues: true}

// reconnectBackoff caps the wait between attempts to reach authsvc at 5 s
// (gRPC's default is 120 s), so the edge recovers soon after authsvc is
// back; in between, calls fail fast with 503.
var reconnectBackoff = backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second}

// Run serves HTTP (HTTPS with cfg.HTTPS) until ctx is done, then shuts down
// gracefully. It logs one line "listening on http://ADDR" (https://ADDR)
// once the socket accepts connections.
func Run(ctx context.Context, cfg Config, log *slog.Logger) error {
	var certificate *certificateFiles
	if cfg.HTTPS.On() {
		var err error
		if certificate, err = loadCertificateFiles(cfg.HTTPS.CertFile, cfg.HTTPS.KeyFile, time.Now, log); err != nil {
			return err
		}
		log.Info("TLS certificate loaded", certificateAttrs(cfg.HTTPS.CertFile, certificate.current)...)
	}
	conn, err := dialPool(max(cfg.UpstreamConnections, 1), func() (*grpc.ClientConn, error) { return dialUpstream(cfg) })
	if err != nil {
		return err
	}
	defer conn.Close()

	handler, err := NewHandler(ctx, conn, cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           traced(withHSTS(cfg.HTTPS, handler)),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	if cfg.Browser.InsecureDevCookies {
		log.Warn("INSECURE: --insecure-dev-cookies sends the refresh cookie without Secure; for http://localhost development only, never in production")
	}
	scheme, serve := "http", func() error { return srv.Serve(ln) }
	if certificate != nil {
		srv.TLSConfig, srv.Protocols = serverTLS(certificate), httpsProtocols()
		scheme, serve = "https", func() error { return srv.ServeTLS(ln, "", "") }
	}
	log.Info(fmt.Sprintf("listening on %s://%s", scheme, ln.Addr()), "upstream", cfg.Upstream, "upstream_tls", cfg.UpstreamTLS)

	errc := make(chan error, 1)
	go func() { errc <- serve() }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// NewHandler returns the whole HTTP surface: the gateway routes from the
// protos, /healthz and /readyz, behind the request header guard and the
// JSON-only rule for POST, every answer marked nosniff; CORS and cookie
// mode as cfg.Browser says; what cfg.Extend adds inside CORS. Of cfg it
// uses Timeout, JWKSMaxAge, Browser and Extend.
func NewHandler(ctx context.Context, conn grpc.ClientConnInterface, cfg Config) (http.Handler, error) {
	var ext Extension
	if cfg.Extend != nil {
		var err error
		if ext, err = cfg.Extend(ctx, conn); err != nil {
			return nil, err
		}
	}
	calls := conn
	if ext.Conn != nil {
		calls = ext.Conn(conn)
	}
	mux := runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, requestJSON{&runtime.JSONPb{
			MarshalOptions: jsonOptions,
			// RFC 6749 section 3.2: a server MUST ignore unrecognised
			// request parameters, so unknown JSON members are dropped.
			UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: true},
		}}),
		runtime.WithIncomingHeaderMatcher(incomingHeaderMatcher),
		runtime.WithMetadata(forwardedUserAgent),
		runtime.WithOutgoingHeaderMatcher(dropMetadata),
		runtime.WithOutgoingTrailerMatcher(dropMetadata),
		runtime.WithErrorHandler(errorHandler),
		runtime.WithRoutingErrorHandler(routingErrorHandler),
		runtime.WithForwardResponseOption(cacheHeaders(cfg.JWKSMaxAge)),
		runtime.WithForwardResponseRewriter(rewriteResponse),
		runtime.WithDisableHTTPMethodOverride(),
	)
	if err := authsvcgw.RegisterAuthHandlerClient(ctx, mux, authsvcv1.NewAuthClient(upstream{calls})); err != nil {
		return nil, err
	}
	root := http.NewServeMux()
	root.HandleFunc("GET /healthz", healthz)
	root.Handle("GET /readyz", readyz(conn))
	root.Handle("/", withTimeout(cfg.Timeout, mux))
	registerFederation(root, authsvcv1.NewAuthClient(upstream{calls}), cfg.Browser, cfg.Timeout)
	inner := guardHeaders(requireJSON(limitBody(withRefreshCookie(cfg.Browser, root))))
	if ext.Handler != nil {
		inner = ext.Handler(inner)
	}
	return noSniff(withCORS(cfg.Browser, inner)), nil
}

// dialUpstream makes one gRPC connection to authsvc (lazily: nothing is
// dialled until the first call, so the gateway starts before authsvc).
func dialUpstream(cfg Config) (*grpc.ClientConn, error) {
	creds, err := transportCredentials(cfg)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(cfg.Upstream, append(tracedDial(), grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnectBackoff, MinConnectTimeout: 5 * time.Second}))...)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", cfg.Upstream, err)
	}
	return conn, nil
}

func transportCredentials(cfg Config) (credentials.TransportCredentials, error) {
	if !cfg.UpstreamTLS {
		return insecure.NewCredentials(), nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: cfg.UpstreamServerName}
	if cfg.UpstreamCA != "" {
		pem, err := os.ReadFile(cfg.UpstreamCA)
		if err != nil {
			return nil, fmt.Errorf("upstream CA: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("upstream CA %s: no PEM certificate in it", cfg.UpstreamCA)
		}
	}
	return credentials.NewTLS(conf), nil
}

func withTimeout(d time.Duration, next http.Handler) http.Handler {
	if d <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
