package verify

import (
	"context"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// Options configure a Verifier. Zero values take the defaults named.
//
// The token rules (Issuer, Audience, Algorithms, Leeway, MaxTokenLifetime)
// left zero are the ones authsvc publishes with its key set
// (GetJwksResponse.rules: its AUTHSVC_ISSUER, AUTHSVC_AUDIENCE,
// AUTHSVC_SIGNING_ALG, AUTHSVC_CLOCK_LEEWAY and AUTHSVC_ACCESS_TOKEN_TTL),
// followed as they change; an authsvc that publishes none leaves the
// defaults named. A rule set here wins, and a difference from the published
// one is logged as a warning, once per rule.
type Options struct {
	Issuer           string        // published; else "authsvc"
	Audience         string        // published; else "authsvc"
	Algorithms       []string      // published; else ES256, EdDSA, RS256
	Leeway           time.Duration // published; else 30 s. A negative value means none
	MaxTokenLifetime time.Duration // published; else 900 s, authsvc's default access-token lifetime
	// MaxStaleness is how long the revocations are trusted after the feed
	// last spoke; past it every token is refused with ErrUnavailable.
	// authsvc sends a heartbeat each second, so at least 2 s (default 5 s).
	MaxStaleness time.Duration
	// RevocationWindow is how long a revocation is kept: by default the
	// token lifetime plus three leeways (authsvc's retention_window) of
	// the rules in force.
	RevocationWindow time.Duration
	CacheSize        int           // verified tokens kept, 10 000; negative: no cache
	JWKSInterval     time.Duration // how often the key set is fetched again, 5 min
	// KidRefetchInterval bounds the refetches an unknown kid causes: at
	// most one per interval (5 s), so forged kids cannot hammer authsvc.
	KidRefetchInterval time.Duration
	Timeout            time.Duration // deadline of each GetJwks, 5 s
	// AccessToken returns a current access token with scope
	// authsvc.revocations, sent as the bearer of each WatchRevocations
	// stream. Nil: the connection itself authenticates (mutual TLS).
	AccessToken func(context.Context) (string, error)
	// Account, instead of AccessToken, is the service's own account
	// (NewTokenSource): its token is the bearer of each stream, and a
	// stream refused with UNAUTHENTICATED (the session revoked, the token
	// expired) hands the token back, so the next stream gets a fresh one.
	Account   *TokenSource
	Now       func() time.Time // the wall clock that judges exp/nbf/iat; time.Now
	Monotonic func() time.Time // the clock staleness is counted on; time.Now
	Logger    *slog.Logger     // slog.Default()
}

// Verifier verifies authsvc access tokens in-process and follows authsvc's
// revocations in real time. Until its first key set and revocation
// snapshot arrive, and whenever the feed is staler than MaxStaleness,
// every token is refused with ErrUnavailable (fail closed).
type Verifier struct {
	client  authsvcv1.AuthClient
	opts    Options
	source  *ruleSource
	check   atomic.Pointer[tokenCheck] // the rules in force and what was verified under them
	revoked *revocationSet
	log     *slog.Logger
	// windowFollowsRules: no RevocationWindow was set, so it follows the rules.
	windowFollowsRules bool

	keys        atomic.Pointer[map[string]*key]
	refetchMu   sync.Mutex
	lastRefetch time.Time

	keysLoaded   chan struct{}
	snapshotSeen chan struct{}
	loadedOnce   sync.Once
	snapshotOnce sync.Once
	following    atomic.Bool

	startMu sync.Mutex
	cancel  context.CancelFunc
	done    sync.WaitGroup
}

// New builds a verifier over conn, a connection to authsvc (its transport
// credentials are the verifier's, mutual TLS included). Call Start.
func New(conn grpc.ClientConnInterface, opts Options) (*Verifier, error) {
	given, err := givenOf(&opts)
	if err != nil {
		return nil, err
	}
	if err := opts.withDefaults(); err != nil {
		return nil, err
	}
	v := &Verifier{
		client:             authsvcv1.NewAuthClient(conn),
		opts:               opts,
		source:             &ruleSource{given: given, log: opts.Logger},
		log:                opts.Logger,
		keysLoaded:         make(chan struct{}),
		snapshotSeen:       make(chan struct{}),
		windowFollowsRules: opts.RevocationWindow == 0,
	}
	rules := v.source.initial()
	v.check.Store(&tokenCheck{rules: rules, cache: newTokenCache(opts.CacheSize)})
	window := opts.RevocationWindow
	if v.windowFollowsRules {
		window = retentionWindow(rules)
	}
	v.revoked = newRevocationSet(window, opts.MaxStaleness, opts.Monotonic)
	empty := map[string]*key{}
	v.keys.Store(&empty)
	return v, nil
}

// withDefaults fills in everything but the token rules (see ruleSource).
func (o *Options) withDefaults() error {
	if o.Account != nil {
		if o.AccessToken != nil {
			return errors.New("verify: set AccessToken or Account, not both")
		}
		o.AccessToken = o.Account.Token
	}
	if o.MaxStaleness == 0 {
		o.MaxStaleness = 5 * time.Second
	}
	if o.MaxStaleness < 2*time.Second {
		return errors.New("verify: MaxStaleness must be at least 2 s (authsvc's heartbeat is 1 s)")
	}
	if o.CacheSize == 0 {
		o.CacheSize = 10_000
	}
	if o.JWKSInterval == 0 {
		o.JWKSInterval = 5 * time.Minute
	}
	if o.KidRefetchInterval == 0 {
		o.KidRefetchInterval = 5 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Monotonic == nil {
		o.Monotonic = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return nil
}

// Start follows authsvc (key set and revocations) in the background until
// Close, and waits until the verifier is ready or ctx is done; it returns
// ctx's error in that case, while following goes on.
func (v *Verifier) Start(ctx context.Context) error {
	v.Follow()
	return v.WaitReady(ctx)
}

// Follow starts following authsvc in the background, without waiting.
func (v *Verifier) Follow() {
	v.startMu.Lock()
	defer v.startMu.Unlock()
	if v.cancel == nil {
		bg, cancel := context.WithCancel(context.Background())
		v.cancel = cancel
		v.done.Add(2)
		go v.followKeys(bg)
		go v.followRevocations(bg)
	}
}

// WaitReady waits for the first key set and revocation snapshot.
func (v *Verifier) WaitReady(ctx context.Context) error {
	for _, ch := range []chan struct{}{v.keysLoaded, v.snapshotSeen} {
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// Close stops following authsvc; it does not close the connection.
func (v *Verifier) Close() {
	v.startMu.Lock()
	defer v.startMu.Unlock()
	if v.cancel != nil {
		v.cancel()
		v.done.Wait()
	}
}

// Rules are the token rules in force: what authsvc published with the last
// key set, overridden by those set in Options (before the first key set:
// those set, else authsvc's defaults).
func (v *Verifier) Rules() Rules {
	r := v.check.Load().rules
	r.Algorithms = maps.Clone(r.Algorithms)
	return r
}

// tokenCheck is a set of rules and the cache of tokens verified under them:
// new rules start with an empty cache.
type tokenCheck struct {
	rules Rules
	cache *tokenCache
}

// adopt puts rules in force, when they differ from those in force.
func (v *Verifier) adopt(rules Rules) {
	if sameRules(v.check.Load().rules, rules) {
		return
	}
	v.check.Store(&tokenCheck{rules: rules, cache: newTokenCache(v.opts.CacheSize)})
	if v.windowFollowsRules {
		v.revoked.resize(retentionWindow(rules))
	}
}

// Following reports whether the revocation stream is up (snapshot loaded).
func (v *Verifier) Following() bool { return v.following.Load() }

// Current reports whether the verifier can answer now: keys loaded and
// revocations trusted (the feed spoke within MaxStaleness).
func (v *Verifier) Current() bool {
	select {
	case <-v.keysLoaded:
	default:
		return false
	}
	return v.revoked.trusted()
}

// Verify returns the claims of a valid access token of an unrevoked
// session, or the refusal (*Error): TOKEN_MISSING, TOKEN_INVALID,
// TOKEN_EXPIRED, TOKEN_REVOKED, or ErrUnavailable when it cannot decide.
func (v *Verifier) Verify(ctx context.Context, token string) (*Claims, error) {
	claims, err := v.claims(token, false)
	var unknown unknownKeyError
	if errors.As(err, &unknown) {
		v.refetchFor(ctx, unknown.kid)
		claims, err = v.claims(token, true)
	}
	if err != nil {
		return nil, err
	}
	revoked, known := v.revoked.isRevoked(claims.SessionID)
	switch {
	case revoked:
		return nil, ErrTokenRevoked
	case !known:
		return nil, ErrUnavailable
	}
	return claims, nil
}

// claims is authsvc.core.verification.TokenCheck.claims: signature and
// claims once per token (then from the cache until exp + leeway), the
// time claims on every call.
func (v *Verifier) claims(token string, keysReloaded bool) (*Claims, error) {
	if token == "" {
		return nil, ErrTokenMissing
	}
	now := v.now()
	check := v.check.Load()
	if c := check.cache.get(token, now); c != nil {
		if err := c.checkTimes(now, check.rules.Leeway); err != nil {
			return nil, err
		}
		return c, nil
	}
	select {
	case <-v.keysLoaded:
	default:
		return nil, ErrUnavailable
	}
	keys := *v.keys.Load()
	claims, err := verifyToken(token, func(kid string) *key { return keys[kid] }, &check.rules, now)
	if err != nil {
		if _, unknown := err.(unknownKeyError); unknown && keysReloaded {
			return nil, ErrTokenInvalid
		}
		return nil, err
	}
	check.cache.put(token, claims, claims.ExpiresAt+check.rules.Leeway)
	return claims, nil
}

func (v *Verifier) now() float64 {
	return float64(v.opts.Now().UnixNano()) / 1e9
}
