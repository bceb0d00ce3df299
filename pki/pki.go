// Package pki holds the exchange's keys and certificates: key generation and
// storage (private keys are always written 0600), certificate signing
// requests, a small certificate authority that issues gateway
// authentication (TLS) certificates and member signing certificates, CRLs,
// and the fingerprints by which the shared configuration pins certificates.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// KeyKind selects the algorithm of a new key.
type KeyKind int

const (
	// ECDSAP256 keys are used for the CA and for TLS authentication.
	ECDSAP256 KeyKind = iota
	// Ed25519 keys are used for message and configuration signatures.
	Ed25519
)

// GenerateKey creates a new private key of the given kind.
func GenerateKey(kind KeyKind) (crypto.Signer, error) {
	switch kind {
	case ECDSAP256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case Ed25519:
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	}
	return nil, fmt.Errorf("unknown key kind %d", kind)
}

// WriteKey stores a private key as PKCS#8 PEM with mode 0600. It refuses to
// overwrite an existing file.
func WriteKey(path string, key crypto.Signer) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal private key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create key directory: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync key file: %w", err)
	}
	return f.Close()
}

// ReadKey loads a PKCS#8 PEM private key. It refuses a key file that other
// users can read.
func ReadKey(path string) (crypto.Signer, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("read key %s: mode %v is too open, want 0600", path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read key: %w", err)
	}
	return ParseKey(b)
}

// ParseKey parses a PKCS#8 PEM private key.
func ParseKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("parse key: no PRIVATE KEY PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, errors.New("parse key: not a signing key")
	}
	return s, nil
}

// LoadOrCreateKey reads the key at path, or creates and stores one.
func LoadOrCreateKey(path string, kind KeyKind) (crypto.Signer, error) {
	k, err := ReadKey(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k, err = GenerateKey(kind)
	if err != nil {
		return nil, err
	}
	return k, WriteKey(path, k)
}

// EncodeCert returns the PEM form of a certificate.
func EncodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// ParseCertPEM parses the first certificate of a PEM block.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("parse certificate: no CERTIFICATE PEM block")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse certificate: %w", err)
	}
	return c, nil
}

// ReadCert loads a PEM certificate file.
func ReadCert(path string) (*x509.Certificate, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	return ParseCertPEM(b)
}

// WriteCert stores a certificate as PEM, replacing the file atomically.
func WriteCert(path string, der []byte) error {
	return WriteFileAtomic(path, EncodeCert(der), 0o644)
}

// WriteFileAtomic writes data to a temporary file beside path, syncs it
// and renames it over path, so that readers never see half a file.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return fmt.Errorf("chmod temporary file: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write temporary file: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync temporary file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename into place: %w", err)
	}
	return nil
}

// Fingerprint returns the lowercase hex SHA-256 of a certificate's DER.
func Fingerprint(der []byte) string {
	s := sha256.Sum256(der)
	return hex.EncodeToString(s[:])
}

// KeyFingerprint returns the lowercase hex SHA-256 of a public key's
// DER SubjectPublicKeyInfo (a certificate's or a CSR's
// RawSubjectPublicKeyInfo): the same key has the same fingerprint in
// every certificate that certifies it.
func KeyFingerprint(spki []byte) string { return Fingerprint(spki) }

// URI SAN prefixes binding a certificate to an exchange identity.
const (
	gatewayURIPrefix = "sampan:gateway:"
	memberURIPrefix  = "sampan:member:"
)

// GatewayURI returns the URI SAN of a gateway authentication certificate.
func GatewayURI(id string) string { return gatewayURIPrefix + url.PathEscape(id) }

// MemberURI returns the URI SAN of a member signing certificate.
func MemberURI(id string) string { return memberURIPrefix + url.PathEscape(id) }

func identityFromURI(c *x509.Certificate, prefix string) (string, bool) {
	for _, u := range c.URIs {
		s := u.String()
		if rest, ok := strings.CutPrefix(s, prefix); ok {
			id, err := url.PathUnescape(rest)
			if err != nil {
				return "", false
			}
			return id, true
		}
	}
	return "", false
}

