//go:build authsvc

package verify_test

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
	"google.golang.org/grpc/status"

	"github.com/authsvc/authsvc/gateway/verify"
	"github.com/authsvc/authsvc/gateway/verify/authsvctest"
	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
	"github.com/authsvc/authsvc/gateway/verify/testclock"
)

const patience = 30 * time.Second // bound of every wait on a loaded machine

func started(t *testing.T, conn grpc.ClientConnInterface, opts verify.Options) *verify.Verifier {
	t.Helper()
	v, err := verify.New(conn, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("the verifier got no keys or revocation snapshot: %v", err)
	}
	t.Cleanup(v.Close)
	return v
}

// protected is the grpc health service behind the verifier's interceptors,
// Check and Watch open to any valid token, List needing scope "ops".
func protected(t *testing.T, v *verify.Verifier) healthpb.HealthClient {
	t.Helper()
	policy := verify.Policy{Public: []string{}, Scopes: map[string][]string{"/grpc.health.v1.Health/List": {"ops"}}}
	srv := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(policy)),
		grpc.StreamInterceptor(v.StreamServerInterceptor(policy)))
	healthpb.RegisterHealthServer(srv, health.NewServer())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return healthpb.NewHealthClient(conn)
}

func withBearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

// refusal is what a failed call says: code, ErrorInfo reason, challenge.
type refusal struct {
	code      codes.Code
	reason    string
	challenge string
}

func refusalOf(err error, trailer metadata.MD) refusal {
	st := status.Convert(err)
	r := refusal{code: st.Code()}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok {
			r.reason = info.GetReason()
		}
	}
	if v := trailer.Get("www-authenticate"); len(v) == 1 {
		r.challenge = v[0]
	}
	return r
}

func check(client healthpb.HealthClient, ctx context.Context) refusal {
	var trailer metadata.MD
	_, err := client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Trailer(&trailer))
	if err == nil {
		return refusal{code: codes.OK}
	}
	return refusalOf(err, trailer)
}

func TestTheInterceptorsAnswerAsAuthsvcDoes(t *testing.T) {
	server := authsvctest.Start(t, nil)
	v := started(t, server.Conn, verify.Options{AccessToken: server.WatchToken(t)})
	client := protected(t, v)
	user := server.SignIn(t)
	invalid := `Bearer realm="authsvc", error="invalid_token", error_description="The access token is invalid"`

	ok := check(client, withBearer(user.GetAccessToken()))
	missing := check(client, context.Background())
	garbage := check(client, withBearer("abc.def.ghi"))
	twice := check(client, metadata.AppendToOutgoingContext(withBearer(user.GetAccessToken()),
		"authorization", "Bearer "+user.GetAccessToken()))
	var trailer metadata.MD
	_, err := client.List(withBearer(user.GetAccessToken()), &healthpb.HealthListRequest{}, grpc.Trailer(&trailer))
	scope := refusalOf(err, trailer)
	stream, err := client.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	streamed := refusalOf(err, stream.Trailer())

	if ok.code != codes.OK {
		t.Errorf("a valid token: %+v", ok)
	}
	want := map[string][2]refusal{
		"missing": {missing, {codes.Unauthenticated, "TOKEN_MISSING", `Bearer realm="authsvc"`}},
		"garbage": {garbage, {codes.Unauthenticated, "TOKEN_INVALID", invalid}},
		"two authorization values": {twice, {codes.Unauthenticated, "TOKEN_INVALID",
			`Bearer realm="authsvc", error="invalid_request", error_description="The authorization metadata must hold exactly one Bearer token"`}},
		"missing scope": {scope, {codes.PermissionDenied, "INSUFFICIENT_SCOPE",
			`Bearer realm="authsvc", error="insufficient_scope", error_description="The access token lacks a required scope", scope="ops"`}},
		"stream without token": {streamed, {codes.Unauthenticated, "TOKEN_MISSING", `Bearer realm="authsvc"`}},
	}
	for name, pair := range want {
		if pair[0] != pair[1] {
			t.Errorf("%s: got %+v, want %+v", name, pair[0], pair[1])
		}
	}
}

