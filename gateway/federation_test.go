package gateway_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

const (
	acraClient = "SG/GOV/ACRA/bizfile"
	mofClient  = "VN/GOV/MOF/business-registry"
	entities   = "SG/GOV/ACRA/bizfile/entities"
)

// callAs sends an r1 GET through a gateway's client side as client.
// callAs calls path as client through gateway gw, declaring a purpose
// when one is given.
func (w *world) callAs(t *testing.T, gw, client, path string, purpose ...string) (*http.Response, []byte) {
	t.Helper()
	base, hc := w.clientOf(t, gw, client)
	return w.callURLWith(t, hc, base, client, path, purpose...)
}

// clientOf returns the client side's URL and an HTTP client for an
// information system of client, as its connection type at gw asks:
// plain HTTP, or HTTPS with its registered certificate.
func (w *world) clientOf(t *testing.T, gw, client string) (string, *http.Client) {
	t.Helper()
	mg := w.manifestGateway(gw)
	for _, c := range mg.ClientConnections {
		if c.Subsystem != client || c.CertFile == "" {
			continue
		}
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		return mg.ClientTLSURL, isClient(t, mg.ClientTLSCAFile, &cert)
	}
	return mg.ClientURL, http.DefaultClient
}

// isClient is an HTTPS client that trusts the client side's certificate
// and presents cert, when not nil.
func isClient(t *testing.T, caFile string, cert *tls.Certificate) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	tc := &tls.Config{RootCAs: roots}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func (w *world) callURL(t *testing.T, base, client, path string, purpose ...string) (*http.Response, []byte) {
	t.Helper()
	return w.callURLWith(t, http.DefaultClient, base, client, path, purpose...)
}

func (w *world) callURLWith(t *testing.T, hc *http.Client, base, client, path string, purpose ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/r1/"+path, nil)
	req.Header.Set(r1.HeaderClient, client)
	for _, p := range purpose {
		req.Header.Set(r1.HeaderPurpose, p)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("GET %s as %s: %v", path, client, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func (w *world) authority(instance string) *authority.Authority {
	for _, a := range w.sb.Authorities {
		if a != nil && a.Current().Instance == instance {
			return a
		}
	}
	panic("no authority " + instance)
}

func (w *world) adminAPIOf(t *testing.T, instance string) *authority.Client {
	t.Helper()
	for _, a := range w.sb.Manifest.Authorities {
		if a.Instance == instance {
			tok, err := os.ReadFile(a.TokenFile)
			if err != nil {
				t.Fatal(err)
			}
			return authority.NewClient(a.URL, strings.TrimSpace(string(tok)), w.authority(instance).TLSCACert())
		}
	}
	t.Fatalf("no authority %s", instance)
	return nil
}

// gatewayTLS loads a sandbox gateway's own authentication key and
// certificate, as an attacker holding them would.
func (w *world) gatewayTLS(t *testing.T, id string) tls.Certificate {
	t.Helper()
	dir := w.manifestGateway(id).DataDir
	c, err := tls.LoadX509KeyPair(filepath.Join(dir, "auth.crt"), filepath.Join(dir, "auth.key"))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// peerGet sends a raw gateway-to-gateway request with the given client
// certificate.
func peerGet(t *testing.T, addr string, cert tls.Certificate, client, path string) (*http.Response, error) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
	}}}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+"/x/"+path, nil)
	req.Header.Set(r1.HeaderClient, client)
	resp, err := hc.Do(req)
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resp.Body = io.NopCloser(strings.NewReader(string(b)))
	}
	return resp, err
}

