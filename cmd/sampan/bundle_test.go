package main

import (
	"errors"
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
	// Clients choose X-Road-Ids: "twice" names two exchanges.
	for _, id := range []string{"before", "bundle-1", "after", "twice", "twice"} {
		req, _ := http.NewRequest(http.MethodGet, url+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
		req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
		req.Header.Set("X-Road-Id", id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("exchange %s: %v %v", id, resp, err)
		}
		resp.Body.Close()
	}
	// Wait for a time-stamp covering all five.
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, _ := filepath.Glob(filepath.Join(dataDir, "log", msglog.TimestampsDir, "*.tsr"))
		if len(m) > 0 && filepath.Base(m[len(m)-1]) >= "000000000005.tsr" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no time-stamp over the five records")
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
	t.Run("shared X-Road-Id", func(t *testing.T) { testSharedID(t, g, dataDir) })
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

// testSharedID: two exchanges with one X-Road-Id are both provable. An
// export by the id alone names both and exports neither; chosen by
// request hash or by time, each exports and its bundle verifies.
func testSharedID(t *testing.T, g *Globals, dataDir string) {
	err := (&LogExportCmd{Dir: dataDir, ID: "twice", Out: filepath.Join(t.TempDir(), "x")}).Run(g)
	var ae *msglog.AmbiguousError
	if !errors.As(err, &ae) || len(ae.Candidates) != 2 {
		t.Fatalf("export of a shared id: %v, want both candidates", err)
	}
	for _, c := range ae.Candidates {
		if !strings.Contains(err.Error(), c.RequestHash) || !strings.Contains(err.Error(), c.RequestAt.UTC().Format(time.RFC3339Nano)) {
			t.Errorf("the error does not list %s at %s: %v", c.RequestHash, c.RequestAt, err)
		}
	}
	if ae.Candidates[0].RequestHash == ae.Candidates[1].RequestHash {
		t.Fatal("the two exchanges have one request hash")
	}
	for i, c := range ae.Candidates {
		for how, cmd := range map[string]*LogExportCmd{
			"hash": {Dir: dataDir, ID: "twice", RequestHash: c.RequestHash},
			"time": {Dir: dataDir, ID: "twice", At: c.RequestAt.UTC().Format(time.RFC3339Nano)},
		} {
			cmd.Out = filepath.Join(t.TempDir(), "bundle")
			if err := cmd.Run(g); err != nil {
				t.Fatalf("export %d by %s: %v", i, how, err)
			}
			rep, err := msglog.VerifyBundle(cmd.Out)
			if err != nil {
				t.Fatalf("bundle %d by %s: %v", i, how, err)
			}
			if rep.Record.RequestHash != c.RequestHash || rep.Record.XRoadID != "twice" {
				t.Errorf("bundle %d by %s holds %s, want %s", i, how, rep.Record.RequestHash, c.RequestHash)
			}
		}
	}
	if err := (&LogExportCmd{Dir: dataDir, ID: "twice", RequestHash: "no-such-hash", Out: filepath.Join(t.TempDir(), "y")}).Run(g); !errors.Is(err, msglog.ErrNotFound) {
		t.Errorf("export of an unknown request hash: %v", err)
	}
}
