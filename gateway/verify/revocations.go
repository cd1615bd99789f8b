package verify

import (
	"sync"
	"time"
)

// revocationSet is authsvc.core.revocations.RevocationSet as a follower
// needs it: revoked session ids, each kept for window on the monotonic
// clock, and how far to trust them.
// Trust counts from the last time the feed spoke (snapshot, revocation or
// heartbeat), on the monotonic clock: a silent feed is trusted for
// maxStaleness after its last word, then isRevoked cannot answer. A
// snapshot after a reconnect merges into the set, never replaces it.
type revocationSet struct {
	mu           sync.Mutex
	revoked      map[string]time.Time // session id → forget after (monotonic)
	trustedUntil time.Time            // zero: nothing loaded yet
	window       time.Duration
	maxStaleness time.Duration
	mono         func() time.Time
}

func newRevocationSet(window, maxStaleness time.Duration, mono func() time.Time) *revocationSet {
	return &revocationSet{revoked: make(map[string]time.Time), window: window,
		maxStaleness: maxStaleness, mono: mono}
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

// load merges a snapshot, each session kept a whole window from now (the
// feed sends ids only), never less than it already was; the feed is current.
func (s *revocationSet) load(sids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	until := now.Add(s.window)
	for _, sid := range sids {
		if held, ok := s.revoked[sid]; !ok || held.Before(until) {
			s.revoked[sid] = until
		}
	}
	s.trustedUntil = now.Add(s.maxStaleness)
}

// add records revocations the feed delivered (an empty list is a
// heartbeat); either way the feed just confirmed the set is current.
func (s *revocationSet) add(sids []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	for _, sid := range sids {
		if _, ok := s.revoked[sid]; !ok {
			s.revoked[sid] = now.Add(s.window)
		}
	}
	s.trustedUntil = now.Add(s.maxStaleness)
}

// resize keeps each session window after it arrived (a verifier learns the
// access-token lifetime and leeway from authsvc after it has started): a
// longer window also extends what is held; a shorter one never cuts it
// (holding a revocation longer is always safe).
func (s *revocationSet) resize(window time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if grow := window - s.window; grow > 0 {
		for sid, until := range s.revoked {
			s.revoked[sid] = until.Add(grow)
		}
	}
	s.window = window
}

// prune forgets the sessions whose time is up: no token of theirs can pass.
func (s *revocationSet) prune() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.mono()
	for sid, until := range s.revoked {
		if until.Before(now) {
			delete(s.revoked, sid)
		}
	}
}

func (s *revocationSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.revoked)
}
