package verify

import (
	"fmt"
	"testing"
	"time"

	"github.com/authsvc/authsvc/gateway/verify/testclock"
)

func TestTheCacheKeepsAtMostItsCapacityDroppingTheOldest(t *testing.T) {
	c := newTokenCache(3)
	for i := range 5 {
		c.put(fmt.Sprint(i), &Claims{UserID: fmt.Sprint(i)}, 100)
	}

	if c.len() != 3 || c.get("0", 0) != nil || c.get("1", 0) != nil || c.get("4", 0) == nil {
		t.Errorf("len %d", c.len())
	}
	if c.get("4", 100) != nil {
		t.Error("served at its until")
	}
	c.evictExpired(100)
	if c.len() != 0 {
		t.Errorf("len after eviction %d", c.len())
	}
}

func TestRevocationsAreTrustedForTheStalenessBoundAfterTheLastWord(t *testing.T) {
	mono := testclock.At(time.Unix(0, 0))
	s := newRevocationSet(990*time.Second, 5*time.Second, mono.Now)
	if _, known := s.isRevoked("x"); known {
		t.Fatal("trusted before any snapshot")
	}

	s.load([]string{"a"})
	mono.Advance(5 * time.Second)
	revokedA, _ := s.isRevoked("a")
	_, knownAtBound := s.isRevoked("x")
	mono.Advance(time.Millisecond)
	_, knownPast := s.isRevoked("x")
	revokedPast, _ := s.isRevoked("a")
	s.add(nil) // heartbeat
	_, knownAfterHeartbeat := s.isRevoked("x")

	if !revokedA || !knownAtBound || knownPast || !revokedPast || !knownAfterHeartbeat {
		t.Errorf("a %v, bound %v, past %v, a past %v, heartbeat %v", revokedA, knownAtBound, knownPast, revokedPast, knownAfterHeartbeat)
	}
}

func TestARevocationIsKeptForItsWindowAndASnapshotMerges(t *testing.T) {
	mono := testclock.At(time.Unix(0, 0))
	s := newRevocationSet(990*time.Second, 5*time.Second, mono.Now)
	s.load([]string{"a"})
	s.add([]string{"b"})

	s.load([]string{"c"}) // a reconnect's snapshot without a or b
	mono.Advance(990 * time.Second)
	s.prune()
	kept := s.len()
	mono.Advance(time.Nanosecond)
	s.prune()

	if kept != 3 || s.len() != 0 {
		t.Errorf("kept %d, then %d", kept, s.len())
	}
}

func TestMaxStalenessBelowTwoHeartbeatsIsRefused(t *testing.T) {
	if _, err := New(nil, Options{MaxStaleness: time.Second}); err == nil {
		t.Error("accepted")
	}
}
