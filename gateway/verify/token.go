package verify

import (
	"encoding/json"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The limits authsvc.core.tokens applies.
const (
	MaxTokenLength = 8192
	maxTime        = 253_402_300_799 // 9999-12-31T23:59:59Z, the last google.protobuf.Timestamp
	maxIDLength    = 128
)

// Rules are what a token must satisfy besides its signature.
type Rules struct {
	Issuer      string
	Audience    string
	Algorithms  map[string]bool
	Leeway      float64 // seconds
	MaxLifetime float64 // seconds; longest exp - iat accepted
}

// Claims is what a verified access token says.
type Claims struct {
	UserID    string
	SessionID string
	TokenID   string
	Scopes    []string
	IssuedAt  float64 // seconds since the epoch
	NotBefore float64
	ExpiresAt float64
	// How the user authenticated (RFC 8176), authsvc's assurance level (aal1,
	// aal2) and when (0: the token does not say; tokens from before second
	// factors carry none of the three).
	AMR      []string
	ACR      string
	AuthTime float64
}

// HasAnyAMR reports whether the token's amr holds at least one of amr.
func (c *Claims) HasAnyAMR(amr ...string) bool {
	for _, want := range amr {
		for _, have := range c.AMR {
			if have == want {
				return true
			}
		}
	}
	return false
}

// HasScopes reports whether the token carries every one of scopes.
func (c *Claims) HasScopes(scopes ...string) bool {
	for _, want := range scopes {
		found := false
		for _, have := range c.Scopes {
			if have == want {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// checkTimes refuses a token outside its lifetime at now (± leeway).
func (c *Claims) checkTimes(now, leeway float64) error {
	if now >= c.ExpiresAt+leeway {
		return ErrTokenExpired
	}
	if now+leeway < c.NotBefore || now+leeway < c.IssuedAt {
		return ErrTokenNotYetValid
	}
	return nil
}

// unknownKeyError: the token names a kid the key set does not hold (yet).
type unknownKeyError struct{ kid string }

func (unknownKeyError) Error() string { return "unknown kid" }

// verifyToken is authsvc.core.tokens.verify in Go: the same checks in the
// same order, so every token gets the same answer (see the package doc).
func verifyToken(token string, lookup func(kid string) *key, rules *Rules, now float64) (*Claims, error) {
	if token == "" || len(token) > MaxTokenLength || strings.Count(token, ".") != 2 {
		return nil, ErrTokenInvalid
	}
	segments := strings.Split(token, ".")
	rawHeader, errH := b64(segments[0])
	rawPayload, errP := b64(segments[1])
	signature, errS := b64(segments[2])
	if errH != nil || errP != nil || errS != nil {
		return nil, ErrTokenInvalid
	}
	var header map[string]any
	if json.Unmarshal(rawHeader, &header) != nil || header == nil {
		return nil, ErrTokenInvalid
	}
	typ, okTyp := header["typ"].(string)
	if !okTyp || !acceptedTyp(typ) {
		return nil, ErrTokenInvalid
	}
	kid, okKid := header["kid"].(string)
	alg, okAlg := header["alg"].(string)
	if _, crit := header["crit"]; crit || !okKid || !okAlg {
		return nil, ErrTokenInvalid
	}
	if n := utf8.RuneCountInString(kid); n == 0 || n > maxIDLength {
		return nil, ErrTokenInvalid
	}
	k := lookup(kid)
	if k == nil {
		return nil, unknownKeyError{kid}
	}
	if alg != k.alg || !rules.Algorithms[alg] {
		return nil, ErrTokenInvalid
	}
	if !k.verifySignature([]byte(segments[0]+"."+segments[1]), signature) {
		return nil, ErrTokenInvalid
	}
	var payload map[string]any
	if json.Unmarshal(rawPayload, &payload) != nil || payload == nil {
		return nil, ErrTokenInvalid
	}
	claims, err := claimsOf(payload, rules)
	if err != nil {
		return nil, err
	}
	if err := claims.checkTimes(now, rules.Leeway); err != nil {
		return nil, err
	}
	return claims, nil
}

// acceptedTyp: "at+jwt" or "application/at+jwt", ASCII case-insensitively.
func acceptedTyp(typ string) bool {
	lower := strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, typ)
	return lower == "at+jwt" || lower == "application/at+jwt"
}

func claimsOf(p map[string]any, rules *Rules) (*Claims, error) {
	for _, name := range []string{"exp", "iat", "nbf", "iss", "aud", "sub", "jti", "sid"} {
		if p[name] == nil { // absent or null: a required claim is missing
			return nil, ErrTokenInvalid
		}
	}
	iss, okIss := p["iss"].(string)
	aud, okAud := p["aud"].(string)
	if !okIss || iss != rules.Issuer || !okAud || aud != rules.Audience {
		return nil, ErrTokenInvalid
	}
	var ids [3]string
	for i, name := range []string{"sub", "sid", "jti"} {
		v, ok := p[name].(string)
		if n := utf8.RuneCountInString(v); !ok || n == 0 || n > maxIDLength {
			return nil, ErrTokenInvalid
		}
		ids[i] = v
	}
	var times [3]float64
	for i, name := range []string{"iat", "nbf", "exp"} {
		v, ok := p[name].(float64)
		if !ok || math.IsNaN(v) || v < 0 || v > maxTime {
			return nil, ErrTokenInvalid
		}
		times[i] = v
	}
	scope := ""
	if raw, present := p["scope"]; present {
		s, ok := raw.(string)
		if !ok {
			return nil, ErrTokenInvalid
		}
		scope = s
	}
	if times[2]-times[0] > rules.MaxLifetime {
		return nil, ErrTokenInvalid
	}
	amr, acr, authTime, ok := authentication(p)
	if !ok || !profileWellFormed(p) {
		return nil, ErrTokenInvalid
	}
	return &Claims{UserID: ids[0], SessionID: ids[1], TokenID: ids[2],
		Scopes:   strings.FieldsFunc(scope, isPythonSpace),
		IssuedAt: times[0], NotBefore: times[1], ExpiresAt: times[2],
		AMR: amr, ACR: acr, AuthTime: authTime}, nil
}

// authentication reads the optional amr, acr and auth_time claims with
// authsvc's rules (core/tokens.py): amr a list of at most 16 strings of 1 to
// 32 characters, acr a string of 1 to 128, auth_time a time; ok false when
// one is present and malformed.
func authentication(p map[string]any) (amr []string, acr string, authTime float64, ok bool) {
	if raw, present := p["amr"]; present {
		list, isList := raw.([]any)
		if !isList || len(list) > 16 {
			return nil, "", 0, false
		}
		for _, item := range list {
			s, isString := item.(string)
			if !isString || s == "" || utf8.RuneCountInString(s) > 32 {
				return nil, "", 0, false
			}
			amr = append(amr, s)
		}
	}
	if raw, present := p["acr"]; present && raw != nil {
		s, isString := raw.(string)
		if !isString || s == "" || utf8.RuneCountInString(s) > 128 {
			return nil, "", 0, false
		}
		acr = s
	}
	if raw, present := p["auth_time"]; present && raw != nil {
		t, isNumber := raw.(float64)
		if !isNumber || math.IsNaN(t) || t < 0 || t > maxTime {
			return nil, "", 0, false
		}
		authTime = t
	}
	return amr, acr, authTime, true
}

// profileWellFormed checks the optional profile claims with authsvc's rules
// (core/tokens.py): email, phone_number and preferred_username strings of 1 to
// 320 characters, email_verified and phone_number_verified booleans (null is
// malformed too). The Go verifier does not answer them; it refuses what
// Validate refuses.
func profileWellFormed(p map[string]any) bool {
	for _, name := range []string{"email", "phone_number", "preferred_username"} {
		if raw, present := p[name]; present {
			s, isString := raw.(string)
			if !isString || s == "" || utf8.RuneCountInString(s) > 320 {
				return false
			}
		}
	}
	for _, name := range []string{"email_verified", "phone_number_verified"} {
		if raw, present := p[name]; present {
			if _, isBool := raw.(bool); !isBool {
				return false
			}
		}
	}
	return true
}

// isPythonSpace is the whitespace Python's str.split() splits on.
func isPythonSpace(r rune) bool {
	return unicode.IsSpace(r) || (0x1c <= r && r <= 0x1f)
}
