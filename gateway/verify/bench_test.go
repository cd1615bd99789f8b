package verify

import (
	"context"
	"testing"
	"time"
)

// readyVerifier is a Verifier with s's key and an empty, current revocation
// set, as if it had followed authsvc: no network.
func readyVerifier(b *testing.B, s *signer) *Verifier {
	b.Helper()
	v, err := New(nil, Options{Algorithms: []string{"ES256"},
		Now: func() time.Time { return time.Unix(int64(testNow), 0) }})
	if err != nil {
		b.Fatal(err)
	}
	keys := map[string]*key{s.key.kid: s.key}
	v.keys.Store(&keys)
	v.loadedOnce.Do(func() { close(v.keysLoaded) })
	v.revoked.load(nil)
	return v
}

// BenchmarkVerifyCached is a token seen before: cache, times, revocation.
func BenchmarkVerifyCached(b *testing.B) {
	s := newSigner(&testing.T{})
	v := readyVerifier(b, s)
	token := s.sign(&testing.T{}, goodHeader(), goodClaims())
	if _, err := v.Verify(context.Background(), token); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := v.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyFirst is a token never seen: parse, ES256 signature, claims.
func BenchmarkVerifyFirst(b *testing.B) {
	s := newSigner(&testing.T{})
	v := readyVerifier(b, s)
	v.check.Store(&tokenCheck{rules: v.check.Load().rules, cache: newTokenCache(-1)})
	token := s.sign(&testing.T{}, goodHeader(), goodClaims())
	for b.Loop() {
		if _, err := v.Verify(context.Background(), token); err != nil {
			b.Fatal(err)
		}
	}
}
