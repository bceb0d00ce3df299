package gateway

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// hexSum is the hex SHA-256 of b.
func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// errSignature marks signature failures of a verifying reader.
var errSignature = errors.New("signature does not verify")

func isSigErr(err error) bool { return errors.Is(err, errSignature) }

// signedNames returns the lower-case names of h, sorted.
func signedNames(h http.Header) []string { return forwardHeadersBut(nil, h, "") }

// signerCert checks a signing certificate sent by a peer: it must chain to
// the instance CA, be a document-signing certificate of member and not be
// revoked. Verified certificates are cached per configuration.
func (g *Gateway) signerCert(st *confState, b64 string, member ident.ClientID, typ string) (*signer, *r1.Error) {
	if b64 == "" {
		return nil, r1.New(typ, "message carries no signing certificate")
	}
	if len(b64) > 16<<10 {
		return nil, r1.New(typ, "signing certificate too large")
	}
	if s := st.cachedSigner(b64); s != nil {
		if s.member != member.String() {
			return nil, r1.New(typ, "message signed by %s, expected %s", s.member, member)
		}
		if time.Now().After(s.cert.NotAfter) {
			return nil, r1.New(typ, "signing certificate of %s expired", member)
		}
		return s, nil
	}
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate is not base64")
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate does not parse")
	}
	m, err := pki.VerifySigningCert(c, st.cfg.Roots(), time.Now())
	if err != nil {
		return nil, r1.Wrap(err, typ, "signing certificate of %s is not valid in this instance", member)
	}
	if m != member.String() {
		return nil, r1.New(typ, "message signed by %s, expected %s", m, member)
	}
	if st.cfg.IsRevoked(c) {
		return nil, r1.New(typ, "signing certificate of %s is revoked", member)
	}
	s := &signer{cert: c, fp: pki.Fingerprint(der), member: m}
	st.signers.Store(b64, s)
	return s, nil
}
