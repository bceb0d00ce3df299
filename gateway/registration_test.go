package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestUnregisteredAuthCertificate: a gateway whose authentication
// certificate is not the one registered for it (here: a new one, issued
// by the instance CA but never registered)
// says so in /readyz and in its refusals, rather than that the client
// is not served.
func TestUnregisteredAuthCertificate(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	var hcmc sandbox.ManifestGateway
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			hcmc = g
		}
	}
	caDir := filepath.Dir(sb.Manifest.Authorities[0].AnchorFile)
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	// A new key and certificate, issued by the instance CA to this
	// gateway, but never registered: as after a renewal not yet filed.
	old, err := pki.ReadCert(filepath.Join(hcmc.DataDir, "auth.crt"))
	if err != nil {
		t.Fatal(err)
	}
	ca, err := pki.LoadOrCreateCA(caDir, "")
	if err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, u := range old.URIs {
		uris = append(uris, u.String())
	}
	cert, err := ca.Issue(key.Public(), pki.ProfileAuth, pki.Template{CommonName: old.Subject.CommonName, URIs: uris, Validity: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(hcmc.DataDir, "auth.key"))
	if err := pki.WriteKey(filepath.Join(hcmc.DataDir, "auth.key"), key); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hcmc.DataDir, "auth.crt"), pki.EncodeCert(cert.Raw), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := gateway.LoadConfig(hcmc.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientListen, c.PeerListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	g, err := gateway.New(t.Context(), c, hcmc.DataDir, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Ready() {
		t.Error("Ready() with another gateway's certificate")
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	go g.Run(t.Context())

	for _, u := range []string{"http://" + g.OpsAddr() + "/readyz", "http://" + g.ClientAddr() + "/readyz"} {
		var resp *http.Response
		waitFor(t, 10e9, u, func() bool {
			resp, err = http.Get(u)
			return err == nil
		})
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(b), "is not registered in the shared configuration of VN") {
			t.Errorf("%s: %d %s", u, resp.StatusCode, b)
		}
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+g.ClientAddr()+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
	req.Header.Set(r1.HeaderClient, "VN/GOV/HCMC/one-stop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body r1.Body
	json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if body.Type != r1.TypeClientInternal || !strings.Contains(body.Message, "is not registered in the shared configuration of VN: register it for VN/GOV/HCMC/gw1") {
		t.Errorf("refusal: %d %+v", resp.StatusCode, body)
	}
}
