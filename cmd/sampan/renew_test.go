package main

import (
	"bytes"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestGatewayRenewCommands: an operator renews MOF's gateway in one go
// (`sampan gateway renew`) and HCMC's step by step as two operators
// would hand files to each other (prepare, request, install, switch,
// complete); each gateway then serves under its renewed certificate,
// and calls between them work throughout.
func TestGatewayRenewCommands(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), ConfRefresh: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	m := sb.Manifest
	auth := m.Authorities[0]
	api := authorityAPI{URL: auth.URL, TLSCA: auth.TLSCAFile, TokenFile: auth.TokenFile}
	gws := map[string]*gateway.Gateway{}
	for _, g := range sb.Gateways {
		gws[g.ID().String()] = g
	}
	manifest := func(id string) sandbox.ManifestGateway {
		for _, g := range m.Gateways {
			if g.ID == id {
				return g
			}
		}
		t.Fatalf("no gateway %s", id)
		return sandbox.ManifestGateway{}
	}
	hcmc, mof := manifest("VN/GOV/HCMC/gw1"), manifest("VN/GOV/MOF/gw1")
	call := func(when string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, hcmc.ClientURL+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
		req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", when, resp.StatusCode, b)
		}
	}
	call("before")

	oldMOF := gws[mof.ID].AuthFingerprint()
	var out bytes.Buffer
	all := &GatewayRenewAllCmd{authorityAPI: api, gatewayOps: gatewayOps{OpsURL: mof.OpsURL}, Dir: mof.DataDir, Config: mof.Config,
		Settle: 3 * time.Second, RevokeOld: true, Timeout: time.Minute}
	if err := all.run(t.Context(), &out); err != nil {
		t.Fatalf("gateway renew: %v\n%s", err, out.String())
	}
	if fp := gws[mof.ID].AuthFingerprint(); fp == oldMOF || !strings.Contains(out.String(), "renewal complete: VN/GOV/MOF/gw1 is registered with "+fp) {
		t.Errorf("MOF uses %s (was %s) after:\n%s", fp, oldMOF, out.String())
	}
	time.Sleep(2 * time.Second) // HCMC's next poll
	call("after MOF's renewal")

	oldHCMC := gws[hcmc.ID].AuthFingerprint()
	dir := t.TempDir()
	reqFile, issued := filepath.Join(dir, "renewal-request.json"), filepath.Join(dir, "renewal-issued.json")
	g := &Globals{}
	for _, step := range []interface{ Run(*Globals) error }{
		&GatewayRenewPrepareCmd{ID: hcmc.ID, Dir: hcmc.DataDir, Out: reqFile},
		&GatewayRenewRequestCmd{authorityAPI: api, Request: reqFile, Out: issued},
		&GatewayRenewInstallCmd{ID: hcmc.ID, Dir: hcmc.DataDir, Issued: issued},
		&GatewayRenewSwitchCmd{gatewayOps: gatewayOps{OpsURL: hcmc.OpsURL}, Timeout: time.Minute},
		&GatewayRenewCompleteCmd{authorityAPI: api, ID: hcmc.ID, RevokeOld: true},
	} {
		if err := step.Run(g); err != nil {
			t.Fatalf("%T: %v", step, err)
		}
	}
	if fp := gws[hcmc.ID].AuthFingerprint(); fp == oldHCMC {
		t.Errorf("HCMC still uses %s", fp)
	}
	time.Sleep(2 * time.Second)
	call("after HCMC's renewal")
	for id, g := range gws {
		if !g.Ready() {
			t.Errorf("%s is not ready", id)
		}
	}
}
