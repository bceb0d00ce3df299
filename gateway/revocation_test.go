package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// serialOf is the hex serial of a certificate file in a gateway's data
// directory (auth.crt, or sign/*.crt for its owner's signing key).
func (w *world) serialOf(t *testing.T, gw, file string) string {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(w.manifestGateway(gw).DataDir, file))
	if len(paths) != 1 {
		t.Fatalf("%s: %s matches %v", gw, file, paths)
	}
	c, err := pki.ReadCert(paths[0])
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", c.SerialNumber)
}

// peerConn is one kept-alive gateway-to-gateway connection, as a gateway
// holding cert would open it.
type peerConn struct {
	hc     *http.Client
	addr   string
	reused bool
}

func newPeerConn(addr string, cert tls.Certificate) *peerConn {
	return &peerConn{addr: addr, hc: &http.Client{Transport: &http.Transport{
		MaxConnsPerHost: 1,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}},
	}}}
}

// get sends an unsigned request for path as client; it reports the r1
// error type of the answer.
func (p *peerConn) get(t *testing.T, client, path string) string {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+p.addr+"/x/"+path, nil)
	req.Header.Set(r1.HeaderClient, client)
	req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { p.reused = i.Reused }}))
	resp, err := p.hc.Do(req)
	if err != nil {
		t.Fatalf("peer request: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get(r1.HeaderError)
}

// TestRevocation: a revoked authentication certificate is refused at the
// handshake, and per request on a connection opened before it was
// revoked; a revoked signing certificate is refused where the signature
// is verified. Both for certificates of the gateway's own instance and
// of a federated one, each taken from the configuration of the
// certificate's instance.
func TestRevocation(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	vn, sg := w.adminAPIOf(t, "VN"), w.adminAPIOf(t, "SG")
	mofPeer := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	revoke := func(t *testing.T, api *authority.Client, serial string) {
		t.Helper()
		if err := api.Revoke(t.Context(), serial); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
	}

	// Before anything is revoked: MPS's gateway, on a connection of its
	// own to MOF's, gets as far as the signature check; ACRA's gateway
	// is let in by MOF's; the flows used below pass.
	mps := newPeerConn(mofPeer, w.gatewayTLS(t, "VN/GOV/MPS/gw1"))
	if got := mps.get(t, "VN/GOV/MPS/residents", companies+"/0100109106"); got != r1.TypeServerSignature {
		t.Fatalf("unsigned request from a registered gateway: %q, want %s", got, r1.TypeServerSignature)
	}
	if _, err := peerGet(t, mofPeer, w.gatewayTLS(t, "SG/GOV/ACRA/gw1"), acraClient, companies+"/0300588569"); err != nil {
		t.Fatalf("ACRA's gateway before revocation: %v", err)
	}
	for _, c := range [][3]string{{"VN/GOV/HCMC/gw1", hcmcClient, companies + "/0100109106"}, {"VN/GOV/MOF/gw1", mofClient, entities + "/199201624D"}} {
		if resp, body := w.callAs(t, c[0], c[1], c[2]); resp.StatusCode != 200 {
			t.Fatalf("%s before revocation: status %d, body %s", c[2], resp.StatusCode, body)
		}
	}

	t.Run("domestic authentication certificate", func(t *testing.T) {
		revoke(t, vn, w.serialOf(t, "VN/GOV/MPS/gw1", "auth.crt"))
		// Per request, on the connection opened before.
		got := mps.get(t, "VN/GOV/MPS/residents", companies+"/0100109106")
		if !mps.reused {
			t.Fatal("the request did not reuse the connection opened before the revocation")
		}
		if got != r1.TypeServerAuthFailed {
			t.Errorf("request on a connection of a revoked gateway: %q, want %s", got, r1.TypeServerAuthFailed)
		}
		// At the handshake of a new one.
		before := w.hits.Load()
		if _, err := peerGet(t, mofPeer, w.gatewayTLS(t, "VN/GOV/MPS/gw1"), "VN/GOV/MPS/residents", companies+"/0100109106"); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("new connection with a revoked certificate: err = %v, want a TLS refusal", err)
		}
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})

	t.Run("domestic signing certificate", func(t *testing.T) {
		revoke(t, vn, w.serialOf(t, "VN/GOV/HCMC/gw1", "sign/*.crt"))
		wantSignerRevoked(t, w, "VN/GOV/HCMC/gw1", hcmcClient, companies+"/0100109106")
	})

	t.Run("federated signing certificate", func(t *testing.T) {
		// MOF's signing certificate, revoked by VN, as ACRA's gateway in
		// SG sees it through VN's configuration.
		revoke(t, vn, w.serialOf(t, "VN/GOV/MOF/gw1", "sign/*.crt"))
		wantSignerRevoked(t, w, "VN/GOV/MOF/gw1", mofClient, entities+"/199201624D")
	})

	t.Run("federated authentication certificate", func(t *testing.T) {
		// ACRA's gateway, revoked by SG, at MOF's gateway in VN.
		revoke(t, sg, w.serialOf(t, "SG/GOV/ACRA/gw1", "auth.crt"))
		before := w.hits.Load()
		if _, err := peerGet(t, mofPeer, w.gatewayTLS(t, "SG/GOV/ACRA/gw1"), acraClient, companies+"/0300588569"); err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("revoked foreign gateway: err = %v, want a TLS refusal", err)
		}
		resp, body := w.callAs(t, "SG/GOV/ACRA/gw1", acraClient, companies+"/0300588569")
		if resp.StatusCode == 200 {
			t.Errorf("a revoked foreign gateway's call went through: %s", body)
		}
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})
}

