package verify

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// The token rules a Verifier applies come from authsvc, as in
// authsvc.guard.rules: GetJwks publishes the rules Validate applies beside
// the keys (GetJwksResponse.rules), and the verifier adopts them with each
// key set it fetches. Trusting them adds no trust: whoever could change the
// rules in that answer could swap the keys in it too. A rule set in Options
// wins over the published one, and a difference between the two is logged
// as a warning, once per rule. An authsvc that publishes no rules (a
// release before they were published) leaves the given rules, or authsvc's
// defaults (defaultRules), in force.

// knownAlgorithms are the algorithms authsvc signs with.
var knownAlgorithms = []string{"ES256", "EdDSA", "RS256"}

// defaultRules are authsvc's default settings: the rules until, or unless,
// authsvc publishes its own.
func defaultRules() Rules {
	return Rules{Issuer: "authsvc", Audience: "authsvc", Algorithms: algorithmSet(knownAlgorithms),
		Leeway: 30, MaxLifetime: 900}
}

// givenRules are the rules Options set; a zero value (nil pointer, nil
// map, "") is authsvc's to say.
type givenRules struct {
	issuer, audience    string
	algorithms          map[string]bool
	leeway, maxLifetime *float64
}

func givenOf(o *Options) (givenRules, error) {
	g := givenRules{issuer: o.Issuer, audience: o.Audience}
	if len(o.Algorithms) > 0 {
		for _, a := range o.Algorithms {
			if !slices.Contains(knownAlgorithms, a) {
				return g, fmt.Errorf("verify: algorithm %q is not one authsvc signs with", a)
			}
		}
		g.algorithms = algorithmSet(o.Algorithms)
	}
	if o.Leeway != 0 {
		leeway := max(o.Leeway, 0).Seconds() // negative: none
		g.leeway = &leeway
	}
	if o.MaxTokenLifetime != 0 {
		lifetime := o.MaxTokenLifetime.Seconds()
		g.maxLifetime = &lifetime
	}
	return g, nil
}

// ruleSource merges the given rules with what authsvc publishes.
type ruleSource struct {
	given givenRules
	log   *slog.Logger

	mu     sync.Mutex
	warned map[string]bool
}

// initial are the rules before authsvc has answered.
func (s *ruleSource) initial() Rules { return s.merge(defaultRules()) }

// resolve gives the rules to verify with after a GetJwks answer that
// published p (nil: none).
func (s *ruleSource) resolve(p *authsvcv1.TokenRules) Rules {
	if p == nil {
		return s.initial()
	}
	offered := defaultRules()
	if p.GetIssuer() != "" {
		offered.Issuer = p.GetIssuer()
	}
	if p.GetAudience() != "" {
		offered.Audience = p.GetAudience()
	}
	known := algorithmSet(slices.DeleteFunc(slices.Clone(p.GetAlgorithms()),
		func(a string) bool { return !slices.Contains(knownAlgorithms, a) }))
	if len(known) > 0 {
		offered.Algorithms = known
	}
	if p.GetLeewaySeconds() >= 0 {
		offered.Leeway = float64(p.GetLeewaySeconds())
	}
	if p.GetAccessTokenTtlSeconds() > 0 {
		offered.MaxLifetime = float64(p.GetAccessTokenTtlSeconds())
	}
	s.warnAboutMismatches(offered)
	return s.merge(offered)
}

func (s *ruleSource) merge(base Rules) Rules {
	g := s.given
	if g.issuer != "" {
		base.Issuer = g.issuer
	}
	if g.audience != "" {
		base.Audience = g.audience
	}
	if g.algorithms != nil {
		base.Algorithms = g.algorithms
	}
	if g.leeway != nil {
		base.Leeway = *g.leeway
	}
	if g.maxLifetime != nil {
		base.MaxLifetime = *g.maxLifetime
	}
	return base
}

func (s *ruleSource) warnAboutMismatches(published Rules) {
	g := s.given
	type rule struct {
		name          string
		given, theirs string
		set           bool
	}
	rules := []rule{
		{"issuer", g.issuer, published.Issuer, g.issuer != ""},
		{"audience", g.audience, published.Audience, g.audience != ""},
		{"algorithms", algorithmList(g.algorithms), algorithmList(published.Algorithms), g.algorithms != nil},
		{"leeway", seconds(g.leeway), seconds(&published.Leeway), g.leeway != nil},
		{"access-token lifetime", seconds(g.maxLifetime), seconds(&published.MaxLifetime), g.maxLifetime != nil},
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range rules {
		if !r.set || r.given == r.theirs || s.warned[r.name] {
			continue
		}
		if s.warned == nil {
			s.warned = map[string]bool{}
		}
		s.warned[r.name] = true
		s.log.Warn("a token rule given to the verifier differs from what authsvc publishes; verifying with the given one",
			"rule", r.name, "given", r.given, "published", r.theirs)
	}
}

// sameRules reports whether a and b accept the same tokens.
func sameRules(a, b Rules) bool {
	return a.Issuer == b.Issuer && a.Audience == b.Audience && maps.Equal(a.Algorithms, b.Algorithms) &&
		a.Leeway == b.Leeway && a.MaxLifetime == b.MaxLifetime
}

// retentionWindow is authsvc.core.revocations.retention_window: the
// lifetime, the leeway and twice the leeway of skew between replicas.
func retentionWindow(r Rules) time.Duration {
	return time.Duration((r.MaxLifetime + 3*r.Leeway) * float64(time.Second))
}

func algorithmSet(algorithms []string) map[string]bool {
	set := make(map[string]bool, len(algorithms))
	for _, a := range algorithms {
		set[a] = true
	}
	return set
}

func algorithmList(set map[string]bool) string {
	return strings.Join(slices.Sorted(maps.Keys(set)), ",")
}

func seconds(s *float64) string {
	if s == nil {
		return ""
	}
	return (time.Duration(*s * float64(time.Second))).String()
}
