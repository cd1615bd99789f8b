//go:build corpus

package verify_test

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/authsvc/authsvc/gateway/verify"
)

// corpus is the file tests/attacks/test_go_parity.py writes: tokens with
// the outcome authsvc's Validate gave each.
type corpus struct {
	Upstream         string  `json:"upstream"`
	WatchToken       string  `json:"watch_token"`
	Now              float64 `json:"now"`
	Issuer           string  `json:"issuer"`
	Audience         string  `json:"audience"`
	Leeway           float64 `json:"leeway"`
	MaxTokenLifetime float64 `json:"max_token_lifetime"`
	Cases            []struct {
		Name    string `json:"name"`
		Token   string `json:"token"`
		Outcome string `json:"outcome"`
	} `json:"cases"`
}

func TestAttackCorpus(t *testing.T) {
	raw, err := os.ReadFile(os.Getenv("AUTHSVC_TEST_CORPUS"))
	if err != nil {
		t.Fatalf("AUTHSVC_TEST_CORPUS: %v (tests/attacks/test_go_parity.py writes it)", err)
	}
	var c corpus
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(c.Upstream, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sec, frac := math.Modf(c.Now)
	now := time.Unix(int64(sec), int64(frac*1e9))
	v, err := verify.New(conn, verify.Options{
		Issuer: c.Issuer, Audience: c.Audience, Leeway: time.Duration(c.Leeway * float64(time.Second)),
		MaxTokenLifetime: time.Duration(c.MaxTokenLifetime * float64(time.Second)),
		Now:              func() time.Time { return now },
		AccessToken:      func(context.Context) (string, error) { return c.WatchToken, nil },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := v.Start(ctx); err != nil {
		t.Fatalf("no keys or revocation snapshot: %v", err)
	}
	defer v.Close()

	for _, tc := range c.Cases {
		claims, err := v.Verify(context.Background(), tc.Token)
		got := ""
		if err == nil {
			got = "OK " + claims.SessionID
		} else if got = verify.AsError(err).Reason; got == "" {
			got = "UNAVAILABLE"
		}
		if got != tc.Outcome {
			t.Errorf("%s: Go verifier says %q, Validate %q", tc.Name, got, tc.Outcome)
		}
	}
	t.Logf("%d corpus tokens, every one answered as Validate answered it", len(c.Cases))
}
