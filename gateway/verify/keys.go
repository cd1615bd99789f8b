package verify

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"

	authsvcv1 "github.com/authsvc/authsvc/gateway/verify/gen/authsvc/v1"
)

// key is one verification key of authsvc's key ring, as its JWKS publishes it.
type key struct {
	kid string
	alg string
	pub crypto.PublicKey
}

// keyOf turns a published JWK into a verification key; nil when it is
// unusable here (another use or algorithm, no kid, not a valid key), as
// authsvc.core.keys.verification_key decides.
func keyOf(jwk *authsvcv1.Jwk, algorithms map[string]bool) *key {
	use := jwk.GetUse()
	if use == "" {
		use = "sig"
	}
	if use != "sig" || !algorithms[jwk.GetAlg()] || jwk.GetKid() == "" {
		return nil
	}
	k := &key{kid: jwk.GetKid(), alg: jwk.GetAlg()}
	switch {
	case jwk.GetAlg() == "ES256" && jwk.GetKty() == "EC" && jwk.GetCrv() == "P-256":
		x, errX := b64(jwk.GetX())
		y, errY := b64(jwk.GetY())
		if errX != nil || errY != nil || len(x) != 32 || len(y) != 32 {
			return nil
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil
		}
		k.pub = pub
	case jwk.GetAlg() == "EdDSA" && jwk.GetKty() == "OKP" && jwk.GetCrv() == "Ed25519":
		x, err := b64(jwk.GetX())
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil
		}
		k.pub = ed25519.PublicKey(x)
	case jwk.GetAlg() == "RS256" && jwk.GetKty() == "RSA":
		n, errN := b64(jwk.GetN())
		e, errE := b64(jwk.GetE())
		if errN != nil || errE != nil || len(n) < 256 || len(e) == 0 || len(e) > 4 {
			return nil
		}
		exp := int(new(big.Int).SetBytes(e).Int64())
		if exp < 3 || exp%2 == 0 {
			return nil
		}
		k.pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}
	default:
		return nil
	}
	return k
}

// verifySignature checks sig over input with k's own algorithm.
func (k *key) verifySignature(input, sig []byte) bool {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		if len(sig) != 64 {
			return false
		}
		digest := sha256.Sum256(input)
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(pub, digest[:], r, s)
	case ed25519.PublicKey:
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(pub, input, sig)
	case *rsa.PublicKey:
		digest := sha256.Sum256(input)
		return rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	}
	return false
}

// b64 decodes base64url without padding, strictly: one encoding per value.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.Strict().DecodeString(s)
}
