package conf

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
)

// Anchor is what a gateway is installed with, out of band, to trust an
// instance's shared configuration: the instance code, where the
// configuration is published, the configuration-signing public keys and the
// CA that the publishing server's TLS certificate chains to.
type Anchor struct {
	FormatVersion int         `json:"format_version"`
	Instance      string      `json:"instance"`
	URL           string      `json:"url"`
	Keys          []AnchorKey `json:"keys"`
	TLSCA         string      `json:"tls_ca"`

	pubs  map[string]crypto.PublicKey
	roots *x509.CertPool
}

// AnchorKey is one configuration-signing public key.
type AnchorKey struct {
	KeyID     string `json:"kid"`
	PublicKey string `json:"public_key"` // PEM, PKIX
}

// parse checks the key entry and returns its public key; errors name the
// field.
func (k AnchorKey) parse() (crypto.PublicKey, error) {
	if k.KeyID == "" {
		return nil, errors.New("kid: empty")
	}
	blk, _ := pem.Decode([]byte(k.PublicKey))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, errors.New("public_key: no PUBLIC KEY PEM block")
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("public_key: %w", err)
	}
	return pub, nil
}

// Validate checks the anchor and prepares its keys. Errors name the field.
func (a *Anchor) Validate() error {
	if a.FormatVersion != FormatVersion {
		return fmt.Errorf("format_version: got %d, want %d", a.FormatVersion, FormatVersion)
	}
	if err := ident.ValidateInstance(a.Instance); err != nil {
		return fmt.Errorf("instance: %w", err)
	}
	u, err := url.Parse(a.URL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("url: %q must be an https URL", a.URL)
	}
	if len(a.Keys) == 0 {
		return errors.New("keys: at least one configuration-signing key is required")
	}
	a.pubs = map[string]crypto.PublicKey{}
	for i, k := range a.Keys {
		pub, err := k.parse()
		if err != nil {
			return fmt.Errorf("keys[%d].%w", i, err)
		}
		a.pubs[k.KeyID] = pub
	}
	ca, err := pki.ParseCertPEM([]byte(a.TLSCA))
	if err != nil {
		return fmt.Errorf("tls_ca: %w", err)
	}
	a.roots = x509.NewCertPool()
	a.roots.AddCert(ca)
	return nil
}

// TLSRoots returns the pool to verify the publishing server with.
func (a *Anchor) TLSRoots() *x509.CertPool { return a.roots }

// ParseAnchor decodes an anchor strictly and validates it.
func ParseAnchor(b []byte) (*Anchor, error) {
	var a Anchor
	if err := cfg.Decode(b, &a); err != nil {
		return nil, fmt.Errorf("decode anchor: %w", err)
	}
	if err := a.Validate(); err != nil {
		return nil, fmt.Errorf("invalid anchor: %w", err)
	}
	return &a, nil
}

// ReadAnchor loads an anchor file.
func ReadAnchor(path string) (*Anchor, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read anchor: %w", err)
	}
	return ParseAnchor(b)
}

// NewAnchorKey returns the anchor entry for a configuration-signing key.
func NewAnchorKey(kid string, pub crypto.PublicKey) (AnchorKey, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return AnchorKey{}, fmt.Errorf("marshal public key: %w", err)
	}
	return AnchorKey{KeyID: kid, PublicKey: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))}, nil
}

// Sign serialises and signs a configuration; the result is a compact JWS
// whose payload is the JSON document.
func Sign(c *Config, s *pki.Signer) ([]byte, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("sign configuration: %w", err)
	}
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("sign configuration: %w", err)
	}
	jws, err := s.Sign(payload)
	if err != nil {
		return nil, fmt.Errorf("sign configuration: %w", err)
	}
	return []byte(jws), nil
}

// ErrUntrusted is wrapped when a document's signature does not verify
// against the anchor; the document must be discarded.
var ErrUntrusted = errors.New("configuration not signed by a trusted key")

// Verify checks a signed document against the anchor and returns the
// validated configuration. It does not judge serial or expiry: see
// Accept.
func Verify(doc []byte, a *Anchor) (*Config, error) {
	c, _, err := VerifyKey(doc, a)
	return c, err
}

