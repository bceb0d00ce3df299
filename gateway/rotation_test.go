package gateway_test

import (
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/sandbox"
)

// traffic runs four loops of real calls through two gateways — HCMC
// calling MOF at home, MOF calling ACRA in Singapore — until stop, and
// counts the calls and the refusals.
type traffic struct {
	stop           atomic.Bool
	calls, refused atomic.Int64
	wg             sync.WaitGroup
}

func startTraffic(t *testing.T, w *world) *traffic {
	tr := &traffic{}
	hcmc, mof := w.manifestGateway("VN/GOV/HCMC/gw1").ClientURL, w.manifestGateway("VN/GOV/MOF/gw1").ClientURL
	flows := []func() bool{
		func() bool { return get(hcmc, hcmcClient, companies+"/0100109106") },
		func() bool { return get(hcmc, hcmcClient, companies+"/0300588569") },
		func() bool { return get(mof, mofClient, entities+"/199201624D") },
		func() bool { return get(mof, mofClient, entities+"/199201624D") },
	}
	for _, flow := range flows {
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			for !tr.stop.Load() {
				tr.calls.Add(1)
				if !flow() {
					tr.refused.Add(1)
				}
			}
		}()
	}
	return tr
}

// flowing waits until n more calls have been made, so that each step of
// a rotation happens under traffic.
func (tr *traffic) flowing(t *testing.T, n int64) {
	t.Helper()
	want := tr.calls.Load() + n
	deadline := time.Now().Add(30 * time.Second)
	for tr.calls.Load() < want {
		if time.Now().After(deadline) {
			t.Fatalf("traffic stalled at %d calls", tr.calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// end stops the loops and fails the test if any call was refused.
func (tr *traffic) end(t *testing.T) {
	t.Helper()
	tr.stop.Store(true)
	tr.wg.Wait()
	t.Logf("%d calls during the rotation", tr.calls.Load())
	if tr.calls.Load() == 0 || tr.refused.Load() != 0 {
		t.Errorf("%d calls during the rotation, %d refused", tr.calls.Load(), tr.refused.Load())
	}
}

func (w *world) gateway(id string) *gateway.Gateway {
	for _, g := range w.sb.Gateways {
		if g.ID().String() == id {
			return g
		}
	}
	panic("no gateway " + id)
}

// wantTrust checks the configuration-signing keys gateways trust for
// VN: its own gateways and Singapore's, which follow VN's configuration
// as a federated one.
func (w *world) wantTrust(t *testing.T, step string, want ...string) {
	t.Helper()
	for _, id := range []string{"VN/GOV/HCMC/gw1", "VN/GOV/MOF/gw1", "VN/GOV/MPS/gw1", "SG/GOV/ACRA/gw1"} {
		if got := w.gateway(id).TrustedConfKeys("VN"); !slices.Equal(got, want) {
			t.Errorf("%s: %s trusts %v for VN, want %v", step, id, got, want)
		}
	}
}

// reregisterAt has instance's authority take VN's anchor file as it is
// now, as a partner's operator does during a rotation.
func (w *world) reregisterAt(t *testing.T, instance string) {
	t.Helper()
	an, err := conf.ReadAnchor(w.authority("VN").AnchorPath())
	if err != nil {
		t.Fatal(err)
	}
	in := authority.FederationInput{Anchor: *an}
	for _, f := range w.authority(instance).Current().Federation {
		if f.Anchor.Instance == "VN" {
			in.InboundClients = f.InboundClients
		}
	}
	if err := w.adminAPIOf(t, instance).PutFederation(t.Context(), in); err != nil {
		t.Fatal(err)
	}
	w.refresh(t)
}

// readyKeys returns the configuration-signing keys a gateway's /readyz
// lists for its own instance.
func readyKeys(t *testing.T, opsURL string) []string {
	t.Helper()
	resp, err := http.Get(opsURL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Detail []gateway.ConfStatus `json:"detail"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || len(body.Detail) == 0 {
		t.Fatalf("/readyz: %v %+v", err, body)
	}
	return body.Detail[0].Keys
}

func anchorKeys(t *testing.T, path string) []string {
	t.Helper()
	an, err := conf.ReadAnchor(path)
	if err != nil {
		t.Fatal(err)
	}
	return an.KeyIDs()
}

// TestRotateConfKeyUnderTraffic rotates VN's configuration-signing key
// — prepare, activate, retire — while four loops call through two
// gateways, at home and across the border: no call is refused; each
// gateway (Singapore's included) trusts the announced key before it
// signs and forgets the old one once retired; a gateway restarted
// mid-rotation keeps what it learned; Singapore re-registering the
// anchor at each stage changes nothing for traffic; afterwards a
// configuration signed by the retired key, and one signed by a key it
// announced, are refused, and an anchor with other keys, installed after
// a compromise, makes a gateway forget what it learned.
func TestRotateConfKeyUnderTraffic(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})
	api := w.adminAPI(t)
	ctx := t.Context()
	vn := w.authority("VN")
	dataDir := filepath.Dir(vn.AnchorPath())
	st, err := api.Rotation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	k1 := st.ConfKey.Current
	w.wantTrust(t, "before", k1)
	// The gateways that restart or reopen below were installed with
	// the anchor of now, which lists k1 alone.
	pinAnchor(t, w.manifestGateway("VN/GOV/MPS/gw1"), vn.AnchorPath())
	origAnchor := filepath.Join(t.TempDir(), "anchor.json")
	if b, err := os.ReadFile(vn.AnchorPath()); err != nil || os.WriteFile(origAnchor, b, 0o644) != nil {
		t.Fatal(err)
	}

	tr := startTraffic(t, w)

	tr.flowing(t, 40)
	// Prepare: the next key is announced and listed in the anchor file.
	st, err = api.Rotate(ctx, "conf-key", "prepare", authority.RotateInput{})
	if err != nil {
		t.Fatal(err)
	}
	k2 := st.ConfKey.Next
	if k2 == "" || k2 == k1 || st.ConfKey.Current != k1 {
		t.Fatalf("after prepare: %+v", st.ConfKey)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "conf-sign-next.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("next key file: %v, %v", fi, err)
	}
	if got := anchorKeys(t, vn.AnchorPath()); !slices.Equal(got, []string{k1, k2}) {
		t.Errorf("anchor file after prepare lists %v", got)
	}
	if _, err := api.Rotate(ctx, "conf-key", "prepare", authority.RotateInput{}); err == nil || !strings.Contains(err.Error(), "already prepared") {
		t.Errorf("second prepare: %v", err)
	}
	w.refresh(t)
	w.wantTrust(t, "after prepare", k1, k2)
	if got := readyKeys(t, w.manifestGateway("VN/GOV/HCMC/gw1").OpsURL); !slices.Equal(got, []string{k1, k2}) {
		t.Errorf("/readyz lists keys %v", got)
	}
	// Singapore re-registers the anchor listing both keys.
	w.reregisterAt(t, "SG")
	w.wantTrust(t, "after Singapore took the new anchor", k1, k2)

	tr.flowing(t, 40)
	// A gateway restarted now keeps the key it learned.
	if err := w.sb.RestartGateway("VN/GOV/MPS/gw1"); err != nil {
		t.Fatal(err)
	}
	if got := w.gateway("VN/GOV/MPS/gw1").TrustedConfKeys("VN"); !slices.Equal(got, []string{k1, k2}) {
		t.Errorf("restarted gateway trusts %v", got)
	}

	tr.flowing(t, 40)
	// Activate: refused before the key has been announced for one
	// validity, then forced.
	if _, err := api.Rotate(ctx, "conf-key", "activate", authority.RotateInput{}); err == nil || !strings.Contains(err.Error(), "one configuration validity") {
		t.Errorf("early activation: %v, want a refusal naming the validity", err)
	}
	backup, err := os.ReadFile(filepath.Join(dataDir, "conf-sign.key"))
	if err != nil {
		t.Fatal(err)
	}
	oldKey, err := pki.ParseKey(backup)
	if err != nil {
		t.Fatal(err)
	}
	if st, err = api.Rotate(ctx, "conf-key", "activate", authority.RotateInput{Force: true}); err != nil {
		t.Fatal(err)
	}
	if st.ConfKey.Current != k2 || st.ConfKey.Previous != k1 || st.ConfKey.Next != "" {
		t.Fatalf("after activate: %+v", st.ConfKey)
	}
	if kid := signedBy(t, fetchConf(t, w, "VN")); kid != k2 {
		t.Errorf("configuration signed by %s after activation, want %s", kid, k2)
	}
	w.refresh(t)
	w.wantTrust(t, "after activate", k2, k1)
	if s := w.gateway("VN/GOV/MPS/gw1"); confSerial(s) != vn.Current().Serial {
		t.Errorf("restarted gateway holds serial %d, authority publishes %d", confSerial(s), vn.Current().Serial)
	}

	tr.flowing(t, 40)
	// Retire: refused within the window, then forced.
	if _, err := api.Rotate(ctx, "conf-key", "retire", authority.RotateInput{}); err == nil || !strings.Contains(err.Error(), "twice the configuration validity") {
		t.Errorf("early retirement: %v", err)
	}
	if st, err = api.Rotate(ctx, "conf-key", "retire", authority.RotateInput{Force: true}); err != nil {
		t.Fatal(err)
	}
	if st.ConfKey.Current != k2 || st.ConfKey.Previous != "" {
		t.Fatalf("after retire: %+v", st.ConfKey)
	}
	if got := anchorKeys(t, vn.AnchorPath()); !slices.Equal(got, []string{k2}) {
		t.Errorf("anchor file after retire lists %v", got)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "conf-sign-prev.key")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("retired private key still on disk: %v", err)
	}
	w.refresh(t)
	w.wantTrust(t, "after retire", k2)
	tr.flowing(t, 40)
	w.reregisterAt(t, "SG")
	w.wantTrust(t, "after Singapore took the final anchor", k2)
	tr.flowing(t, 40)
	tr.flowing(t, 40)
	tr.end(t)

	audit, err := api.Audit(ctx, 0, 500)
	if err != nil {
		t.Fatal(err)
	}
	var steps []string
	for _, e := range audit.Items {
		if strings.Contains(e.Action, "configuration-signing key") {
			steps = append(steps, e.Action)
		}
	}
	if len(steps) != 3 {
		t.Errorf("audit log has %v, want prepare, activate and retire", steps)
	}

	// The retired key is no longer trusted, and a key it announces is
	// not learned: HCMC's gateway, opened again on its own with its
	// anchor pointing at an impostor that holds the retired key.
	genuine := fetchConf(t, w, "VN")
	cur, err := conf.Verify(genuine, vn.Anchor())
	if err != nil {
		t.Fatal(err)
	}
	mg := w.manifestGateway("VN/GOV/HCMC/gw1")
	gc, err := gateway.LoadConfig(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	impostorCert := w.authorityTLSCert(t, "VN")
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	rogue, _ := pki.GenerateKey(pki.Ed25519)
	rogueEntry, _ := conf.NewAnchorKey("VN-rogue", rogue.Public())
	forged := *cur
	forged.Serial = cur.Serial + 10
	forged.GeneratedAt = time.Now().UTC().Truncate(time.Millisecond)
	forged.ExpiresAt = forged.GeneratedAt.Add(10 * time.Minute)
	forged.NextKeys = []conf.AnchorKey{rogueEntry}
	byOld := signConf(t, &forged, oldKey, k1)
	forged.Serial++ // announcing itself
	byRogue := signConf(t, &forged, rogue, "VN-rogue")

	// One gateway sees both, in turn: what the first announced must not
	// have been learned when the second comes.
	var serve atomic.Pointer[[]byte]
	var hits atomic.Int64
	im := httptest.NewUnstartedServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		rw.Write(*serve.Load())
	}))
	im.TLS = &tls.Config{Certificates: []tls.Certificate{impostorCert}}
	im.StartTLS()
	defer im.Close()
	an, err := conf.ReadAnchor(origAnchor)
	if err != nil {
		t.Fatal(err)
	}
	an.URL = im.URL + "/conf" // same instance and keys: what was learned applies
	g := openWithAnchor(t, gc, mg.DataDir, an)
	for _, tc := range []struct {
		name string
		doc  []byte
	}{
		{"signed by the retired key, announcing another", byOld},
		{"signed by the key the retired one announced, announcing itself", byRogue},
	} {
		serve.Store(&tc.doc)
		before := hits.Load()
		if err := g.RefreshConf(ctx); !errors.Is(err, conf.ErrUntrusted) {
			t.Errorf("%s: refresh: %v, want %v", tc.name, err, conf.ErrUntrusted)
		}
		if hits.Load() == before {
			t.Errorf("%s: the impostor was not asked", tc.name)
		}
		if got := confSerial(g); got != cur.Serial {
			t.Errorf("%s: gateway holds serial %d, want %d", tc.name, got, cur.Serial)
		}
		if got := g.TrustedConfKeys("VN"); !slices.Equal(got, []string{k2}) {
			t.Errorf("%s: gateway trusts %v, want [%s]", tc.name, got, k2)
		}
	}
	g.Close()

	// After a compromise the operator installs an anchor with other
	// keys: what the gateway learned is dropped, and the configuration
	// it cached, which those keys do not sign, with it.
	fresh, _ := pki.GenerateKey(pki.Ed25519)
	freshEntry, _ := conf.NewAnchorKey("VN-fresh", fresh.Public())
	an.Keys = []conf.AnchorKey{freshEntry}
	g = openWithAnchor(t, gc, mg.DataDir, an)
	defer g.Close()
	if got := g.TrustedConfKeys("VN"); !slices.Equal(got, []string{"VN-fresh"}) {
		t.Errorf("after a new anchor the gateway trusts %v", got)
	}
	if g.Ready() {
		t.Error("ready on a configuration the new anchor does not sign")
	}
}

// signedBy returns the key id a configuration document names.
func signedBy(t *testing.T, doc []byte) string {
	t.Helper()
	kid, _, err := pki.ParseCompact(strings.TrimSpace(string(doc)))
	if err != nil {
		t.Fatal(err)
	}
	return kid
}

func signConf(t *testing.T, c *conf.Config, key crypto.Signer, kid string) []byte {
	t.Helper()
	s, err := pki.NewSigner(key, kid)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := conf.Sign(c, s)
	if err != nil {
		t.Fatal(err)
	}
	return doc
}

// openWithAnchor opens a gateway on its data directory, installed with
// the anchor an.
func openWithAnchor(t *testing.T, c *gateway.Config, dataDir string, an *conf.Anchor) *gateway.Gateway {
	t.Helper()
	path := filepath.Join(t.TempDir(), "anchor.json")
	if err := cfg.Write(path, an, 0o644); err != nil {
		t.Fatal(err)
	}
	cc := *c
	cc.AnchorFile = path
	cc.ClientListen, cc.PeerListen, cc.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	g, err := gateway.New(t.Context(), &cc, dataDir, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func confSerial(g *gateway.Gateway) uint64 { return g.ConfStatus()[0].Serial }

// pinAnchor makes a sandbox gateway read its anchor from a copy of the
// file as it is now, not from the authority's live one, as a gateway
// installed out of band would.
func pinAnchor(t *testing.T, mg sandbox.ManifestGateway, anchorPath string) {
	t.Helper()
	b, err := os.ReadFile(anchorPath)
	if err != nil {
		t.Fatal(err)
	}
	pinned := filepath.Join(t.TempDir(), "anchor.json")
	if err := os.WriteFile(pinned, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	raw, err := os.ReadFile(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatal(err)
	}
	c["anchor_file"] = pinned
	raw, _ = json.MarshalIndent(c, "", "  ")
	if err := os.WriteFile(mg.Config, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

// rekey has the authority issue gateway id's authentication and signing
// certificates anew, for the keys it holds, under the CA that issues now;
// registers the new authentication certificate, restarts the gateway on
// them and has every gateway refresh. It returns the serials of the
// signing certificates replaced.
func (w *world) rekey(t *testing.T, api *authority.Client, id string) []string {
	t.Helper()
	ctx := t.Context()
	mg := w.manifestGateway(id)
	var reg authority.GatewayInput
	for _, g := range w.current(t, api).Gateways {
		if g.ID.String() == id {
			reg = g
		}
	}
	csr, err := os.ReadFile(filepath.Join(mg.DataDir, "auth.csr"))
	if err != nil {
		t.Fatal(err)
	}
	host, _, _ := net.SplitHostPort(reg.Address)
	auth, err := api.Issue(ctx, authority.IssueInput{Profile: "auth", Subject: id, CSR: string(csr), Hosts: []string{host}})
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteFileAtomic(filepath.Join(mg.DataDir, "auth.crt"), []byte(auth.Certificate), 0o644); err != nil {
		t.Fatal(err)
	}
	var replaced []string
	csrs, _ := filepath.Glob(filepath.Join(mg.DataDir, "sign", "*.csr"))
	for _, p := range csrs {
		certPath := strings.TrimSuffix(p, ".csr") + ".crt"
		old, err := pki.ReadCert(certPath)
		if err != nil {
			t.Fatal(err)
		}
		member, _ := pki.MemberOf(old)
		csr, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sc, err := api.Issue(ctx, authority.IssueInput{Profile: "sign", Subject: member, CSR: string(csr)})
		if err != nil {
			t.Fatal(err)
		}
		if err := pki.WriteFileAtomic(certPath, []byte(sc.Certificate), 0o644); err != nil {
			t.Fatal(err)
		}
		replaced = append(replaced, fmt.Sprintf("%x", old.SerialNumber))
	}
	reg.AuthFP = auth.SHA256
	if err := api.PutGateway(ctx, reg); err != nil {
		t.Fatal(err)
	}
	if err := w.sb.RestartGateway(id); err != nil {
		t.Fatal(err)
	}
	w.refresh(t)
	return replaced
}

// chainsTo reports whether gateway id's authentication certificate was
// issued by ca.
func (w *world) chainsTo(t *testing.T, id string, ca *x509.Certificate) bool {
	t.Helper()
	c, err := pki.ReadCert(filepath.Join(w.manifestGateway(id).DataDir, "auth.crt"))
	if err != nil {
		t.Fatal(err)
	}
	return c.CheckSignatureFrom(ca) == nil
}

// TestRotateCAUnderTraffic rotates VN's instance CA while four loops
// call through two gateways. MPS's gateway re-keys under the new CA
// (it carries no loop: until in-place renewal a gateway restarts to take
// new certificates) and then exchanges with gateways that still hold
// old-CA certificates, at home and across the border, both ways.
// Retirement refuses while the others' certificates chain to the old CA;
// once they are re-issued and the old signing certificates revoked it
// succeeds, and traffic flows on the new CA alone. No call of the loops
// is refused.
func TestRotateCAUnderTraffic(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})
	api := w.adminAPI(t)
	ctx := t.Context()
	vn := w.authority("VN")
	oldCA := vn.CACert()
	tr := startTraffic(t, w)

	tr.flowing(t, 40)
	if _, err := api.Rotate(ctx, "ca", "prepare", authority.RotateInput{}); err != nil {
		t.Fatal(err)
	}
	w.refresh(t)
	tr.flowing(t, 40)
	if _, err := api.Rotate(ctx, "ca", "activate", authority.RotateInput{Force: true}); err != nil {
		t.Fatal(err)
	}
	newCA := vn.CACert()
	w.refresh(t)
	tr.flowing(t, 40)

	replaced := w.rekey(t, api, mpsGW)
	if !w.chainsTo(t, mpsGW, newCA) || !w.chainsTo(t, hcmcGW, oldCA) {
		t.Fatal("MPS's gateway should hold a new-CA certificate and HCMC's an old-CA one")
	}
	tr.flowing(t, 40)
	for _, c := range []struct {
		name, gw, client, path, purpose string
	}{
		{"old-CA HCMC to new-CA MPS", hcmcGW, hcmcClient, persons + "/079200001234", "administrative-procedure"},
		{"new-CA MPS to SG", mpsGW, mpsClient, sgScam + "/", "scam-investigation"},
		{"SG to new-CA MPS", spfGW, spfClient, vnScam + "/", "scam-investigation"},
	} {
		if resp, body := w.callAs(t, c.gw, c.client, c.path, c.purpose); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, body)
		}
	}

	_, err := api.Rotate(ctx, "ca", "retire", authority.RotateInput{})
	for _, want := range []string{"auth VN/GOV/HCMC/gw1", "auth VN/GOV/MOF/gw1", "sign VN/GOV/MPS serial " + replaced[0]} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("retirement with old-CA certificates in use: %v, want it to name %s", err, want)
		}
	}
	if err == nil || strings.Contains(err.Error(), "auth VN/GOV/MPS/gw1") {
		t.Errorf("retirement names MPS's replaced authentication certificate: %v", err)
	}
	tr.flowing(t, 40)
	tr.end(t)

	// The others re-key (restarting), their old signing certificates
	// are revoked, and the old CA can go.
	for _, g := range w.sb.Manifest.Gateways {
		if strings.HasPrefix(g.ID, "VN/") && g.ID != mpsGW {
			replaced = append(replaced, w.rekey(t, api, g.ID)...)
		}
	}
	for _, s := range replaced {
		if err := api.Revoke(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := api.Rotate(ctx, "ca", "retire", authority.RotateInput{}); err != nil {
		t.Fatalf("retirement once nothing in use chains to the old CA: %v", err)
	}
	w.refresh(t)
	if got := vn.Current().CACerts; len(got) != 1 {
		t.Errorf("%d CAs published after retirement", len(got))
	}
	tr = startTraffic(t, w)
	tr.flowing(t, 40)
	tr.end(t)
	if resp, body := w.callAs(t, hcmcGW, hcmcClient, persons+"/079200001234", "administrative-procedure"); resp.StatusCode != 200 {
		t.Errorf("HCMC to MPS on the new CA alone: %d %s", resp.StatusCode, body)
	}
}
