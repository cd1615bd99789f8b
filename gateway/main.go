// Command gateway is authsvc's HTTP/JSON edge: grpc-gateway in front of the
// authsvc gRPC service. Every flag has an AUTHSVC_GATEWAY_* environment
// variable; a flag given on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/authsvc/authsvc/gateway/internal/edge"
	"github.com/authsvc/authsvc/gateway/internal/oauth"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	slog.SetDefault(log)
	cfg, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	stopTracing, err := edge.SetupTracing(ctx) // OTEL_EXPORTER_OTLP_ENDPOINT: see edge/tracing.go
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway: tracing:", err)
		os.Exit(2)
	}
	err = edge.Run(ctx, cfg, log)
	flushCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = stopTracing(flushCtx)
	if err != nil {
		log.Error("gateway stopped", "error", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (edge.Config, error) {
	var cfg edge.Config
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.StringVar(&cfg.Listen, "listen", env("LISTEN", "127.0.0.1:8080"),
		"HTTP (with --tls-cert, HTTPS) address to serve, HOST:PORT (env AUTHSVC_GATEWAY_LISTEN)")
	fs.StringVar(&cfg.Upstream, "upstream", env("UPSTREAM", "127.0.0.1:50051"),
		"authsvc gRPC address, HOST:PORT (env AUTHSVC_GATEWAY_UPSTREAM)")
	connections, err := strconv.Atoi(env("UPSTREAM_CONNECTIONS", "8"))
	if err != nil {
		return cfg, fmt.Errorf("AUTHSVC_GATEWAY_UPSTREAM_CONNECTIONS: %w", err)
	}
	fs.IntVar(&cfg.UpstreamConnections, "upstream-connections", connections,
		"connections to authsvc; a call takes the one with the fewest calls in flight; several per authsvc worker (env AUTHSVC_GATEWAY_UPSTREAM_CONNECTIONS)")
	upstreamTLS, err := strconv.ParseBool(env("UPSTREAM_TLS", "false"))
	if err != nil {
		return cfg, fmt.Errorf("AUTHSVC_GATEWAY_UPSTREAM_TLS: %w", err)
	}
	fs.BoolVar(&cfg.UpstreamTLS, "upstream-tls", upstreamTLS,
		"use TLS to authsvc (env AUTHSVC_GATEWAY_UPSTREAM_TLS)")
	fs.StringVar(&cfg.UpstreamCA, "upstream-ca", env("UPSTREAM_CA", ""),
		"PEM file of CAs that sign authsvc's certificate; implies --upstream-tls (env AUTHSVC_GATEWAY_UPSTREAM_CA)")
	fs.StringVar(&cfg.UpstreamServerName, "upstream-server-name", env("UPSTREAM_SERVER_NAME", ""),
		"name to verify in authsvc's certificate; implies --upstream-tls (env AUTHSVC_GATEWAY_UPSTREAM_SERVER_NAME)")
	timeout, err := time.ParseDuration(env("TIMEOUT", "10s"))
	if err != nil {
		return cfg, fmt.Errorf("AUTHSVC_GATEWAY_TIMEOUT: %w", err)
	}
	fs.DurationVar(&cfg.Timeout, "timeout", timeout,
		"deadline for each call to authsvc (env AUTHSVC_GATEWAY_TIMEOUT)")
	jwksMaxAge, err := time.ParseDuration(env("JWKS_MAX_AGE", "60s"))
	if err != nil {
		return cfg, fmt.Errorf("AUTHSVC_GATEWAY_JWKS_MAX_AGE: %w", err)
	}
	fs.DurationVar(&cfg.JWKSMaxAge, "jwks-max-age", jwksMaxAge,
		"Cache-Control max-age of the JWKS; keep it at most authsvc's key --publish-ahead (env AUTHSVC_GATEWAY_JWKS_MAX_AGE)")
	checkBrowser, err := edge.RegisterBrowserFlags(fs, &cfg.Browser, env)
	if err != nil {
		return cfg, err
	}
	checkHTTPS, err := edge.RegisterHTTPSFlags(fs, &cfg.HTTPS, env)
	if err != nil {
		return cfg, err
	}
	var edgeAuth oauth.Settings // the Go verifier, discovery, introspection, ext_authz
	if err := edgeAuth.Register(fs, env); err != nil {
		return cfg, err
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if err := checkBrowser(); err != nil {
		return cfg, err
	}
	if err := checkHTTPS(); err != nil {
		return cfg, err
	}
	if cfg.HTTPS.On() && cfg.Browser.InsecureDevCookies {
		return cfg, fmt.Errorf("--insecure-dev-cookies is for plain http://localhost; over HTTPS (--tls-cert) the cookie is Secure")
	}
	if err := edgeAuth.Check(); err != nil {
		return cfg, err
	}
	edgeAuth.KeySetMaxAge = cfg.JWKSMaxAge
	cfg.Extend = edgeAuth.Extend
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if cfg.UpstreamConnections < 1 || cfg.UpstreamConnections > 64 {
		return cfg, fmt.Errorf("--upstream-connections must be between 1 and 64")
	}
	if cfg.JWKSMaxAge < 0 {
		return cfg, fmt.Errorf("--jwks-max-age must not be negative")
	}
	if cfg.UpstreamCA != "" || cfg.UpstreamServerName != "" {
		cfg.UpstreamTLS = true
	}
	return cfg, nil
}

func env(name, fallback string) string {
	if v, ok := os.LookupEnv("AUTHSVC_GATEWAY_" + name); ok {
		return v
	}
	return fallback
}
