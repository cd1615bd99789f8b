package verify

import (
	"sync"
	"time"
)

// revocationSet is authsvc.core.revocations.RevocationSet as a follower
// needs it: session ids revoked within window, and how far to trust them.
// Trust counts from the last time the feed spoke (snapshot, revocation or
// heartbeat), on the monotonic clock: a silent feed is trusted for
// maxStaleness after its last word, then isRevoked cannot answer. A
// snapshot after a reconnect merges into the set, never replaces it.
type revocationSet struct {
	mu           sync.Mutex
	revoked      map[string]float64 // session id → when it was learnt (wall seconds)
	trustedUntil time.Time          // zero: nothing loaded yet
	window       float64
	maxStaleness time.Duration
	wall         func() float64
	mono         func() time.Time
}

func newRevocationSet(window float64, maxStaleness time.Duration, wall func() float64, mono func() time.Time) *revocationSet {
	return &revocationSet{revoked: make(map[string]float64), window: window,
		maxStaleness: maxStaleness, wall: wall, mono: mono}
}

// isRevoked answers (revoked, known): known is false when the set is too
// stale to say that a session is not revoked.
func (s *revocationSet) isRevoked(sid string) (revoked, known bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.revoked[sid]; ok {
		return true, true
	}
	return false, s.trustedLocked()
}

func (s *revocationSet) trusted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.trustedLocked()
}

func (s *revocationSet) trustedLocked() bool {
	return !s.trustedUntil.IsZero() && !s.mono().After(s.trustedUntil)
}

// load merges a snapshot, every session in it as revoked now (the server
// holds it for its own window from its own moment); the feed is current.
func (s *revocationSet) load(sids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.wall()
	for _, sid := range sids {
		s.revoked[sid] = now
	}
	s.trustedUntil = s.mono().Add(s.maxStaleness)
}

// add records revocations the feed delivered (an empty list is a
// heartbeat); either way the feed just confirmed the set is current.
func (s *revocationSet) add(sids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.wall()
	for _, sid := range sids {
		if _, ok := s.revoked[sid]; !ok {
			s.revoked[sid] = now
		}
	}
	s.trustedUntil = s.mono().Add(s.maxStaleness)
}

// prune forgets revocations older than the window: no token of theirs can pass.
func (s *revocationSet) prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	horizon := s.wall() - s.window
	for sid, at := range s.revoked {
		if at < horizon {
			delete(s.revoked, sid)
		}
	}
}

func (s *revocationSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.revoked)
}
