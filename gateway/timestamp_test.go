package gateway_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestTimestampsAndGrace: checkpoints get RFC 3161 tokens from the
// authority; through a TSA outage the gateways serve for the grace
// period, then refuse, and serve again once the TSA is back.
func TestTimestampsAndGrace(t *testing.T) {
	w := startWorld(t, sandbox.Options{TimestampInterval: 200 * time.Millisecond, TimestampGrace: 2 * time.Second})
	ok := func() bool {
		resp, _ := w.do(t, call{path: companies + "/0100109106"})
		return resp.StatusCode == 200
	}
	if !ok() {
		t.Fatal("first exchange failed")
	}
	hcmcLog := filepath.Join(w.manifestGateway("VN/GOV/HCMC/gw1").DataDir, "log")
	tokens := func() []string {
		m, _ := filepath.Glob(filepath.Join(hcmcLog, msglog.TimestampsDir, "*.tsr"))
		return m
	}
	waitFor(t, 5*time.Second, "a time-stamp token", func() bool { return len(tokens()) > 0 })

	// OpenSSL accepts the token over the checkpoint it was made for.
	if openssl, err := exec.LookPath("openssl"); err == nil {
		tok := tokens()[0]
		ca := filepath.Join(t.TempDir(), "ca.pem")
		caPEM, _ := os.ReadFile(w.sb.Manifest.Authorities[0].CAFile)
		os.WriteFile(ca, caPEM, 0o644)
		out, err := exec.Command(openssl, "ts", "-verify", "-in", tok, "-token_in", "-data", strings.TrimSuffix(tok, ".tsr")+".checkpoint",
			"-CAfile", ca, "-untrusted", filepath.Join(hcmcLog, msglog.TimestampsDir, "tsa.pem")).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Verification: OK") {
			t.Errorf("openssl ts -verify: %v\n%s", err, out)
		}
	}

	// The TSA goes away; the gateways keep serving within the grace.
	if err := w.sb.StopAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	outage := time.Now()
	if !ok() {
		t.Fatal("refused at once when the TSA went away")
	}
	// Past the grace, with new records to stamp, they refuse.
	var resp_ []byte
	waitFor(t, 10*time.Second, "refusal past the grace period", func() bool {
		resp, body := w.do(t, call{path: companies + "/0100109106"})
		resp_ = body
		return resp.StatusCode == 500 && resp.Header.Get(r1.HeaderError) != ""
	})
	// The grace runs from the last token, at most one interval (200ms)
	// before the outage began.
	if since := time.Since(outage); since < 1700*time.Millisecond {
		t.Errorf("refused %v after the outage began, before the 2s grace", since)
	}
	if !strings.Contains(string(resp_), "TimestampingFailed") {
		t.Errorf("refusal %s, want a TimestampingFailed type", resp_)
	}

	// The TSA returns: service resumes by itself.
	if err := w.sb.RestartAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "recovery after the TSA returned", ok)

	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := msglog.Verify(t.Context(), hcmcLog, "", nil)
	if err != nil {
		t.Fatalf("log with time-stamps does not verify: %v", err)
	}
	if rep.Timestamps == 0 {
		t.Error("verify saw no time-stamps")
	}
}