func TestFederation(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})

	t.Run("SG calls VN", func(t *testing.T) {
		resp, body := w.callAs(t, "SG/GOV/ACRA/gw1", acraClient, companies+"/0300588569")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Saigon Beer") {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
		if got := resp.Header.Get(r1.HeaderClient); got != acraClient {
			t.Errorf("X-Road-Client = %q", got)
		}
	})

	t.Run("VN calls SG", func(t *testing.T) {
		resp, body := w.callAs(t, "VN/GOV/MOF/gw1", mofClient, entities+"/199201624D")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "Singapore Telecommunications") {
			t.Fatalf("status %d, body %s", resp.StatusCode, body)
		}
	})

	t.Run("readiness lists the federated configuration", func(t *testing.T) {
		var ready struct {
			Configurations []gateway.ConfStatus
		}
		resp, err := http.Get(w.manifestGateway("VN/GOV/MOF/gw1").ClientURL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		json.NewDecoder(resp.Body).Decode(&ready)
		resp.Body.Close()
		if len(ready.Configurations) != 2 || ready.Configurations[1].Instance != "SG" || !ready.Configurations[1].Federated {
			t.Errorf("configurations = %+v, want VN then SG", ready.Configurations)
		}
	})

	t.Run("foreign client claims a domestic identifier", func(t *testing.T) {
		// At its own gateway: SG's gateway does not serve a VN subsystem.
		resp, body := w.callAs(t, "SG/GOV/ACRA/gw1", hcmcClient, companies+"/0100109106")
		wantError(t, resp, body, 500, r1.TypeUnknownClient)

		// Straight to MOF's gateway with SG's real gateway certificate:
		// SG's configuration cannot make it the gateway of a VN client.
		before := w.hits.Load()
		resp, err := peerGet(t, w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr, w.gatewayTLS(t, "SG/GOV/ACRA/gw1"), hcmcClient, companies+"/0100109106")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		wantError(t, resp, b, 500, r1.TypeServerAuthFailed)
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})

	t.Run("certificate from the wrong instance's CA", func(t *testing.T) {
		// VN's CA issues a certificate naming SG's gateway: it must not
		// pass for SG's gateway anywhere.
		vnCA, err := pki.LoadOrCreateCA(filepath.Dir(w.sb.Manifest.Authorities[0].AnchorFile), "")
		if err != nil {
			t.Fatal(err)
		}
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		cert, err := vnCA.Issue(key.Public(), pki.ProfileAuth, pki.Template{CommonName: "SG/GOV/ACRA/gw1", URIs: []string{pki.GatewayURI("SG/GOV/ACRA/gw1")}})
		if err != nil {
			t.Fatal(err)
		}
		before := w.hits.Load()
		for _, target := range []string{"VN/GOV/MOF/gw1", "SG/GOV/SPF/gw1"} {
			_, err := peerGet(t, w.manifestGateway(target).PeerAddr, tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key}, acraClient, companies+"/0100109106")
			if err == nil || !strings.Contains(err.Error(), "tls") {
				t.Errorf("%s: err = %v, want a TLS refusal", target, err)
			}
		}
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})

	t.Run("federation off at a gateway", func(t *testing.T) {
		// A second HCMC gateway node, configured without federation.
		mg := w.manifestGateway("VN/GOV/HCMC/gw1")
		c, err := gateway.LoadConfig(mg.Config)
		if err != nil {
			t.Fatal(err)
		}
		if c.Federation.Allow != gateway.FederateAll {
			t.Fatalf("sandbox gateway federation = %q", c.Federation.Allow)
		}
		c.Federation = gateway.FederationConfig{Allow: gateway.FederateNone}
		c.ClientListen, c.PeerListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
		dir := copyDir(t, mg.DataDir)
		g, err := gateway.New(t.Context(), c, dir, gateway.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		if err := g.Listen(); err != nil {
			t.Fatal(err)
		}
		go g.Run(t.Context())
		if err := g.RefreshConf(t.Context()); err != nil {
			t.Fatal(err)
		}
		resp, body := w.callURL(t, "http://"+g.ClientAddr(), hcmcClient, entities+"/199201624D")
		wantError(t, resp, body, 500, r1.TypeFederationOff)
		// Domestic traffic is unaffected.
		if resp, body := w.callURL(t, "http://"+g.ClientAddr(), hcmcClient, companies+"/0100109106"); resp.StatusCode != 200 {
			t.Errorf("domestic call: status %d, body %s", resp.StatusCode, body)
		}
		// And it holds no SG configuration to accept SG's gateways with.
		if _, err := peerGet(t, g.PeerAddr(), w.gatewayTLS(t, "SG/GOV/ACRA/gw1"), acraClient, companies+"/0100109106"); err == nil {
			t.Error("a gateway without federation accepted a foreign gateway")
		}
	})

	t.Run("tampered and replayed foreign configuration", func(t *testing.T) {
		sg := w.authority("SG")
		old := fetchConf(t, w, "SG")
		// SG publishes a newer configuration, which VN's gateways take.
		if err := w.adminAPIOf(t, "SG").AddMember(t.Context(), authority.MemberInput{ID: ident.ClientID{Instance: "SG", Class: "GOV", Code: "IRAS"}, Name: "Inland Revenue Authority"}); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		mof := w.gw["VN/GOV/MOF/gw1"]
		held := sgSerial(mof)
		if held != sg.Current().Serial {
			t.Fatalf("MOF's gateway holds SG serial %d, SG publishes %d", held, sg.Current().Serial)
		}
		tampered := []byte(strings.Replace(string(fetchConf(t, w, "SG")), ".", ".A", 1))
		for name, doc := range map[string][]byte{"replayed": old, "tampered": tampered} {
			t.Run(name, func(t *testing.T) {
				// VN's authority now points its gateways at a server that
				// serves the bad document, under SG's real keys.
				srv := httptest.NewTLSServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(doc) }))
				defer srv.Close()
				an := *sg.Anchor()
				an.URL = srv.URL + "/conf"
				an.TLSCA = string(pki.EncodeCert(srv.Certificate().Raw))
				api := w.adminAPIOf(t, "VN")
				if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: an}); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: *sg.Anchor()}); err != nil {
						t.Fatal(err)
					}
					w.refresh(t)
				}()
				if err := mof.RefreshConf(t.Context()); err == nil {
					t.Fatal("the gateway accepted the document")
				}
				if got := sgSerial(mof); got != held {
					t.Errorf("held SG serial = %d, want %d kept", got, held)
				}
				// Cross-border traffic goes on on the configuration held.
				if resp, body := w.callAs(t, "VN/GOV/MOF/gw1", mofClient, entities+"/199201624D"); resp.StatusCode != 200 {
					t.Errorf("status %d, body %s", resp.StatusCode, body)
				}
			})
		}
	})

	t.Run("anchor removed while traffic runs", func(t *testing.T) {
		api := w.adminAPIOf(t, "VN")
		stop := make(chan struct{})
		done := make(chan [2]int)
		go func() {
			// Domestic traffic throughout.
			var ok, bad int
			for {
				select {
				case <-stop:
					done <- [2]int{ok, bad}
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, w.url+"/r1/"+companies+"/0100109106", nil)
				req.Header.Set(r1.HeaderClient, hcmcClient)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err == nil && resp.StatusCode == 200 {
					ok++
				} else {
					bad++
				}
			}
		}()
		if err := api.RemoveFederation(t.Context(), "SG"); err != nil {
			t.Fatal(err)
		}
		removed := time.Now()
		// Within one refresh (1s here, with jitter), both directions stop.
		deadline := time.Now().Add(3 * time.Second)
		var in, out *http.Response
		var inBody, outBody []byte
		for time.Now().Before(deadline) {
			in, inBody = w.callAs(t, "SG/GOV/ACRA/gw1", acraClient, companies+"/0300588569")
			out, outBody = w.callAs(t, "VN/GOV/MOF/gw1", mofClient, entities+"/199201624D")
			if in.StatusCode != 200 && out.StatusCode != 200 {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("cross-border traffic stopped %v after the anchor was removed", time.Since(removed).Round(10*time.Millisecond))
		wantError(t, in, inBody, 500, r1.TypeServerFederationOff)
		wantError(t, out, outBody, 500, r1.TypeFederationOff)
		close(stop)
		counts := <-done
		if counts[1] != 0 || counts[0] == 0 {
			t.Errorf("domestic calls during the change: %d ok, %d failed; want all ok", counts[0], counts[1])
		}

		// Trust restored: traffic resumes.
		if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: *w.authority("SG").Anchor()}); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		if resp, body := w.callAs(t, "SG/GOV/ACRA/gw1", acraClient, companies+"/0300588569"); resp.StatusCode != 200 {
			t.Errorf("after restoring: status %d, body %s", resp.StatusCode, body)
		}
	})

	t.Run("inbound restriction", func(t *testing.T) {
		api := w.adminAPIOf(t, "VN")
		an := *w.authority("SG").Anchor()
		spf := ident.ClientID{Instance: "SG", Class: "GOV", Code: "SPF"}
		if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: an, InboundClients: []ident.ClientID{spf}}); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		resp, body := w.callAs(t, "SG/GOV/ACRA/gw1", acraClient, companies+"/0300588569")
		wantError(t, resp, body, 500, r1.TypeServerAccessDenied)
		if resp, body := w.callAs(t, "SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "VN/GOV/MPS/cybercrime/scam-reports", "scam-investigation"); resp.StatusCode != 200 {
			t.Errorf("admitted member: status %d, body %s", resp.StatusCode, body)
		}
		if err := api.PutFederation(t.Context(), authority.FederationInput{Anchor: an}); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
	})
}

// fetchConf downloads an authority's current signed document.
func fetchConf(t *testing.T, w *world, instance string) []byte {
	t.Helper()
	a := w.authority(instance)
	an, err := conf.ReadAnchor(a.AnchorPath())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: an.TLSRoots()}}}
	resp, err := hc.Get(an.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

func sgSerial(g *gateway.Gateway) uint64 {
	for _, c := range g.ConfStatus() {
		if c.Instance == "SG" {
			return c.Serial
		}
	}
	return 0
}

// copyDir copies a gateway's data directory, keeping file modes.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.MkdirAll(target, info.Mode().Perm())
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}
