package gateway_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// An information system speaks for a client subsystem only over the
// connection its type allows: ACRA's subsystem (https-certs in the
// sandbox) is refused over plain HTTP, over HTTPS without a certificate
// and with a certificate not registered for it, and served with its own;
// a subsystem of type http is served over either.
func TestClientConnectionTypes(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	mg := w.manifestGateway("SG/GOV/ACRA/gw1")
	_, withCert := w.clientOf(t, "SG/GOV/ACRA/gw1", acraClient)
	stranger := selfSigned(t, acraClient)
	path := companies + "/0300588569"
	for _, c := range []struct {
		name   string
		hc     *http.Client
		base   string
		client string
		status int
	}{
		{"plain HTTP", http.DefaultClient, mg.ClientURL, acraClient, 500},
		{"HTTPS without a certificate", isClient(t, mg.ClientTLSCAFile, nil), mg.ClientTLSURL, acraClient, 500},
		{"HTTPS with a certificate not registered for the subsystem", isClient(t, mg.ClientTLSCAFile, &stranger), mg.ClientTLSURL, acraClient, 500},
		{"HTTPS with the subsystem's certificate", withCert, mg.ClientTLSURL, acraClient, 200},
		{"a subsystem of type http, over HTTPS", isClient(t, w.manifestGateway("VN/GOV/HCMC/gw1").ClientTLSCAFile, nil),
			w.manifestGateway("VN/GOV/HCMC/gw1").ClientTLSURL, hcmcClient, 200},
		{"a subsystem of type http, over HTTP", http.DefaultClient, w.manifestGateway("VN/GOV/HCMC/gw1").ClientURL, hcmcClient, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := w.hits.Load()
			resp, body := w.callURLWith(t, c.hc, c.base, c.client, path)
			if c.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				return
			}
			wantError(t, resp, body, c.status, r1.TypeSSLAuthFailed)
			if w.hits.Load() != before {
				t.Error("a refused request reached the backend")
			}
		})
	}
}

// selfSigned makes a TLS client certificate that no gateway has pinned.
func selfSigned(t *testing.T, cn string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
