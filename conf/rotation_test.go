package conf

import (
	"crypto"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/pki"
)

// rotationKit is an instance's CA and a maker of anchors and signed
// configurations, for tests of key rotation.
type rotationKit struct {
	t  *testing.T
	ca *pki.CA
}

func newRotationKit(t *testing.T) *rotationKit {
	ca, err := pki.NewCA("VN CA")
	if err != nil {
		t.Fatal(err)
	}
	return &rotationKit{t: t, ca: ca}
}

func (k *rotationKit) key(kid string) (AnchorKey, crypto.Signer) {
	sk, err := pki.GenerateKey(pki.Ed25519)
	if err != nil {
		k.t.Fatal(err)
	}
	ak, err := NewAnchorKey(kid, sk.Public())
	if err != nil {
		k.t.Fatal(err)
	}
	return ak, sk
}

func (k *rotationKit) anchor(keys ...AnchorKey) *Anchor {
	a := &Anchor{FormatVersion: FormatVersion, Instance: "VN", URL: "https://a.example/conf", Keys: keys, TLSCA: string(pki.EncodeCert(k.ca.Cert.Raw))}
	if err := a.Validate(); err != nil {
		k.t.Fatal(err)
	}
	return a
}

func (k *rotationKit) doc(serial uint64, kid string, sk crypto.Signer, next ...AnchorKey) []byte {
	now := time.Now().UTC().Truncate(time.Millisecond)
	c := &Config{FormatVersion: FormatVersion, Instance: "VN", Serial: serial, GeneratedAt: now, ExpiresAt: now.Add(time.Minute),
		CACerts: []string{string(pki.EncodeCert(k.ca.Cert.Raw))}, NextKeys: next}
	s, err := pki.NewSigner(sk, kid)
	if err != nil {
		k.t.Fatal(err)
	}
	b, err := Sign(c, s)
	if err != nil {
		k.t.Fatal(err)
	}
	return b
}

// TestLearn: after a verified configuration a gateway trusts the key
// that signed it and the keys it announces, nothing else; a key that
// reuses a trusted id for another public key, or a signer that is not
// trusted, refuses the document.
func TestLearn(t *testing.T) {
	kit := newRotationKit(t)
	k1, _ := kit.key("k1")
	k2, _ := kit.key("k2")
	k3, _ := kit.key("k3")
	impostor, _ := kit.key("k2") // k2's id, another key
	for _, tc := range []struct {
		name    string
		trusted *Anchor
		signer  string
		next    []AnchorKey
		want    []string
	}{
		{"nothing announced", kit.anchor(k1), "k1", nil, []string{"k1"}},
		{"a next key announced", kit.anchor(k1), "k1", []AnchorKey{k2}, []string{"k1", "k2"}},
		{"signed by the next key, the old one still accepted", kit.anchor(k1, k2), "k2", []AnchorKey{k1}, []string{"k2", "k1"}},
		{"the old key retired", kit.anchor(k2, k1), "k2", nil, []string{"k2"}},
		{"a key no longer listed is forgotten", kit.anchor(k1, k2, k3), "k1", []AnchorKey{k3}, []string{"k1", "k3"}},
		{"a trusted id for another key", kit.anchor(k1, k2), "k1", []AnchorKey{impostor}, nil},
		{"a signer not trusted", kit.anchor(k1), "k2", []AnchorKey{k2}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.trusted.Learn(&Config{NextKeys: tc.next}, tc.signer)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("learned %v, want a refusal", got.KeyIDs())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got.KeyIDs(), tc.want) {
				t.Errorf("trusts %v, want %v", got.KeyIDs(), tc.want)
			}
		})
	}
}

// TestVerifyWithLearnedKeys: a configuration signed by a key that a
// verified document announced verifies once that key is learned, and not
// under the anchor alone; a document announcing a key verifies only by
// its own signature.
func TestVerifyWithLearnedKeys(t *testing.T) {
	kit := newRotationKit(t)
	k1, s1 := kit.key("VN-1")
	k2, s2 := kit.key("VN-2")
	a := kit.anchor(k1)
	byNext := kit.doc(2, "VN-2", s2)
	if _, err := Verify(byNext, a); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("signed by an unannounced key: %v", err)
	}
	if _, err := Verify(kit.doc(1, "VN-2", s2, k2), a); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("signed by the key it announces itself: %v", err)
	}
	c, kid, err := VerifyKey(kit.doc(1, "VN-1", s1, k2), a)
	if err != nil {
		t.Fatal(err)
	}
	learned, err := a.Learn(c, kid)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(byNext, learned); err != nil {
		t.Errorf("signed by the announced key, after learning it: %v", err)
	}
	if learned.Fingerprint() == a.Fingerprint() {
		t.Error("the learned keys have the anchor's fingerprint")
	}
	moved := *a
	moved.URL = "https://b.example/conf"
	if moved.Fingerprint() != a.Fingerprint() {
		t.Error("the fingerprint follows the URL, not only the trust")
	}
}

// TestNextKeysValidated: announced keys are checked like an anchor's.
func TestNextKeysValidated(t *testing.T) {
	kit := newRotationKit(t)
	k1, _ := kit.key("k1")
	now := time.Now()
	for _, tc := range []struct {
		name string
		next []AnchorKey
		want string
	}{
		{"no kid", []AnchorKey{{PublicKey: k1.PublicKey}}, "next_keys[0].kid: empty"},
		{"not a key", []AnchorKey{{KeyID: "x", PublicKey: "nope"}}, "next_keys[0].public_key"},
		{"twice", []AnchorKey{k1, k1}, "next_keys[1].kid duplicates next_keys[0].kid"},
		{"too many", []AnchorKey{k1, k1, k1, k1, k1}, "next_keys: more than 4 keys"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Config{FormatVersion: FormatVersion, Instance: "VN", Serial: 1, GeneratedAt: now, ExpiresAt: now.Add(time.Minute),
				CACerts: []string{string(pki.EncodeCert(kit.ca.Cert.Raw))}, NextKeys: tc.next}
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
		})
	}
}