// VerifyKey is Verify that also returns the id of the key that signed the
// document, for Anchor.Learn.
func VerifyKey(doc []byte, a *Anchor) (*Config, string, error) {
	if len(doc) > MaxDocumentSize {
		return nil, "", fmt.Errorf("verify configuration: document of %d bytes exceeds %d", len(doc), MaxDocumentSize)
	}
	kid, verify, err := pki.ParseCompact(string(bytes.TrimSpace(doc)))
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	pub, ok := a.pubs[kid]
	if !ok {
		return nil, "", fmt.Errorf("%w: key id %q is not trusted for %s", ErrUntrusted, kid, a.Instance)
	}
	payload, err := verify(pub)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	c, err := Decode(payload)
	if err != nil {
		return nil, "", err
	}
	if c.Instance != a.Instance {
		return nil, "", fmt.Errorf("verify configuration: document is for instance %s, anchor for %s", c.Instance, a.Instance)
	}
	return c, kid, nil
}

// WithKeys returns a copy of the anchor that trusts keys instead of its
// own; instance, URL and TLS CA stay.
func (a *Anchor) WithKeys(keys []AnchorKey) (*Anchor, error) {
	b := &Anchor{FormatVersion: a.FormatVersion, Instance: a.Instance, URL: a.URL, Keys: slices.Clone(keys), TLSCA: a.TLSCA}
	if err := b.Validate(); err != nil {
		return nil, fmt.Errorf("trusted keys: %w", err)
	}
	return b, nil
}

// Learn returns the anchor a gateway trusts once it has accepted c,
// which verified under a with the key kid: the key that signed c and the
// keys c announces in NextKeys, nothing else. A key a trusts that c no
// longer lists is forgotten, which is how a retired key stops being
// trusted. c must have been verified under a (VerifyKey): an unverified
// document must never teach a key. An announced key that reuses the id
// of a key a trusts with another public key refuses the document.
func (a *Anchor) Learn(c *Config, kid string) (*Anchor, error) {
	var signer *AnchorKey
	for i := range a.Keys {
		if a.Keys[i].KeyID == kid {
			signer = &a.Keys[i]
		}
	}
	if signer == nil {
		return nil, fmt.Errorf("%w: key id %q is not trusted for %s", ErrUntrusted, kid, a.Instance)
	}
	keys := []AnchorKey{*signer}
	for i, k := range c.NextKeys {
		pub, err := k.parse()
		if err != nil {
			return nil, fmt.Errorf("next_keys[%d].%w", i, err)
		}
		if old, ok := a.pubs[k.KeyID]; ok && !samePublicKey(old, pub) {
			return nil, fmt.Errorf("next_keys[%d].kid: %s names another key than the one trusted under that id", i, k.KeyID)
		}
		if k.KeyID != kid {
			keys = append(keys, k)
		}
	}
	return a.WithKeys(keys)
}

func samePublicKey(a, b crypto.PublicKey) bool {
	x, err1 := x509.MarshalPKIXPublicKey(a)
	y, err2 := x509.MarshalPKIXPublicKey(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// KeyIDs returns the ids of the anchor's keys, in order.
func (a *Anchor) KeyIDs() []string {
	out := make([]string, len(a.Keys))
	for i, k := range a.Keys {
		out[i] = k.KeyID
	}
	return out
}

// Fingerprint identifies the trust an anchor was installed with: the
// SHA-256 of its instance and keys (not its URL or TLS CA, which may
// move without a change of trust). Keys a gateway learned are bound to
// it, so that installing an anchor with other keys starts again from
// that anchor's keys.
func (a *Anchor) Fingerprint() string {
	b, _ := json.Marshal(struct {
		Instance string      `json:"instance"`
		Keys     []AnchorKey `json:"keys"`
	}{a.Instance, a.Keys})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// Accept decides whether next may replace cur (nil when none is held).
// An older serial is refused, and so is a different document carrying the
// same serial.
func Accept(cur, next *Config, curDoc, nextDoc []byte) error {
	if cur == nil {
		return nil
	}
	if next.Serial < cur.Serial {
		return fmt.Errorf("configuration serial %d is older than the one held (%d)", next.Serial, cur.Serial)
	}
	if next.Serial == cur.Serial && !bytes.Equal(curDoc, nextDoc) {
		return fmt.Errorf("configuration serial %d reused for a different document", next.Serial)
	}
	return nil
}
