package pki

import (
	"bytes"
	"crypto"
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"math/big"
	"time"

	"golang.org/x/crypto/ocsp"
)

// OCSP status of a certificate, as a responder answers it.
const (
	OCSPGood    = ocsp.Good
	OCSPRevoked = ocsp.Revoked
	OCSPUnknown = ocsp.Unknown
)

// MaxOCSPRequest bounds an OCSP request in bytes; a real one, for one
// certificate, is under 100.
const MaxOCSPRequest = 4 << 10

// ParseOCSPRequest parses a DER OCSP request (RFC 6960) for one
// certificate.
func ParseOCSPRequest(der []byte) (*ocsp.Request, error) {
	if len(der) == 0 {
		return nil, errors.New("parse OCSP request: empty")
	}
	if len(der) > MaxOCSPRequest {
		return nil, fmt.Errorf("parse OCSP request: %d bytes exceeds %d", len(der), MaxOCSPRequest)
	}
	req, err := ocsp.ParseRequest(der)
	if err != nil {
		return nil, fmt.Errorf("parse OCSP request: %w", err)
	}
	if req.SerialNumber == nil || req.SerialNumber.Sign() < 0 {
		return nil, errors.New("parse OCSP request: no serial number")
	}
	return req, nil
}

// Issued reports whether an OCSP request asks about a certificate of
// this CA: the issuer name and key hashes must be this CA's, under the
// request's hash algorithm.
func (ca *CA) Issued(req *ocsp.Request) bool {
	if !req.HashAlgorithm.Available() {
		return false
	}
	var spki struct {
		Algorithm pkix.AlgorithmIdentifier
		PublicKey asn1.BitString
	}
	if _, err := asn1.Unmarshal(ca.Cert.RawSubjectPublicKeyInfo, &spki); err != nil {
		return false
	}
	h := req.HashAlgorithm.New()
	h.Write(ca.Cert.RawSubject)
	name := h.Sum(nil)
	h.Reset()
	h.Write(spki.PublicKey.RightAlign())
	key := h.Sum(nil)
	return bytes.Equal(name, req.IssuerNameHash) && bytes.Equal(key, req.IssuerKeyHash)
}

// OCSPResponse signs, with the CA's own key, the answer about one serial:
// OCSPGood, OCSPRevoked (with the time) or OCSPUnknown, valid for
// validity. hash is the request's hash algorithm, so that the answer's
// certificate identifier matches the question's.
func (ca *CA) OCSPResponse(serial *big.Int, status int, revokedAt time.Time, hash crypto.Hash, validity time.Duration) ([]byte, error) {
	if hash == 0 || !hash.Available() {
		hash = crypto.SHA1
	}
	now := time.Now().Truncate(time.Second)
	tmpl := ocsp.Response{
		Status:       status,
		SerialNumber: serial,
		ThisUpdate:   now,
		NextUpdate:   now.Add(validity),
		IssuerHash:   hash,
	}
	if status == ocsp.Revoked {
		tmpl.RevokedAt = revokedAt
		tmpl.RevocationReason = ocsp.Unspecified
	}
	der, err := ocsp.CreateResponse(ca.Cert, ca.Cert, tmpl, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create OCSP response: %w", err)
	}
	return der, nil
}