func TestAProtectedServiceRefusesARevokedSessionWithinASecond(t *testing.T) {
	server := authsvctest.Start(t, nil)
	v := started(t, server.Conn, verify.Options{AccessToken: server.WatchToken(t)})
	client := protected(t, v)
	email := server.AddUser(t)
	var latencies []time.Duration

	for range 20 {
		user, err := server.Auth.SignIn(context.Background(), &authsvcv1.SignInRequest{
			Identifier: &authsvcv1.SignInRequest_Email{Email: email}, Password: authsvctest.Password})
		if err != nil {
			t.Fatal(err)
		}
		ctx := withBearer(user.GetAccessToken())
		if got := check(client, ctx); got.code != codes.OK {
			t.Fatalf("before revocation: %+v", got)
		}
		if _, err := server.Auth.Revoke(context.Background(), &authsvcv1.RevokeRequest{Token: user.GetAccessToken()}); err != nil {
			t.Fatal(err)
		}
		revoked := time.Now()
		for {
			got := check(client, ctx)
			if got.code != codes.OK {
				if got.reason != "TOKEN_REVOKED" {
					t.Fatalf("after revocation: %+v", got)
				}
				break
			}
			if time.Since(revoked) > patience {
				t.Fatal("the revoked session's token is still accepted")
			}
			time.Sleep(time.Millisecond)
		}
		latencies = append(latencies, time.Since(revoked))
	}

	slices.Sort(latencies)
	// p99 of 20 is the slowest; the number goes to the report, not an assertion.
	t.Logf("revocation refused after: p50 %v, p99 %v (n=20)", latencies[9], latencies[19])
}

func TestAnUnknownKidRefetchesTheKeySetAtMostOncePerInterval(t *testing.T) {
	first := authsvctest.Start(t, nil)
	r := manual.NewBuilderWithScheme("authsvc-test")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: first.Addr}}})
	var jwksCalls atomic.Int32
	conn, err := grpc.NewClient(r.Scheme()+":///authsvc", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if method == authsvcv1.Auth_GetJwks_FullMethodName {
				jwksCalls.Add(1)
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	v := started(t, conn, verify.Options{AccessToken: first.WatchToken(t), JWKSInterval: time.Hour,
		KidRefetchInterval: time.Hour})
	rotate := exec.Command(authsvctest.Bin(t), "keys", "rotate", "--publish-ahead", "0", "--database-url", first.DatabaseURL)
	if out, err := rotate.CombinedOutput(); err != nil {
		t.Fatalf("keys rotate: %v\n%s", err, out)
	}
	second := authsvctest.Start(t, nil) // loads the new key and signs with it
	r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: second.Addr}}})
	user := second.SignIn(t)
	before := jwksCalls.Load()

	_, errNewKey := v.Verify(context.Background(), user.GetAccessToken())
	afterNewKey := jwksCalls.Load()
	forged := "eyJhbGciOiJFUzI1NiIsImtpZCI6ImZvcmdlZCIsInR5cCI6ImF0K2p3dCJ9." +
		"eyJzdWIiOiJ4In0.AAAA"
	var refusals []error
	for range 5 {
		_, err := v.Verify(context.Background(), forged)
		refusals = append(refusals, err)
	}

	if errNewKey != nil || afterNewKey != before+1 {
		t.Errorf("new key: %v after %d refetches", errNewKey, afterNewKey-before)
	}
	for _, err := range refusals {
		if !errors.Is(err, verify.ErrTokenInvalid) {
			t.Errorf("forged kid: %v", err)
		}
	}
	if jwksCalls.Load() != afterNewKey {
		t.Errorf("forged kids caused %d more GetJwks", jwksCalls.Load()-afterNewKey)
	}
}

