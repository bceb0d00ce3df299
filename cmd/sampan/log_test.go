package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/sandbox"
)

func TestLogVerifyCommand(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	var dataDir, url string
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			dataDir, url = g.DataDir, g.ClientURL
		}
	}
	req, _ := http.NewRequest(http.MethodGet, url+"/r1/VN/GOV/MOF/business-registry/companies/0100109106", nil)
	req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("exchange: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	g := &Globals{LogLevel: "error", LogFormat: "text"}
	if err := (&LogVerifyCmd{Dir: dataDir}).Run(g); err != nil {
		t.Fatalf("sound log: %v", err)
	}
	// A damaged write-ahead segment kept aside at a start fails the check,
	// naming where to look; moved away, the log verifies again.
	kept := filepath.Join(dataDir, "log", "wal", "0000000000000099.seg.damaged")
	if err := os.WriteFile(kept, []byte("SMPNWAL1 damaged"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := (&LogVerifyCmd{Dir: dataDir}).Run(g); err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), filepath.Join("log", "wal")) {
		t.Fatalf("with a damaged segment: %v", err)
	}
	if err := os.Remove(kept); err != nil {
		t.Fatal(err)
	}
	if err := (&LogVerifyCmd{Dir: dataDir}).Run(g); err != nil {
		t.Fatalf("after moving it away: %v", err)
	}
	cp := filepath.Join(dataDir, "log", "tiles", "checkpoint")
	b, err := os.ReadFile(cp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cp, []byte(strings.Replace(string(b), "\n1\n", "\n2\n", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := (&LogVerifyCmd{Dir: dataDir}).Run(g); err == nil {
		t.Fatal("a checkpoint claiming another size verified")
	}
}