// GatewayOf returns the gateway id a certificate was issued to.
func GatewayOf(c *x509.Certificate) (string, bool) { return identityFromURI(c, gatewayURIPrefix) }

// MemberOf returns the member id a signing certificate was issued to.
func MemberOf(c *x509.Certificate) (string, bool) { return identityFromURI(c, memberURIPrefix) }

// NewCSR creates a PEM certificate signing request with the given common
// name.
func NewCSR(key crypto.Signer, commonName string) ([]byte, error) {
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: commonName},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("create CSR: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// ParseCSR parses and checks the self-signature of a PEM CSR.
func ParseCSR(b []byte) (*x509.CertificateRequest, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE REQUEST" {
		return nil, errors.New("parse CSR: no CERTIFICATE REQUEST PEM block")
	}
	csr, err := x509.ParseCertificateRequest(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse CSR: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("CSR signature: %w", err)
	}
	return csr, nil
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}

// CA is a certificate authority: a self-signed root and its key.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// CRLURL and OCSPURL, when set, go into every certificate the CA
	// issues: the CRL distribution point and the OCSP responder of the
	// authority information access extension.
	CRLURL, OCSPURL string
}

// NewCA creates a self-signed root valid for ten years.
func NewCA(commonName string) (*CA, error) {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		return nil, err
	}
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("create CA certificate: %w", err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: c, Key: key}, nil
}

// LoadOrCreateCA loads the CA from dir (ca.key, ca.crt) or creates it.
func LoadOrCreateCA(dir, commonName string) (*CA, error) {
	return LoadOrCreateCAFiles(filepath.Join(dir, "ca.key"), filepath.Join(dir, "ca.crt"), commonName)
}

// LoadOrCreateCAFiles loads a CA from its key and certificate files, or
// creates it there when neither exists.
func LoadOrCreateCAFiles(keyPath, certPath, commonName string) (*CA, error) {
	key, kerr := ReadKey(keyPath)
	cert, cerr := ReadCert(certPath)
	if kerr == nil && cerr == nil {
		return &CA{Cert: cert, Key: key}, nil
	}
	if !errors.Is(kerr, os.ErrNotExist) || !errors.Is(cerr, os.ErrNotExist) {
		return nil, fmt.Errorf("load CA from %s: %w", filepath.Dir(certPath), errors.Join(kerr, cerr))
	}
	ca, err := NewCA(commonName)
	if err != nil {
		return nil, err
	}
	if err := WriteKey(keyPath, ca.Key); err != nil {
		return nil, err
	}
	if err := WriteCert(certPath, ca.Cert.Raw); err != nil {
		return nil, err
	}
	return ca, nil
}

var oidDocumentSigning = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 36}

var (
	oidTimeStamping = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 8}
	oidExtKeyUsage  = asn1.ObjectIdentifier{2, 5, 29, 37}
)

// Template describes a certificate to issue.
type Template struct {
	CommonName string
	URIs       []string
	DNSNames   []string
	IPs        []net.IP
	Validity   time.Duration
}

// Profile selects what a certificate may be used for.
type Profile int

const (
	// ProfileAuth is a gateway authentication certificate: TLS client and
	// server.
	ProfileAuth Profile = iota
	// ProfileSign is a member signing certificate: digital signatures with
	// non-repudiation.
	ProfileSign
	// ProfileServer is a TLS server certificate (the authority's own).
	ProfileServer
	// ProfileTSA is a time-stamping authority's certificate: its extended
	// key usage, timeStamping only, is marked critical as RFC 3161
	// requires (OpenSSL refuses tokens otherwise).
	ProfileTSA
)