// impostor is an HTTPS server on loopback that presents cert and
// relays the genuine document of an authority; it counts the requests
// that reach it.
type impostor struct {
	srv  *httptest.Server
	hits atomic.Int64
}

func newImpostor(t *testing.T, cert tls.Certificate, doc []byte) *impostor {
	t.Helper()
	im := &impostor{}
	im.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		im.hits.Add(1)
		rw.Write(doc)
	}))
	im.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	im.srv.StartTLS()
	t.Cleanup(im.srv.Close)
	return im
}

// authorityTLSCert issues, under an authority's own TLS CA, a server
// certificate for 127.0.0.1: what a second node of the authority holds.
func (w *world) authorityTLSCert(t *testing.T, instance string) tls.Certificate {
	t.Helper()
	dir := filepath.Dir(w.authority(instance).AnchorPath())
	ca, err := pki.LoadOrCreateCAFiles(filepath.Join(dir, "tls-ca.key"), filepath.Join(dir, authority.TLSCAFile), "")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	c, err := ca.Issue(key.Public(), pki.ProfileServer, pki.Template{CommonName: "node 2", IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key}
}

// TestAuthorityImpersonation: a server presenting a gateway's
// authentication certificate — valid, issued by the instance CA for the
// address it serves on — cannot pass for the authority: a gateway's
// download of its own and of a federated configuration refuses it, while
// a certificate of the authority's TLS CA at the same place is taken.
func TestAuthorityImpersonation(t *testing.T) {
	w := startWorld(t, sandbox.Options{})

	t.Run("own configuration", func(t *testing.T) {
		mg := w.manifestGateway("VN/GOV/HCMC/gw1")
		doc := fetchConf(t, w, "VN")
		gwCert := w.gatewayTLS(t, "VN/GOV/MOF/gw1")
		// The gateway certificate is good for the address: only the
		// authority's trust keeps it out.
		leaf, _ := x509.ParseCertificate(gwCert.Certificate[0])
		roots := x509.NewCertPool()
		roots.AddCert(w.authority("VN").CACert())
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: "127.0.0.1", KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
			t.Fatalf("the gateway certificate is not a valid server certificate for 127.0.0.1: %v", err)
		}
		for _, tc := range []struct {
			name string
			cert tls.Certificate
			ok   bool
		}{
			{"gateway certificate", gwCert, false},
			{"authority TLS certificate", w.authorityTLSCert(t, "VN"), true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				im := newImpostor(t, tc.cert, doc)
				an, err := conf.ReadAnchor(w.authority("VN").AnchorPath())
				if err != nil {
					t.Fatal(err)
				}
				an.URL = im.srv.URL + "/conf"
				anchorFile := filepath.Join(t.TempDir(), "anchor.json")
				if err := cfg.Write(anchorFile, an, 0o644); err != nil {
					t.Fatal(err)
				}
				c, err := gateway.LoadConfig(mg.Config)
				if err != nil {
					t.Fatal(err)
				}
				c.AnchorFile = anchorFile
				c.ClientListen, c.PeerListen = "127.0.0.1:0", "127.0.0.1:0"
				g, err := gateway.New(t.Context(), c, copyDir(t, mg.DataDir), gateway.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
				if err != nil {
					t.Fatal(err)
				}
				defer g.Close()
				err = g.RefreshConf(t.Context())
				if tc.ok && err != nil {
					t.Fatalf("download from the authority's own certificate: %v", err)
				}
				if !tc.ok {
					if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
						t.Errorf("download from a gateway's certificate: err = %v, want an untrusted certificate", err)
					}
					if im.hits.Load() != 0 {
						t.Error("the gateway sent its request to the impostor")
					}
				}
			})
		}
	})

	t.Run("federated configuration", func(t *testing.T) {
		// VN's authority points its gateways at SG's configuration on a
		// server holding SG's gateway certificate, under SG's real anchor
		// keys and TLS CA.
		im := newImpostor(t, w.gatewayTLS(t, "SG/GOV/ACRA/gw1"), fetchConf(t, w, "SG"))
		an := *w.authority("SG").Anchor()
		an.URL = im.srv.URL + "/conf"
		api := w.adminAPIOf(t, "VN")
		if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: an}); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: *w.authority("SG").Anchor()}); err != nil {
				t.Fatal(err)
			}
			w.refresh(t)
		}()
		err := w.gw["VN/GOV/MOF/gw1"].RefreshConf(t.Context())
		if err == nil || !strings.Contains(err.Error(), "certificate signed by unknown authority") {
			t.Errorf("federated download from a gateway's certificate: err = %v, want an untrusted certificate", err)
		}
		if im.hits.Load() != 0 {
			t.Error("the gateway sent its request to the impostor")
		}
	})
}

// wantSignerRevoked calls path as client through gw and wants the
// provider to refuse the request's signature as revoked, before its
// backend sees anything.
func wantSignerRevoked(t *testing.T, w *world, gw, client, path string) {
	t.Helper()
	before := w.hits.Load()
	resp, body := w.callAs(t, gw, client, path)
	wantError(t, resp, body, 500, r1.TypeServerSignature)
	if !strings.Contains(string(body), "revoked") {
		t.Errorf("refusal %s does not say the certificate is revoked", body)
	}
	if w.hits.Load() != before {
		t.Error("backend was called")
	}
}
