package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// BackendTLS is how the gateway connects to its services over HTTPS
// (PR-REST §4.7 asks for mutually authenticated TLS on the provider's
// side too). The zero value trusts the system's roots and presents no
// certificate.
type BackendTLS struct {
	// CertFile and KeyFile, when set, are the client certificate and key
	// the gateway presents to services; give both or neither.
	CertFile string `json:"cert_file"`
	KeyFile  string `json:"key_file"`
	// CAFile, when set, holds the PEM certificates that may sign the
	// services' certificates, in place of the system's roots.
	CAFile string `json:"ca_file"`
}

// loadBackendTLS checks backend_tls and loads what it names: the TLS
// settings of the connections to services, or nil for the defaults.
func (c *Config) loadBackendTLS() (*tls.Config, error) {
	b := c.BackendTLS
	if (b.CertFile == "") != (b.KeyFile == "") {
		return nil, errors.New("backend_tls.cert_file, backend_tls.key_file: give both or neither")
	}
	if b == (BackendTLS{}) {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if b.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.path(b.CertFile), c.path(b.KeyFile))
		if err != nil {
			return nil, fmt.Errorf("backend_tls.cert_file: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if b.CAFile != "" {
		pem, err := os.ReadFile(c.path(b.CAFile))
		if err != nil {
			return nil, fmt.Errorf("backend_tls.ca_file: %w", err)
		}
		roots := x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("backend_tls.ca_file: %s holds no PEM certificate", b.CAFile)
		}
		tc.RootCAs = roots
	}
	return tc, nil
}
