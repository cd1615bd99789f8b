package verify

import (
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
)

func withClaims(extra map[string]any) map[string]any {
	c := goodClaims()
	for k, v := range extra {
		c[k] = v
	}
	return c
}

func TestAmrAcrAndAuthTimeAreRead(t *testing.T) {
	s := newSigner(t)
	token := s.sign(t, goodHeader(), withClaims(map[string]any{
		"amr": []string{"pwd", "otp"}, "acr": "aal2", "auth_time": testNow - 100}))

	claims, err := verifyToken(token, s.lookup, testRules, testNow)

	if err != nil {
		t.Fatal(err)
	}
	if len(claims.AMR) != 2 || claims.AMR[1] != "otp" || claims.ACR != "aal2" ||
		claims.AuthTime != testNow-100 {
		t.Fatalf("got %+v", claims)
	}
}

func TestATokenWithoutThemStillVerifies(t *testing.T) {
	s := newSigner(t)

	claims, err := verifyToken(s.sign(t, goodHeader(), goodClaims()), s.lookup, testRules, testNow)

	if err != nil || claims.AMR != nil || claims.ACR != "" || claims.AuthTime != 0 {
		t.Fatalf("got %+v, %v", claims, err)
	}
}

func TestMalformedAmrAcrOrAuthTimeIsInvalid(t *testing.T) {
	s := newSigner(t)
	for name, extra := range map[string]map[string]any{
		"amr a string": {"amr": "pwd"}, "amr of numbers": {"amr": []int{1}},
		"an empty amr value": {"amr": []string{""}}, "acr a number": {"acr": 2},
		"auth_time a string": {"auth_time": "now"}, "auth_time true": {"auth_time": true},
		"auth_time negative": {"auth_time": -1},
	} {
		_, err := verifyToken(s.sign(t, goodHeader(), withClaims(extra)), s.lookup, testRules, testNow)
		if err != ErrTokenInvalid {
			t.Errorf("%s: got %v, want TOKEN_INVALID", name, err)
		}
	}
}

func TestStepUpAsksForTheFactorAndARecentSignIn(t *testing.T) {
	p := Policy{
		RequireAMR: map[string][]string{"bank.v1.Payments": {"otp", "hwk", "swk"}},
		MaxAge:     map[string]int{"/bank.v1.Payments/Close": 300},
	}
	password := &Claims{AMR: []string{"pwd"}, AuthTime: testNow}
	second := &Claims{AMR: []string{"pwd", "otp"}, AuthTime: testNow}

	weak := p.stepUp("/bank.v1.Payments/Send", password, testNow)
	strong := p.stepUp("/bank.v1.Payments/Send", second, testNow)
	fresh := p.stepUp("/bank.v1.Payments/Close", second, testNow+300)
	stale := p.stepUp("/bank.v1.Payments/Close", second, testNow+301)
	elsewhere := p.stepUp("/bank.v1.Accounts/Get", password, testNow)

	if strong != nil || fresh != nil || elsewhere != nil {
		t.Fatalf("refused: %v %v %v", strong, fresh, elsewhere)
	}
	want := map[string]struct {
		err       error
		challenge string
	}{
		"password only": {weak, `Bearer realm="authsvc", error="insufficient_user_authentication", ` +
			`error_description="A stronger or more recent authentication is required", acr_values="aal2"`},
		"too long ago": {stale, `Bearer realm="authsvc", error="insufficient_user_authentication", ` +
			`error_description="A stronger or more recent authentication is required", acr_values="aal2", max_age="300"`},
	}
	for name, w := range want {
		e := AsError(w.err)
		if e.Code != codes.Unauthenticated || e.Reason != "INSUFFICIENT_USER_AUTHENTICATION" ||
			e.Challenge() != w.challenge {
			t.Errorf("%s: got %v %s %q", name, e.Code, e.Reason, e.Challenge())
		}
	}
	info := &errdetails.ErrorInfo{}
	for _, d := range AsError(stale).GRPCStatus().Details() {
		if i, ok := d.(*errdetails.ErrorInfo); ok {
			info = i
		}
	}
	if info.GetMetadata()["amr"] != "otp hwk swk" || info.GetMetadata()["max_age"] != "300" {
		t.Errorf("ErrorInfo metadata: %v", info.GetMetadata())
	}
}
