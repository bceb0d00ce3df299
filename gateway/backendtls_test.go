package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// PR-REST §4.7: the provider's gateway reaches a service that demands
// a TLS client certificate with the one backend_tls names, and trusts
// the service's certificate by backend_tls.ca_file. Without the client
// certificate the service refuses the handshake and the client gets
// Server.ServerProxy.ServiceFailed.
func TestServiceOverMutualTLS(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	dir := t.TempDir()
	ca, err := pki.NewCA("MOF internal services CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(name string) (certFile, keyFile string) {
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		c, err := ca.Issue(key.Public(), pki.ProfileAuth, pki.Template{CommonName: name, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, Validity: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
		if err := pki.WriteCert(certFile, c.Raw); err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteKey(keyFile, key); err != nil {
			t.Fatal(err)
		}
		return certFile, keyFile
	}
	srvCert, srvKey := issue("registry.mof.internal")
	gwCert, gwKey := issue("gw1.mof.internal")
	caFile := filepath.Join(dir, "ca.crt")
	if err := pki.WriteCert(caFile, ca.Cert.Raw); err != nil {
		t.Fatal(err)
	}

	var peer atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		peer.Store(r.TLS.PeerCertificates[0].Subject.CommonName)
		rw.Header().Set("Content-Type", "application/json")
		rw.Write([]byte(`{"name":"over mutual TLS"}`))
	}))
	kp, err := tls.LoadX509KeyPair(srvCert, srvKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{kp}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	srv.StartTLS()
	t.Cleanup(srv.Close)

	// MOF's gateway calls its companies service at srv, with backend_tls
	// as given.
	const mof = "VN/GOV/MOF/gw1"
	reconfigure := func(backendTLS map[string]string) {
		t.Helper()
		path := w.manifestGateway(mof).Config
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var c map[string]any
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		c["backend_tls"] = backendTLS
		for _, s := range c["services"].([]any) {
			if s := s.(map[string]any); s["id"] == companies {
				s["backend"] = srv.URL + "/companies"
			}
		}
		if b, err = json.Marshal(c); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := w.sb.RestartGateway(mof); err != nil {
			t.Fatal(err)
		}
	}

	// A restarted gateway refuses requests signed before its replay
	// window opens (replay.go): wait until it accepts them.
	afterRestart := func() (*http.Response, []byte) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			resp, body := w.do(t, call{path: companies + "/0100109106"})
			if resp.Header.Get(r1.HeaderError) != r1.TypeServerReplayed || time.Now().After(deadline) {
				return resp, body
			}
		}
	}

	reconfigure(map[string]string{"cert_file": gwCert, "key_file": gwKey, "ca_file": caFile})
	resp, body := afterRestart()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "over mutual TLS") {
		t.Fatalf("with a client certificate: %d %s", resp.StatusCode, body)
	}
	if got, _ := peer.Load().(string); got != "gw1.mof.internal" {
		t.Errorf("the service saw client certificate %q", got)
	}

	reconfigure(map[string]string{"ca_file": caFile})
	resp, body = afterRestart()
	wantError(t, resp, body, 500, r1.TypeServiceFailed)
}
