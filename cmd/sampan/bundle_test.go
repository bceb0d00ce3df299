package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/sandbox"
)

func TestEvidenceBundle(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb"), TimestampInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	var dataDir, url string
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/MOF/gw1" {
			dataDir = g.DataDir
		}
		if g.ID == "VN/GOV/HCMC/gw1" {
			url = g.ClientURL
		}
	}
	for _, id := range []string{"before", "bundle-1", "after"} {
		req, _ := http.NewRequest(http.MethodGet, url+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
		req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
		req.Header.Set("X-Road-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("exchange %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	// Wait for a time-stamp covering all three.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dataDir, "log", msglog.TimestampsDir, "000000000003.tsr"))
		if len(m) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no time-stamp over the three records")
		}
		time.Sleep(50 * time.Millisecond)
	}
	caFile := sb.Manifest.Authorities[0].CAFile
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	g := &Globals{LogLevel: "error", LogFormat: "text"}
	out := filepath.Join(t.TempDir(), "bundle")
	if err := (&LogExportCmd{Dir: dataDir, ID: "bundle-1", Out: out}).Run(g); err != nil {
		t.Fatalf("export: %v", err)
	}
	rep, err := msglog.VerifyBundle(out)
	if err != nil {
		t.Fatalf("verify-bundle: %v", err)
	}
	if rep.Record.XRoadID != "bundle-1" || !rep.Signatures || !rep.Timestamped || rep.LeafIndex != 1 {
		t.Errorf("report %+v", rep)
	}
	if err := (&LogVerifyBundleCmd{Bundle: out}).Run(g); err != nil {
		t.Fatal(err)
	}
	if err := (&LogExportCmd{Dir: dataDir, ID: "no-such-id", Out: filepath.Join(t.TempDir(), "x")}).Run(g); err == nil {
		t.Error("exported an unknown id")
	}
	// Standard tools accept the standard files.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		res, err := exec.Command(openssl, "ts", "-verify", "-token_in", "-in", filepath.Join(out, "timestamp.tsr"),
			"-data", filepath.Join(out, "stamped-checkpoint.txt"), "-CAfile", caFile, "-untrusted", filepath.Join(out, "tsa.pem")).CombinedOutput()
		if err != nil || !strings.Contains(string(res), "Verification: OK") {
			t.Errorf("openssl: %v %s", err, res)
		}
		for _, c := range []string{"request-signer.pem", "response-signer.pem"} {
			if res, err := exec.Command(openssl, "verify", "-CAfile", caFile, filepath.Join(out, c)).CombinedOutput(); err != nil {
				t.Errorf("openssl verify %s: %v %s", c, err, res)
			}
		}
	}
	// Any edited byte in any file fails.
	entries, _ := os.ReadDir(out)
	if len(entries) < 12 {
		t.Fatalf("bundle has %d files", len(entries))
	}
	for _, e := range entries {
		p := filepath.Join(out, e.Name())
		orig, _ := os.ReadFile(p)
		for _, at := range []int{0, len(orig) / 2, len(orig) - 2} {
			b := append([]byte(nil), orig...)
			b[at] ^= 0x01
			os.WriteFile(p, b, 0o644)
			if _, err := msglog.VerifyBundle(out); err == nil {
				t.Errorf("%s with byte %d edited still verifies", e.Name(), at)
			}
		}
		os.WriteFile(p, orig, 0o644)
	}
	if _, err := msglog.VerifyBundle(out); err != nil {
		t.Fatalf("restored bundle: %v", err)
	}
}
