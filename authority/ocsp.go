package authority

import (
	"crypto/tls"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/sampan-exchange/sampan/pki"
)

// publicTLS is the TLS of the authority's endpoints: TLS 1.3, and TLS
// 1.2 only with forward secrecy and an AEAD (ECDHE with AES-GCM or
// ChaCha20-Poly1305), for tools and libraries that do not speak 1.3 yet.
func (a *Authority) publicTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{a.tls},
		// TLS 1.3's suites are all AEADs and not configurable; this list
		// is 1.2's.
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
}

// OCSP answers (RFC 6960, with the lightweight profile of RFC 5019: one
// certificate per request, GET with the base64 request in the path, or
// POST with the DER body) are signed by the instance CA itself.

// readOCSPRequest takes the DER request out of an HTTP request: the body
// of a POST (application/ocsp-request), or the path after /ocsp/ of a
// GET, base64 and URL-encoded.
func readOCSPRequest(r *http.Request) ([]byte, error) {
	switch r.Method {
	case http.MethodPost:
		if ct := r.Header.Get("Content-Type"); ct != "" && ct != "application/ocsp-request" {
			return nil, fmt.Errorf("content type %q is not application/ocsp-request", ct)
		}
		b, err := io.ReadAll(io.LimitReader(r.Body, pki.MaxOCSPRequest+1))
		if err != nil {
			return nil, fmt.Errorf("read request: %w", err)
		}
		return b, nil
	case http.MethodGet:
		enc, ok := strings.CutPrefix(r.URL.EscapedPath(), "/ocsp/")
		if !ok {
			return nil, errors.New("no request in the path")
		}
		if len(enc) > 2*pki.MaxOCSPRequest {
			return nil, errors.New("request too large")
		}
		s, err := url.PathUnescape(enc)
		if err != nil {
			return nil, fmt.Errorf("path: %w", err)
		}
		// Some clients drop the padding or use the URL alphabet.
		s = strings.TrimRight(s, "=")
		b, err := base64.RawStdEncoding.DecodeString(s)
		if err != nil {
			b, err = base64.RawURLEncoding.DecodeString(s)
		}
		if err != nil {
			return nil, fmt.Errorf("path is not base64: %w", err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("method %s", r.Method)
}

// serveOCSP answers an OCSP request about a certificate of an instance
// CA listed in the configuration: good, revoked (with its time) or unknown (never issued here). A
// request that does not parse gets OCSP's malformedRequest, one about
// another CA's certificate unauthorized, as RFC 6960 says.
func (a *Authority) serveOCSP(w http.ResponseWriter, r *http.Request) {
	write := func(status int, b []byte) {
		w.Header().Set("Content-Type", "application/ocsp-response")
		w.WriteHeader(status)
		w.Write(b)
	}
	der, err := readOCSPRequest(r)
	if err != nil {
		a.log.Debug("OCSP request refused", "err", err)
		write(http.StatusBadRequest, ocsp.MalformedRequestErrorResponse)
		return
	}
	req, err := pki.ParseOCSPRequest(der)
	if err != nil {
		a.log.Debug("OCSP request refused", "err", err)
		write(http.StatusBadRequest, ocsp.MalformedRequestErrorResponse)
		return
	}
	// During a CA rotation two CAs are listed; the one that issued the
	// certificate answers.
	var ca *pki.CA
	for _, c := range a.cas.Load().listed() {
		if c.Issued(req) {
			ca = c
			break
		}
	}
	if ca == nil {
		write(http.StatusOK, ocsp.UnauthorizedErrorResponse)
		return
	}
	status, revokedAt := pki.OCSPUnknown, time.Time{}
	var at sql.NullString
	err = a.db.QueryRowContext(r.Context(), `SELECT revoked_at FROM certificates WHERE serial = ?`, fmt.Sprintf("%x", req.SerialNumber)).Scan(&at)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		a.log.Error("OCSP look-up", "err", err)
		write(http.StatusInternalServerError, ocsp.InternalErrorErrorResponse)
		return
	case at.Valid:
		status = pki.OCSPRevoked
		if revokedAt, err = time.Parse(time.RFC3339Nano, at.String); err != nil {
			revokedAt = time.Unix(0, 0)
		}
	default:
		status = pki.OCSPGood
	}
	resp, err := ca.OCSPResponse(req.SerialNumber, status, revokedAt, req.HashAlgorithm, a.config().ConfValidity.D())
	if err != nil {
		a.log.Error("OCSP response", "err", err)
		write(http.StatusInternalServerError, ocsp.InternalErrorErrorResponse)
		return
	}
	w.Header().Set("Cache-Control", fmt.Sprintf("max-age=%d, public, no-transform, must-revalidate", int(a.config().ConfValidity.D().Seconds())))
	write(http.StatusOK, resp)
}

// ocspGET sends OCSP GET requests to h ahead of next: their base64 may
// hold "//", which a ServeMux would clean and redirect.
func ocspGET(next http.Handler, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/ocsp/") {
			h(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}
