package verify

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// publishing is an authsvc that publishes one key and rules (nil: none),
// and an empty revocation set.
type publishing struct {
	authsvcv1.UnimplementedAuthServer
	jwk   *authsvcv1.Jwk
	rules *authsvcv1.TokenRules
}

func (p *publishing) GetJwks(context.Context, *authsvcv1.GetJwksRequest) (*authsvcv1.GetJwksResponse, error) {
	return &authsvcv1.GetJwksResponse{Keys: []*authsvcv1.Jwk{p.jwk}, Rules: p.rules}, nil
}

func (p *publishing) WatchRevocations(_ *authsvcv1.WatchRevocationsRequest, stream authsvcv1.Auth_WatchRevocationsServer) error {
	if err := stream.Send(&authsvcv1.WatchRevocationsResponse{Snapshot: true}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

var published = &authsvcv1.TokenRules{Issuer: "https://id.example.test", Audience: "orders",
	Algorithms: []string{"ES256"}, AccessTokenTtlSeconds: 300, LeewaySeconds: 5}

// following starts a verifier with opts over an authsvc publishing rules
// with s's key; it logs into the returned buffer.
func following(t *testing.T, s *signer, rules *authsvcv1.TokenRules, opts Options) (*Verifier, *bytes.Buffer) {
	t.Helper()
	pub := s.priv.PublicKey
	x, y := make([]byte, 32), make([]byte, 32)
	pub.X.FillBytes(x)
	pub.Y.FillBytes(y)
	jwk := &authsvcv1.Jwk{Kty: "EC", Crv: "P-256", Kid: s.key.kid, Use: "sig", Alg: "ES256",
		X: base64.RawURLEncoding.EncodeToString(x), Y: base64.RawURLEncoding.EncodeToString(y)}
	lis := bufconn.Listen(1 << 20)
	srv := grpc.NewServer()
	authsvcv1.RegisterAuthServer(srv, &publishing{jwk: jwk, rules: rules})
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient("passthrough:///authsvc",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var logs bytes.Buffer
	opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	opts.Now = func() time.Time { return time.Unix(int64(testNow), 0) }
	v, err := New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v, &logs
}

// tokenOf is a token of s with claims changed by change (the published
// issuer and audience, a 300 s lifetime, unless changed).
func tokenOf(t *testing.T, s *signer, change map[string]any) string {
	t.Helper()
	claims := goodClaims()
	claims["iss"], claims["aud"], claims["exp"] = published.Issuer, published.Audience, testNow+300
	for k, v := range change {
		claims[k] = v
	}
	return s.sign(t, goodHeader(), claims)
}

func TestAVerifierToldNothingAppliesThePublishedRules(t *testing.T) {
	s := newSigner(t)
	v, logs := following(t, s, published, Options{})

	claims, errGood := v.Verify(context.Background(), tokenOf(t, s, nil))
	_, errAudience := v.Verify(context.Background(), tokenOf(t, s, map[string]any{"aud": "authsvc"}))
	_, errLifetime := v.Verify(context.Background(), tokenOf(t, s, map[string]any{"exp": testNow + 301}))
	_, errLeeway := v.Verify(context.Background(), tokenOf(t, s, map[string]any{
		"iat": testNow - 306, "nbf": testNow - 306, "exp": testNow - 6}))

	if errGood != nil || claims.UserID != "u1" {
		t.Errorf("a token under the published rules: %v", errGood)
	}
	if !errors.Is(errAudience, ErrTokenInvalid) || !errors.Is(errLifetime, ErrTokenInvalid) {
		t.Errorf("another audience: %v; longer than the published lifetime: %v", errAudience, errLifetime)
	}
	if !errors.Is(errLeeway, ErrTokenExpired) {
		t.Errorf("6 s past exp with a published leeway of 5 s: %v", errLeeway)
	}
	want := Rules{Issuer: published.Issuer, Audience: "orders", Algorithms: map[string]bool{"ES256": true},
		Leeway: 5, MaxLifetime: 300}
	if got := v.Rules(); !sameRules(got, want) || v.revoked.window != 315*time.Second {
		t.Errorf("rules %+v, revocation window %v", got, v.revoked.window)
	}
	if logs.Len() != 0 {
		t.Errorf("logged %q", logs.String())
	}
}

func TestAGivenRuleWinsAndADifferenceIsLoggedOnce(t *testing.T) {
	s := newSigner(t)
	v, logs := following(t, s, published, Options{Audience: "billing", Leeway: 5 * time.Second})

	for range 3 {
		if err := v.fetchKeys(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	_, errPublished := v.Verify(context.Background(), tokenOf(t, s, nil))
	_, errGiven := v.Verify(context.Background(), tokenOf(t, s, map[string]any{"aud": "billing"}))

	if !errors.Is(errPublished, ErrTokenInvalid) || errGiven != nil {
		t.Errorf("published audience: %v; given audience: %v", errPublished, errGiven)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "rule=audience given=billing published=orders") {
		t.Errorf("logged %q, want one warning about the audience", logs.String())
	}
}

func TestWithoutPublishedRulesTheDefaultsApply(t *testing.T) {
	s := newSigner(t)
	v, _ := following(t, s, nil, Options{})

	_, err := v.Verify(context.Background(), s.sign(t, goodHeader(), goodClaims()))

	if err != nil || !sameRules(v.Rules(), defaultRules()) || v.revoked.window != 990*time.Second {
		t.Errorf("error %v, rules %+v, window %v", err, v.Rules(), v.revoked.window)
	}
}

func TestALongerRevocationWindowExtendsWhatIsHeld(t *testing.T) {
	mono := testclock.At(time.Unix(0, 0))
	s := newRevocationSet(990*time.Second, 5*time.Second, mono.Now)
	s.add([]string{"a"})

	s.resize(1490 * time.Second)
	mono.Advance(1490 * time.Second)
	s.prune()
	kept := s.len()
	s.resize(10 * time.Second)
	s.add([]string{"b"})
	mono.Advance(time.Nanosecond)
	s.prune()

	if kept != 1 || s.len() != 1 {
		t.Errorf("kept %d, then %d", kept, s.len())
	}
}
