package authority

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/digitorus/timestamp"

	"github.com/sampan-exchange/sampan/pki"
)

// TestTSATokensVerifyWithOpenSSL asks the authority's TSA for a token the
// way any RFC 3161 client does, and has OpenSSL verify it against the CA.
func TestTSATokensVerifyWithOpenSSL(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl not installed")
	}
	ta := startAuthority(t, t.TempDir(), "")
	dir := t.TempDir()
	data := filepath.Join(dir, "checkpoint")
	os.WriteFile(data, []byte("sampan-log:VN/GOV/MOF/gw1\n42\nroot\n"), 0o644)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(openssl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	query := filepath.Join(dir, "req.tsq")
	run("ts", "-query", "-data", data, "-sha256", "-cert", "-out", query)
	q, _ := os.ReadFile(query)
	hc := ta.client(adminToken).HTTP
	resp, err := hc.Post(ta.url+"/tsa", "application/timestamp-query", bytes.NewReader(q))
	if err != nil {
		t.Fatal(err)
	}
	reply, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	tsr := filepath.Join(dir, "resp.tsr")
	os.WriteFile(tsr, reply, 0o644)
	ca := filepath.Join(dir, "ca.pem")
	os.WriteFile(ca, pki.EncodeCert(ta.a.CACert().Raw), 0o644)
	tsaPEM := filepath.Join(dir, "tsa.pem")
	os.WriteFile(tsaPEM, pki.EncodeCert(ta.a.TSACert().Raw), 0o644)
	if out := run("ts", "-verify", "-in", tsr, "-queryfile", query, "-CAfile", ca, "-untrusted", tsaPEM); !strings.Contains(out, "Verification: OK") {
		t.Fatalf("openssl: %s", out)
	}
	// The same token, checked against other data, fails.
	other := filepath.Join(dir, "other")
	os.WriteFile(other, []byte("something else"), 0o644)
	if out, err := exec.Command(openssl, "ts", "-verify", "-in", tsr, "-data", other, "-CAfile", ca, "-untrusted", tsaPEM).CombinedOutput(); err == nil {
		t.Fatalf("token verified for other data: %s", out)
	}
}

func TestTSARefusesBadRequests(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	hc := ta.client(adminToken).HTTP
	sha1Req, _ := timestamp.CreateRequest(strings.NewReader("x"), &timestamp.RequestOptions{Hash: crypto.SHA1})
	sum := sha256.Sum256([]byte("x"))
	good, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]}).Marshal()
	for name, body := range map[string][]byte{"junk": []byte("not DER"), "SHA-1": sha1Req, "too large": bytes.Repeat([]byte{0}, 8<<10)} {
		resp, err := hc.Post(ta.url+"/tsa", "application/timestamp-query", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: status %d", name, resp.StatusCode)
		}
		if _, err := timestamp.ParseResponse(b); err == nil {
			t.Errorf("%s: a token was issued", name)
		}
	}
	resp, err := hc.Post(ta.url+"/tsa", "application/timestamp-query", bytes.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	ts, err := timestamp.ParseResponse(b)
	if err != nil || !bytes.Equal(ts.HashedMessage, sum[:]) {
		t.Fatalf("good request: %v", err)
	}
}
