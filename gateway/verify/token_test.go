package verify

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"testing"
)

const testNow = 1_800_000_000.0

var testRules = &Rules{Issuer: "authsvc", Audience: "authsvc", Algorithms: map[string]bool{"ES256": true},
	Leeway: 30, MaxLifetime: 900}

type signer struct {
	priv *ecdsa.PrivateKey
	key  *key
}

func newSigner(t *testing.T) *signer {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &signer{priv, &key{kid: "k1", alg: "ES256", pub: &priv.PublicKey}}
}

func enc(v any) string {
	raw, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(raw)
}

func (s *signer) sign(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	input := enc(header) + "." + enc(claims)
	digest := sha256.Sum256([]byte(input))
	r, sv, err := ecdsa.Sign(rand.Reader, s.priv, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	sv.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func goodHeader() map[string]any { return map[string]any{"alg": "ES256", "kid": "k1", "typ": "at+jwt"} }

func goodClaims() map[string]any {
	return map[string]any{"iss": "authsvc", "aud": "authsvc", "sub": "u1", "sid": "s1", "jti": "j1",
		"iat": testNow, "nbf": testNow, "exp": testNow + 900, "scope": "a b"}
}

func (s *signer) lookup(kid string) *key {
	if kid == s.key.kid {
		return s.key
	}
	return nil
}

func TestAGoodTokenGivesItsClaims(t *testing.T) {
	s := newSigner(t)

	claims, err := verifyToken(s.sign(t, goodHeader(), goodClaims()), s.lookup, testRules, testNow)

	if err != nil {
		t.Fatal(err)
	}
	if claims.UserID != "u1" || claims.SessionID != "s1" || claims.TokenID != "j1" ||
		len(claims.Scopes) != 2 || claims.ExpiresAt != testNow+900 {
		t.Errorf("claims %+v", claims)
	}
}

func TestEachBrokenRuleIsRefusedWithItsReason(t *testing.T) {
	s := newSigner(t)
	cases := map[string]struct {
		header map[string]any
		claims map[string]any
		want   *Error
	}{
		"typ JWT":              {map[string]any{"typ": "JWT"}, nil, ErrTokenInvalid},
		"crit":                 {map[string]any{"crit": []string{"exp"}}, nil, ErrTokenInvalid},
		"alg none":             {map[string]any{"alg": "none"}, nil, ErrTokenInvalid},
		"kid too long":         {map[string]any{"kid": string(make([]byte, 129))}, nil, ErrTokenInvalid},
		"aud list":             {nil, map[string]any{"aud": []string{"authsvc"}}, ErrTokenInvalid},
		"iss other":            {nil, map[string]any{"iss": "other"}, ErrTokenInvalid},
		"sub number":           {nil, map[string]any{"sub": 42}, ErrTokenInvalid},
		"exp bool":             {nil, map[string]any{"exp": true}, ErrTokenInvalid},
		"scope null":           {nil, map[string]any{"scope": nil}, ErrTokenInvalid},
		"missing sid":          {nil, map[string]any{"sid": nil}, ErrTokenInvalid},
		"lifetime over":        {nil, map[string]any{"exp": testNow + 901}, ErrTokenInvalid},
		"expired at leeway":    {nil, map[string]any{"exp": testNow - 30}, ErrTokenExpired},
		"nbf beyond leeway":    {nil, map[string]any{"nbf": testNow + 31}, ErrTokenNotYetValid},
		"exp within leeway ok": {nil, map[string]any{"exp": testNow - 29}, nil},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			header, claims := goodHeader(), goodClaims()
			for k, v := range c.header {
				header[k] = v
			}
			for k, v := range c.claims {
				if v == nil && k != "scope" {
					delete(claims, k)
				} else {
					claims[k] = v
				}
			}

			_, err := verifyToken(s.sign(t, header, claims), s.lookup, testRules, testNow)

			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Errorf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestAnUnknownKidAsksForTheKeySet(t *testing.T) {
	s := newSigner(t)
	header := goodHeader()
	header["kid"] = "k2"

	_, err := verifyToken(s.sign(t, header, goodClaims()), s.lookup, testRules, testNow)

	var unknown unknownKeyError
	if !errors.As(err, &unknown) || unknown.kid != "k2" {
		t.Errorf("got %v", err)
	}
}

func TestATamperedPayloadOrPaddedSegmentIsInvalid(t *testing.T) {
	s := newSigner(t)
	token := s.sign(t, goodHeader(), goodClaims())
	other := s.sign(t, goodHeader(), map[string]any{"sub": "u2"})
	parts, otherParts := splitToken(token), splitToken(other)

	for _, forged := range []string{
		parts[0] + "." + otherParts[1] + "." + parts[2],
		parts[0] + "=." + parts[1] + "." + parts[2],
		" " + token,
	} {
		if _, err := verifyToken(forged, s.lookup, testRules, testNow); !errors.Is(err, ErrTokenInvalid) {
			t.Errorf("%q: got %v", forged, err)
		}
	}
}

func splitToken(token string) [3]string {
	var out [3]string
	i := 0
	for j, start := 0, 0; j <= len(token); j++ {
		if j == len(token) || token[j] == '.' {
			out[i] = token[start:j]
			i++
			start = j + 1
		}
	}
	return out
}

func TestChallengesAreAuthsvcs(t *testing.T) {
	cases := map[*Error]string{
		ErrTokenMissing:             `Bearer realm="authsvc"`,
		ErrTokenInvalid:             `Bearer realm="authsvc", error="invalid_token", error_description="The access token is invalid"`,
		ErrMalformedAuthorization:   `Bearer realm="authsvc", error="invalid_request", error_description="The authorization metadata must hold exactly one Bearer token"`,
		InsufficientScope("a", "b"): `Bearer realm="authsvc", error="insufficient_scope", error_description="The access token lacks a required scope", scope="a b"`,
		ErrUnavailable:              "",
	}
	for e, want := range cases {
		if got := e.Challenge(); got != want {
			t.Errorf("%s: %q, want %q", e.Reason, got, want)
		}
	}
}

func TestBearerTokenTakesExactlyOneValue(t *testing.T) {
	if tok, err := BearerToken([]string{"bearer  abc.def-_~+/=="}); err != nil || tok != "abc.def-_~+/==" {
		t.Errorf("got %q %v", tok, err)
	}
	if tok, err := BearerToken(nil); err != nil || tok != "" {
		t.Errorf("none: %q %v", tok, err)
	}
	for _, values := range [][]string{{"Bearer a", "Bearer a"}, {"Basic abc"}, {"Bearer a b"}, {"Bearer"}} {
		if _, err := BearerToken(values); err != ErrMalformedAuthorization {
			t.Errorf("%q: %v", values, err)
		}
	}
}