func TestWhenTheFeedFallsSilentTokensAreRefusedPastTheStalenessBound(t *testing.T) {
	server := authsvctest.Start(t, nil)
	clock := testclock.At(time.Unix(1000, 0))
	v := started(t, server.Conn, verify.Options{AccessToken: server.WatchToken(t),
		MaxStaleness: 3 * time.Second, Monotonic: clock.Now})
	user := server.SignIn(t)

	server.Stop()
	deadline := time.Now().Add(patience)
	for v.Following() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	_, atBound := v.Verify(context.Background(), user.GetAccessToken())
	clock.Advance(3*time.Second + time.Millisecond)
	_, pastBound := v.Verify(context.Background(), user.GetAccessToken())

	if v.Following() || atBound != nil || !errors.Is(pastBound, verify.ErrUnavailable) {
		t.Errorf("following %v, within the bound: %v, past it: %v", v.Following(), atBound, pastBound)
	}
}

func TestTheMiddlewareAnswers401WithTheChallengeOrPassesTheClaims(t *testing.T) {
	server := authsvctest.Start(t, nil)
	v := started(t, server.Conn, verify.Options{AccessToken: server.WatchToken(t)})
	user := server.SignIn(t)
	api := httptest.NewServer(v.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(verify.ClaimsFrom(r.Context()).UserID))
	})))
	defer api.Close()
	get := func(auth string) (*http.Response, string) {
		req, _ := http.NewRequest(http.MethodGet, api.URL, nil)
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body [4096]byte
		n, _ := resp.Body.Read(body[:])
		return resp, string(body[:n])
	}

	okResp, okBody := get("Bearer " + user.GetAccessToken())
	badResp, badBody := get("Bearer abc")

	if okResp.StatusCode != 200 || okBody != user.GetUserId() {
		t.Errorf("valid: %d %q", okResp.StatusCode, okBody)
	}
	if badResp.StatusCode != 401 || badResp.Header.Get("WWW-Authenticate") !=
		`Bearer realm="authsvc", error="invalid_token", error_description="The access token is invalid"` ||
		!sameJSON(badBody, `{"code":16,"message":"The access token is invalid.","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"TOKEN_INVALID","domain":"authsvc"}]}`) {
		t.Errorf("invalid: %d %q %q", badResp.StatusCode, badResp.Header.Get("WWW-Authenticate"), badBody)
	}
}

func sameJSON(a, b string) bool {
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

func TestAVerifierToldNoRulesFollowsWhatAuthsvcPublishes(t *testing.T) {
	const issuer = "https://id.example.test"
	server := authsvctest.Start(t, map[string]string{"AUTHSVC_ISSUER": issuer, "AUTHSVC_AUDIENCE": "orders",
		"AUTHSVC_CLOCK_LEEWAY": "5", "AUTHSVC_ACCESS_TOKEN_TTL": "300"})
	// The same database, so the same keys: its tokens differ only in their audience.
	other := authsvctest.Start(t, map[string]string{"AUTHSVC_ISSUER": issuer, "AUTHSVC_AUDIENCE": "billing"})
	v := started(t, server.Conn, verify.Options{AccessToken: server.WatchToken(t)})

	mine, errMine := v.Verify(context.Background(), server.SignIn(t).GetAccessToken())
	_, errOther := v.Verify(context.Background(), other.SignIn(t).GetAccessToken())

	if errMine != nil || mine.UserID == "" {
		t.Errorf("a token of the authsvc followed: %v", errMine)
	}
	if !errors.Is(errOther, verify.ErrTokenInvalid) {
		t.Errorf("a token for another audience: %v", errOther)
	}
	rules := v.Rules()
	if rules.Issuer != issuer || rules.Audience != "orders" || rules.Leeway != 5 || rules.MaxLifetime != 300 ||
		len(rules.Algorithms) != 1 || !rules.Algorithms["ES256"] {
		t.Errorf("rules in force %+v", rules)
	}
}
