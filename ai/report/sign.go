package report

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/sampan-exchange/sampan/pki"
)

// Files of a report directory.
const (
	// ReportFile is the report (Report.Marshal).
	ReportFile = "report.json"
	// SignatureFile is a detached JWS over ReportFile by the testing
	// body's member signing key.
	SignatureFile = "report.jws"
	// SignerFile is the signing certificate (PEM).
	SignerFile = "signer.pem"
	// TokenFile is an RFC 3161 time-stamp token over the SHA-256 of
	// SignatureFile's bytes: it dates the signature, and through it the
	// report.
	TokenFile = "report.tsr"
)

// Signing is what signs and time-stamps a report.
type Signing struct {
	// Key and Cert are the testing body's member signing key and its
	// certificate from the instance CA.
	Key  crypto.Signer
	Cert *x509.Certificate
	// TSAURL is the authority's time-stamping endpoint; HTTP the client
	// to reach it (trusting the authority's TLS CA).
	TSAURL string
	HTTP   *http.Client
}

// Write signs rep, has the signature time-stamped and writes the report
// directory: the report, its signature, the signer's certificate, the
// token and the views (Views).
func Write(ctx context.Context, dir string, rep *Report, sg Signing) error {
	b, err := rep.Marshal()
	if err != nil {
		return err
	}
	s, err := pki.NewSigner(sg.Key, pki.Fingerprint(sg.Cert.Raw))
	if err != nil {
		return fmt.Errorf("sign report: %w", err)
	}
	sig, err := s.SignDetached(b)
	if err != nil {
		return fmt.Errorf("sign report: %w", err)
	}
	sigBytes := []byte(sig + "\n")
	sum := sha256.Sum256(sigBytes)
	hc := sg.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	tok, err := Timestamp(ctx, hc, sg.TSAURL, sum[:])
	if err != nil {
		return fmt.Errorf("time-stamp report: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	files, err := rep.Views()
	if err != nil {
		return err
	}
	files[ReportFile], files[SignatureFile], files[SignerFile], files[TokenFile] = b, sigBytes, pki.EncodeCert(sg.Cert.Raw), tok
	for name, data := range files {
		if err := pki.WriteFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
	}
	return nil
}