// Issue signs a certificate for pub under the given profile.
func (ca *CA) Issue(pub crypto.PublicKey, p Profile, t Template) (*x509.Certificate, error) {
	sn, err := serial()
	if err != nil {
		return nil, err
	}
	if t.Validity <= 0 {
		t.Validity = 365 * 24 * time.Hour
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: t.CommonName},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(t.Validity),
		DNSNames:     t.DNSNames,
		IPAddresses:  t.IPs,
	}
	if ca.CRLURL != "" {
		tmpl.CRLDistributionPoints = []string{ca.CRLURL}
	}
	if ca.OCSPURL != "" {
		tmpl.OCSPServer = []string{ca.OCSPURL}
	}
	for _, s := range t.URIs {
		u, err := url.Parse(s)
		if err != nil {
			return nil, fmt.Errorf("issue certificate: URI %q: %w", s, err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	switch p {
	case ProfileAuth:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}
	case ProfileSign:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		// id-kp-documentSigning (RFC 9336): keeps the certificate out of TLS.
		tmpl.UnknownExtKeyUsage = []asn1.ObjectIdentifier{oidDocumentSigning}
	case ProfileServer:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	case ProfileTSA:
		tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment
		eku, err := asn1.Marshal([]asn1.ObjectIdentifier{oidTimeStamping})
		if err != nil {
			return nil, fmt.Errorf("issue certificate: %w", err)
		}
		tmpl.ExtraExtensions = append(tmpl.ExtraExtensions, pkix.Extension{Id: oidExtKeyUsage, Critical: true, Value: eku})
	default:
		return nil, fmt.Errorf("issue certificate: unknown profile %d", p)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("issue certificate: %w", err)
	}
	return x509.ParseCertificate(der)
}

// CRL returns a DER certificate revocation list naming the revoked serials.
func (ca *CA) CRL(number int64, revoked []x509.RevocationListEntry, validity time.Duration) ([]byte, error) {
	now := time.Now()
	der, err := x509.CreateRevocationList(rand.Reader, &x509.RevocationList{
		Number:                    big.NewInt(number),
		ThisUpdate:                now,
		NextUpdate:                now.Add(validity),
		RevokedCertificateEntries: revoked,
	}, ca.Cert, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("create CRL: %w", err)
	}
	return der, nil
}

// VerifyChain checks that c was issued by one of roots for the given usage
// (x509.ExtKeyUsageAny for signing certificates) at time now.
func VerifyChain(c *x509.Certificate, roots *x509.CertPool, usage x509.ExtKeyUsage, now time.Time) error {
	_, err := c.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{usage}})
	if err != nil {
		return fmt.Errorf("verify certificate chain: %w", err)
	}
	return nil
}

// VerifySigningCert checks that c is a member signing certificate issued by
// one of roots and valid at now: it must carry the document-signing
// extended key usage, which keeps TLS certificates out of message signing.
// It returns the member identifier the certificate names.
func VerifySigningCert(c *x509.Certificate, roots *x509.CertPool, now time.Time) (string, error) {
	if !slices.ContainsFunc(c.UnknownExtKeyUsage, oidDocumentSigning.Equal) {
		return "", errors.New("verify signing certificate: not a document-signing certificate")
	}
	if err := VerifyChain(c, roots, x509.ExtKeyUsageAny, now); err != nil {
		return "", fmt.Errorf("verify signing certificate: %w", err)
	}
	m, ok := MemberOf(c)
	if !ok {
		return "", errors.New("verify signing certificate: names no member")
	}
	return m, nil
}

// WriteSelfSigned makes a P-256 key and a certificate for it signed by
// itself from tmpl (a random serial when tmpl has none), and writes both:
// the key 0600, replacing one left without its certificate.
func WriteSelfSigned(certPath, keyPath string, tmpl *x509.Certificate) error {
	key, err := GenerateKey(ECDSAP256)
	if err != nil {
		return err
	}
	if tmpl.SerialNumber == nil {
		if tmpl.SerialNumber, err = serial(); err != nil {
			return err
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create self-signed certificate: %w", err)
	}
	if err := os.Remove(keyPath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := WriteKey(keyPath, key); err != nil {
		return err
	}
	return WriteCert(certPath, der)
}
