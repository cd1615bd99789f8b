package verify

import (
	"context"
	"math/rand/v2"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// backoff is authsvc.core.backoff.Backoff: 0.1 s doubling to 5 s, ±20 % jitter.
type backoff struct{ next time.Duration }

func (b *backoff) wait() time.Duration {
	if b.next == 0 {
		b.next = 100 * time.Millisecond
	}
	d := b.next
	b.next = min(2*b.next, 5*time.Second)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func (b *backoff) reset() { b.next = 0 }

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// fetchKeys replaces the key set with authsvc's published one, and puts
// the token rules published with it in force (see ruleSource).
func (v *Verifier) fetchKeys(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, v.opts.Timeout)
	defer cancel()
	resp, err := v.client.GetJwks(ctx, &authsvcv1.GetJwksRequest{})
	if err != nil {
		return err
	}
	rules := v.source.resolve(resp.GetRules())
	v.adopt(rules)
	keys := make(map[string]*key)
	for _, jwk := range resp.GetKeys() {
		if k := keyOf(jwk, rules.Algorithms); k != nil {
			keys[k.kid] = k
		} else {
			v.log.Warn("ignoring unusable JWK", "kid", jwk.GetKid())
		}
	}
	v.keys.Store(&keys)
	v.loadedOnce.Do(func() { close(v.keysLoaded) })
	return nil
}

func (v *Verifier) followKeys(ctx context.Context) {
	defer v.done.Done()
	var b backoff
	for ctx.Err() == nil {
		wait := v.opts.JWKSInterval
		if err := v.fetchKeys(ctx); err != nil {
			if ctx.Err() != nil {
				return
			}
			v.log.Warn("GetJwks failed; retrying", "code", status.Code(err).String())
			wait = b.wait()
		} else {
			b.reset()
		}
		sleep(ctx, wait)
		v.check.Load().cache.evictExpired(v.now())
	}
}

// refetchFor fetches the key set again for an unknown kid, at most once
// per KidRefetchInterval whatever the kid.
func (v *Verifier) refetchFor(ctx context.Context, kid string) {
	v.refetchMu.Lock()
	defer v.refetchMu.Unlock()
	if (*v.keys.Load())[kid] != nil {
		return
	}
	now := v.opts.Monotonic()
	if !v.lastRefetch.IsZero() && now.Sub(v.lastRefetch) < v.opts.KidRefetchInterval {
		return
	}
	v.lastRefetch = now
	if err := v.fetchKeys(ctx); err != nil {
		v.log.Warn("GetJwks failed", "code", status.Code(err).String())
	}
}

// followRevocations keeps one WatchRevocations stream open: the snapshot
// merges into the set, each message after it (revocations, or an empty
// heartbeat) adds to it and confirms it is current. When the stream ends,
// the set stays trusted until MaxStaleness after the last message, while
// the stream reconnects with backoff.
func (v *Verifier) followRevocations(ctx context.Context) {
	defer v.done.Done()
	var b backoff
	for ctx.Err() == nil {
		if err := v.watch(ctx, &b); err != nil && ctx.Err() == nil {
			v.log.Warn("WatchRevocations ended; reconnecting", "code", status.Code(err).String())
		}
		v.following.Store(false)
		sleep(ctx, b.wait())
	}
}

func (v *Verifier) watch(ctx context.Context, b *backoff) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	token := ""
	if v.opts.AccessToken != nil {
		var err error
		if token, err = v.opts.AccessToken(ctx); err != nil {
			return err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	stream, err := v.client.WatchRevocations(ctx, &authsvcv1.WatchRevocationsRequest{})
	if err != nil {
		return err
	}
	for {
		msg, err := stream.Recv()
		if err != nil {
			if v.opts.Account != nil && status.Code(err) == codes.Unauthenticated {
				v.opts.Account.Refused(token)
			}
			return err
		}
		if msg.GetSnapshot() {
			v.revoked.load(msg.GetSessionIds())
			v.snapshotOnce.Do(func() { close(v.snapshotSeen) })
			v.following.Store(true)
			b.reset()
		} else {
			v.revoked.add(msg.GetSessionIds())
		}
		v.revoked.prune()
	}
}
