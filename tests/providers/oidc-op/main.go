// Command authsvc-test-op runs the example OpenID Provider of github.com/zitadel/oidc/v3
// (its exampleop and storage packages, unchanged) as a real OIDC provider for authsvc's
// federation tests. What this file adds is only configuration:
//
//   - the listen address (port 0 picks a free one) and the issuer, which defaults to
//     http://<listen address> once the port is known;
//   - the clients (id, secret, redirect URIs) and users (with a verified or an unverified
//     e-mail) from a JSON file, instead of the example's hard-coded ones;
//   - -claims-in-id-token: the e-mail claims in the id_token itself (Google's habit);
//     without it they are only at the userinfo endpoint (the example's default);
//   - -iss-response: RFC 9207, the authorization response carries iss and discovery
//     advertises authorization_response_iss_parameter_supported (the library does
//     neither on its own).
//
// It prints one line, "issuer <url>", on stdout once it accepts connections; the
// login page is the example's form (POST /login/username: id, username, password).
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

type clientConfig struct {
	ID           string   `json:"id"`
	Secret       string   `json:"secret"`
	RedirectURIs []string `json:"redirect_uris"`
}

type userConfig struct {
	ID            string `json:"id"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	GivenName     string `json:"given_name"`
	FamilyName    string `json:"family_name"`
}

type fileConfig struct {
	Clients []clientConfig `json:"clients"`
	Users   []userConfig   `json:"users"`
}

// users implements storage.UserStore over the configured users.
type users map[string]*storage.User

func (u users) GetUserByID(id string) *storage.User { return u[id] }

func (u users) GetUserByUsername(name string) *storage.User {
	for _, user := range u {
		if user.Username == name {
			return user
		}
	}
	return nil
}

func (u users) ExampleClientID() string { return storage.ServiceUserID }

// configuredStorage hands out the example's clients wrapped in configuredClient.
type configuredStorage struct {
	*storage.Storage
	claimsInIDToken bool
	globs           map[string][]string // client id -> redirect URI globs
}

// configuredClient adds what the example's constructors cannot set from outside its
// package: redirect URI globs (doublestar patterns, checked by the library after the
// exact URIs) and, optionally, the userinfo claims in the id_token.
type configuredClient struct {
	op.Client
	claimsInIDToken bool
	globs           []string
}

func (c configuredClient) IDTokenUserinfoClaimsAssertion() bool {
	return c.claimsInIDToken || c.Client.IDTokenUserinfoClaimsAssertion()
}

func (c configuredClient) RedirectURIGlobs() []string { return c.globs }

func (c configuredClient) PostLogoutRedirectURIGlobs() []string { return nil }

func (s configuredStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	client, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return configuredClient{client, s.claimsInIDToken, s.globs[id]}, nil
}

// issWriter appends iss to a redirect that leaves the provider, i.e. the authorization
// response going back to a client's redirect URI (the login pages are on its own origin).
type issWriter struct {
	http.ResponseWriter
	issuer *url.URL
}

func (w issWriter) WriteHeader(code int) {
	if location := w.Header().Get("Location"); code >= 300 && code < 400 && location != "" {
		target, err := url.Parse(location)
		if err == nil && target.IsAbs() && target.Host != w.issuer.Host {
			query := target.Query()
			query.Set("iss", w.issuer.String())
			target.RawQuery = query.Encode()
			w.Header().Set("Location", target.String())
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

// bufferedWriter keeps a response so discovery can be amended before it is sent.
type bufferedWriter struct {
	header http.Header
	code   int
	body   bytes.Buffer
}

func (b *bufferedWriter) Header() http.Header         { return b.header }
func (b *bufferedWriter) WriteHeader(code int)        { b.code = code }
func (b *bufferedWriter) Write(p []byte) (int, error) { return b.body.Write(p) }

func withIssResponse(next http.Handler, issuer *url.URL) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			next.ServeHTTP(issWriter{w, issuer}, r)
			return
		}
		buffered := &bufferedWriter{header: http.Header{}, code: http.StatusOK}
		next.ServeHTTP(buffered, r)
		body := buffered.body.Bytes()
		var document map[string]any
		if buffered.code == http.StatusOK && json.Unmarshal(body, &document) == nil {
			document["authorization_response_iss_parameter_supported"] = true
			if amended, err := json.Marshal(document); err == nil {
				body = amended
			}
		}
		for name, values := range buffered.header {
			w.Header()[name] = values
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(buffered.code)
		_, _ = w.Write(body)
	})
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on (port 0: a free one)")
	issuerFlag := flag.String("issuer", "", "issuer URL (default http://<listen address>)")
	configPath := flag.String("config", "", "JSON file with clients and users (required)")
	claimsInIDToken := flag.Bool("claims-in-id-token", true, "put the e-mail claims in the id_token")
	issResponse := flag.Bool("iss-response", true, "RFC 9207: iss in the authorization response")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if err := run(*listen, *issuerFlag, *configPath, *claimsInIDToken, *issResponse, logger); err != nil {
		logger.Error("authsvc-test-op", "error", err)
		os.Exit(1)
	}
}

func run(listen, issuer, configPath string, claimsInIDToken, issResponse bool, logger *slog.Logger) error {
	if configPath == "" {
		return fmt.Errorf("-config is required")
	}
	raw, err := os.ReadFile(configPath)
	if err != nil {
		return err
	}
	var config fileConfig
	if err := json.Unmarshal(raw, &config); err != nil {
		return fmt.Errorf("%s: %w", configPath, err)
	}
	listener, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	if issuer == "" {
		issuer = fmt.Sprintf("http://%s", listener.Addr().String())
	}
	issuerURL, err := url.Parse(issuer)
	if err != nil {
		return fmt.Errorf("-issuer: %w", err)
	}
	globs := map[string][]string{}
	for _, client := range config.Clients {
		// A web client; its redirect URIs may be globs (http://127.0.0.1:*/** for a
		// gateway on any port).
		storage.RegisterClients(storage.WebClient(client.ID, client.Secret, client.RedirectURIs...))
		globs[client.ID] = client.RedirectURIs
	}
	store := users{}
	for _, user := range config.Users {
		store[user.ID] = &storage.User{
			ID: user.ID, Username: user.Username, Password: user.Password,
			FirstName: user.GivenName, LastName: user.FamilyName,
			Email: user.Email, EmailVerified: user.EmailVerified,
			PreferredLanguage: language.English,
		}
	}
	opStorage := configuredStorage{storage.NewStorage(store), claimsInIDToken, globs}
	var handler http.Handler = exampleop.SetupServer(issuer, opStorage, logger, false)
	if issResponse {
		handler = withIssResponse(handler, issuerURL)
	}
	server := &http.Server{Handler: handler}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	go func() {
		<-stop
		_ = server.Shutdown(context.Background())
	}()
	fmt.Printf("issuer %s\n", issuer)
	if err := server.Serve(listener); err != http.ErrServerClosed {
		return err
	}
	return nil
}
