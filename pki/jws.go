package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

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
	ed  ed25519.PrivateKey // set for Ed25519 keys without a kid: the fast path
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
	sg := &Signer{s: s, kid: kid}
	if k, ok := key.(ed25519.PrivateKey); ok && kid == "" {
		sg.ed = k
	}
	return sg, nil
}

// edHeader is the protected header of every message signature made with
// an Ed25519 key and no key id, base64url-encoded. Signing and verifying
// such signatures directly, rather than through the general JWS library,
// halves the allocations of the hot path; the result is the same compact
// JWS (RFC 7515, EdDSA per RFC 8037), verifiable by any JWS library.
var edHeader = base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"EdDSA","typ":"sampan+jws"}`))

// edSigningInput is header "." base64url(payload).
func edSigningInput(payload []byte) []byte {
	b := make([]byte, 0, len(edHeader)+1+base64.RawURLEncoding.EncodedLen(len(payload)))
	b = append(b, edHeader...)
	b = append(b, '.')
	return base64.RawURLEncoding.AppendEncode(b, payload)
}

// SignDetached returns a compact JWS with a detached payload.
func (s *Signer) SignDetached(payload []byte) (string, error) {
	if s.ed != nil {
		sig := ed25519.Sign(s.ed, edSigningInput(payload))
		return edHeader + ".." + base64.RawURLEncoding.EncodeToString(sig), nil
	}
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

// VerifyDetached checks a message signature over payload with pub: a
// detached compact JWS, or a batch signature (see BatchSigner).
func VerifyDetached(sig string, payload []byte, pub crypto.PublicKey) error {
	if strings.Contains(sig, "~") {
		jws, rp, err := parseBatch(sig, payload)
		if err != nil {
			return err
		}
		return verifyPlain(jws, rp, pub)
	}
	return verifyPlain(sig, payload, pub)
}

// verifyPlain checks a detached compact JWS over payload with pub.
func verifyPlain(sig string, payload []byte, pub crypto.PublicKey) error {
	if edPub, ok := pub.(ed25519.PublicKey); ok {
		if rest, ok := strings.CutPrefix(sig, edHeader+".."); ok {
			raw, err := base64.RawURLEncoding.Strict().DecodeString(rest)
			if err != nil || len(raw) != ed25519.SignatureSize {
				return errors.New("verify signature: malformed EdDSA signature")
			}
			if !ed25519.Verify(edPub, edSigningInput(payload), raw) {
				return errors.New("verify signature: EdDSA signature does not match")
			}
			return nil
		}
	}
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
