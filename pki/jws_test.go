package pki

import (
	"crypto/ed25519"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

func TestEdDSAFastPathIsStandardJWS(t *testing.T) {
	s, k := newEdSigner(t)
	payload := []byte("head digest\nbody digest\nfingerprint")
	sig, err := s.SignDetached(payload)
	if err != nil {
		t.Fatal(err)
	}
	// A general JWS library accepts it.
	obj, err := jose.ParseDetached(sig, payload, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("go-jose cannot parse %q: %v", sig, err)
	}
	if err := obj.DetachedVerify(payload, k.Public()); err != nil {
		t.Fatalf("go-jose does not verify it: %v", err)
	}
	if got := obj.Signatures[0].Protected.ExtraHeaders["typ"]; got != "sampan+jws" {
		t.Errorf("typ = %v", got)
	}
	// And we accept it, and refuse every alteration.
	if err := VerifyDetached(sig, payload, k.Public()); err != nil {
		t.Fatal(err)
	}
	other, _ := GenerateKey(Ed25519)
	b := []byte(sig)
	b[len(b)-3] ^= 1
	for name, tc := range map[string]struct {
		sig     string
		payload []byte
		pub     any
	}{
		"payload":   {sig, []byte("head digest\nbody digest\nfingerprinT"), k.Public()},
		"signature": {string(b), payload, k.Public()},
		"key":       {sig, payload, other.Public()},
		"truncated": {sig[:len(sig)-4], payload, k.Public()},
		"alg none":  {strings.Replace(sig, sig[:strings.IndexByte(sig, '.')], "eyJhbGciOiJub25lIn0", 1), payload, k.Public()},
		// The same signature spelt otherwise (64 bytes leave spare bits in
		// the last base64url character).
		"spare bits": {spareBits(sig), payload, k.Public()},
	} {
		if err := VerifyDetached(tc.sig, tc.payload, tc.pub.(ed25519.PublicKey)); err == nil {
			t.Errorf("%s: altered signature accepted", name)
		}
	}
	// A signature made by the general library verifies too.
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: k}, (&jose.SignerOptions{}).WithType("sampan+jws"))
	if err != nil {
		t.Fatal(err)
	}
	o2, _ := js.Sign(payload)
	s2, _ := o2.DetachedCompactSerialize()
	if err := VerifyDetached(s2, payload, k.Public()); err != nil {
		t.Errorf("go-jose signature refused: %v", err)
	}
}
