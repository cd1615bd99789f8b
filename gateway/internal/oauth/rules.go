package oauth

import (
	"context"
	"sync"
	"time"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// rulesMaxAge is how long introspection trusts the issuer and audience it
// read from authsvc's published rules before it reads them again.
const rulesMaxAge = time.Minute

// names is where introspection takes iss and aud from: the given issuer
// and audience; those not given are what authsvc publishes with its key set
// (read with GetJwks at most once per rulesMaxAge, the last answer kept
// while authsvc cannot give one), or the Settings' defaults when authsvc
// publishes none.
func (s *Settings) names(client authsvcv1.AuthClient) func(context.Context) (string, string, error) {
	issuer, audience := s.Issuer, s.Audience
	if s.givenRule("issuer") && s.givenRule("audience") {
		return func(context.Context) (string, string, error) { return issuer, audience, nil }
	}
	p := &publishedRules{client: client, maxAge: rulesMaxAge, now: time.Now}
	givenIssuer, givenAudience := s.givenRule("issuer"), s.givenRule("audience")
	return func(ctx context.Context) (string, string, error) {
		rules, err := p.get(ctx)
		if err != nil {
			return "", "", err
		}
		iss, aud := issuer, audience
		if !givenIssuer && rules.GetIssuer() != "" {
			iss = rules.GetIssuer()
		}
		if !givenAudience && rules.GetAudience() != "" {
			aud = rules.GetAudience()
		}
		return iss, aud, nil
	}
}

// publishedRules are the token rules authsvc publishes, kept for maxAge.
type publishedRules struct {
	client authsvcv1.AuthClient
	maxAge time.Duration
	now    func() time.Time

	mu      sync.Mutex // held while fetching, so one call fetches for all
	rules   *authsvcv1.TokenRules
	known   bool // rules were read once (rules may be nil: none published)
	fetched time.Time
}

// get returns the rules (nil when authsvc publishes none), fetched again
// when older than maxAge; when that fails, the last ones read, if any.
func (p *publishedRules) get(ctx context.Context) (*authsvcv1.TokenRules, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if now := p.now(); p.known && now.Sub(p.fetched) < p.maxAge && !now.Before(p.fetched) {
		return p.rules, nil
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	resp, err := p.client.GetJwks(ctx, &authsvcv1.GetJwksRequest{})
	if err != nil {
		if p.known {
			return p.rules, nil
		}
		return nil, err
	}
	p.rules, p.known, p.fetched = resp.GetRules(), true, p.now()
	return p.rules, nil
}
