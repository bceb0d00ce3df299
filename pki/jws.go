package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"fmt"

	"github.com/go-jose/go-jose/v4"
)

// jwsAlgs are the signature algorithms accepted in any JWS of the exchange.
var jwsAlgs = []jose.SignatureAlgorithm{jose.EdDSA, jose.ES256}

func algFor(key any) (jose.SignatureAlgorithm, error) {
	switch k := key.(type) {
	case ed25519.PrivateKey, ed25519.PublicKey:
		return jose.EdDSA, nil
	case *ecdsa.PrivateKey, *ecdsa.PublicKey:
		return jose.ES256, nil
	default:
		return "", fmt.Errorf("unsupported signing key type %T", k)
	}
}

// Signer makes JWS signatures with one key. It is safe for concurrent use.
type Signer struct {
	s   jose.Signer
	kid string
}

// NewSigner returns a Signer for key; kid goes into the protected header.
func NewSigner(key crypto.Signer, kid string) (*Signer, error) {
	alg, err := algFor(key)
	if err != nil {
		return nil, err
	}
	opts := (&jose.SignerOptions{}).WithType("sampan+jws")
	if kid != "" {
		opts = opts.WithHeader(jose.HeaderKey("kid"), kid)
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key}, opts)
	if err != nil {
		return nil, fmt.Errorf("new JWS signer: %w", err)
	}
	return &Signer{s: s, kid: kid}, nil
}

// SignDetached returns a compact JWS with a detached payload.
func (s *Signer) SignDetached(payload []byte) (string, error) {
	obj, err := s.s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return obj.DetachedCompactSerialize()
}

// Sign returns a compact JWS that carries its payload.
func (s *Signer) Sign(payload []byte) (string, error) {
	obj, err := s.s.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return obj.CompactSerialize()
}

// VerifyDetached checks a detached compact JWS over payload with pub.
func VerifyDetached(sig string, payload []byte, pub crypto.PublicKey) error {
	obj, err := jose.ParseDetached(sig, payload, jwsAlgs)
	if err != nil {
		return fmt.Errorf("parse signature: %w", err)
	}
	if err := obj.DetachedVerify(payload, pub); err != nil {
		return fmt.Errorf("verify signature: %w", err)
	}
	return nil
}

// ParseCompact parses a compact JWS carrying its payload and returns the
// key id of its signature and a function that verifies it with a key and
// returns the payload. Nothing of the payload may be trusted before that.
func ParseCompact(s string) (kid string, verify func(pub crypto.PublicKey) ([]byte, error), err error) {
	obj, err := jose.ParseSignedCompact(s, jwsAlgs)
	if err != nil {
		return "", nil, fmt.Errorf("parse signed document: %w", err)
	}
	if len(obj.Signatures) != 1 {
		return "", nil, fmt.Errorf("parse signed document: want 1 signature, got %d", len(obj.Signatures))
	}
	return obj.Signatures[0].Protected.KeyID, func(pub crypto.PublicKey) ([]byte, error) {
		p, err := obj.Verify(pub)
		if err != nil {
			return nil, fmt.Errorf("verify signed document: %w", err)
		}
		return p, nil
	}, nil
}
