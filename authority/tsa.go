package authority

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/pki"
)

// Files of the time-stamping authority.
const (
	tsaKeyFile  = "tsa.key"
	tsaCertFile = "tsa.crt"
)

// maxTSARequest bounds a time-stamp request in bytes.
const maxTSARequest = 4 << 10

// tsa is the authority's RFC 3161 time-stamping service.
type tsa struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// loadTSA opens (issuing on first start or near expiry) the TSA key and
// certificate.
func (a *Authority) loadTSA() error {
	key, err := pki.LoadOrCreateKey(filepath.Join(a.dir, tsaKeyFile), pki.ECDSAP256)
	if err != nil {
		return err
	}
	certPath := filepath.Join(a.dir, tsaCertFile)
	cert, err := pki.ReadCert(certPath)
	if err == nil && time.Until(cert.NotAfter) < 30*24*time.Hour {
		err = os.ErrNotExist
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if cert, err = a.issuingCA().Issue(key.Public(), pki.ProfileTSA, pki.Template{CommonName: a.cfg.Instance + " time-stamping authority", Validity: 5 * 365 * 24 * time.Hour}); err != nil {
			return err
		}
		if err := pki.WriteCert(certPath, cert.Raw); err != nil {
			return err
		}
	}
	pol, err := parseOID(a.cfg.TSAPolicyOID)
	if err != nil {
		return fmt.Errorf("tsa_policy_oid: %w", err)
	}
	a.tsa, a.tsaPolicy = &tsa{cert: cert, key: key}, pol
	return nil
}

// maxNonceBytes bounds the nonce of a time-stamp request: RFC 3161
// clients send 64 bits or so; OpenSSL sends 64.
const maxNonceBytes = 32

// checkTSARequest parses a time-stamp request and decides whether the TSA
// grants it. A refusal carries the RFC 3161 failure and a reason for the
// log. The TSA understands no extension, so it refuses every one,
// critical or not (RFC 3161 §2.4.1: unacceptedExtension).
func checkTSARequest(body []byte, policy asn1.ObjectIdentifier) (*timestamp.Request, timestamp.FailureInfo, string) {
	req, err := timestamp.ParseRequest(body)
	if err != nil {
		return nil, timestamp.BadDataFormat, "not a time-stamp request"
	}
	var seq asn1.RawValue
	var version int
	if _, err := asn1.Unmarshal(body, &seq); err != nil {
		return nil, timestamp.BadDataFormat, "not a time-stamp request"
	}
	if _, err := asn1.Unmarshal(seq.Bytes, &version); err != nil || version != 1 {
		return nil, timestamp.BadDataFormat, "version is not 1"
	}
	switch req.HashAlgorithm {
	case crypto.SHA256, crypto.SHA384, crypto.SHA512:
	default:
		return nil, timestamp.BadAlgorithm, "hash algorithm not accepted"
	}
	if len(req.HashedMessage) != req.HashAlgorithm.Size() {
		return nil, timestamp.BadDataFormat, "hash of the wrong length"
	}
	if len(req.Extensions) > 0 {
		return nil, timestamp.UnacceptedExtension, "extension " + req.Extensions[0].Id.String() + " not recognised"
	}
	if req.Nonce != nil && (req.Nonce.Sign() < 0 || len(req.Nonce.Bytes()) > maxNonceBytes) {
		return nil, timestamp.BadDataFormat, "nonce negative or longer than 32 bytes"
	}
	if len(req.TSAPolicyOID) > 0 && !req.TSAPolicyOID.Equal(policy) {
		return nil, timestamp.UnacceptedPolicy, "policy " + req.TSAPolicyOID.String() + " not offered"
	}
	return req, 0, ""
}

// serveTSA answers an RFC 3161 time-stamp request (application/
// timestamp-query) with a token over the hash it carries. Each client
// address may send Config.TSARate requests a minute.
func (a *Authority) serveTSA(w http.ResponseWriter, r *http.Request) {
	reject := func(httpStatus int, status timestamp.FailureInfo, why string) {
		a.log.Info("time-stamp request refused", "why", why, "client", r.RemoteAddr)
		a.metrics.tsaTokens.WithLabelValues(outcomeRefused).Inc()
		b, _ := timestamp.CreateErrorResponse(timestamp.Rejection, status)
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.WriteHeader(httpStatus)
		w.Write(b)
	}
	if d := a.tsaThrottle.take(clientKey(r), time.Now()); d > 0 {
		w.Header().Set("Retry-After", retryAfter(d))
		reject(http.StatusTooManyRequests, timestamp.SystemFailure, "too many requests from this address")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTSARequest))
	if err != nil {
		reject(http.StatusBadRequest, timestamp.BadDataFormat, "request too large or unreadable")
		return
	}
	req, fail, why := checkTSARequest(body, a.tsaPolicy)
	if req == nil {
		reject(http.StatusBadRequest, fail, why)
		return
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		reject(http.StatusInternalServerError, timestamp.SystemFailure, "serial")
		return
	}
	ts := timestamp.Timestamp{
		HashAlgorithm:     req.HashAlgorithm,
		HashedMessage:     req.HashedMessage,
		Time:              time.Now().UTC(),
		Accuracy:          time.Second,
		SerialNumber:      sn,
		Policy:            a.tsaPolicy,
		Nonce:             req.Nonce,
		AddTSACertificate: req.Certificates,
	}
	resp, err := ts.CreateResponseWithOpts(a.tsa.cert, a.tsa.key, crypto.SHA256)
	if err != nil {
		a.log.Error("create time-stamp", "err", err)
		reject(http.StatusInternalServerError, timestamp.SystemFailure, "signing failed")
		return
	}
	a.metrics.tsaTokens.WithLabelValues(outcomeIssued).Inc()
	w.Header().Set("Content-Type", "application/timestamp-reply")
	w.Write(resp)
}

// parseOID parses a dotted object identifier.
func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for p := range strings.SplitSeq(s, ".") {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%q is not a dotted object identifier", s)
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, fmt.Errorf("%q is not a dotted object identifier", s)
	}
	return oid, nil
}

// TSACert returns the time-stamping certificate.
func (a *Authority) TSACert() *x509.Certificate { return a.tsa.cert }
