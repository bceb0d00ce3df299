package authority

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

const (
	adminToken   = "admin-token-for-tests"
	auditorToken = "auditor-token-for-tests"
)

type testAuthority struct {
	a      *Authority
	url    string
	ops    string // base URL of the operations listener
	dir    string
	cfg    *Config
	cancel context.CancelFunc
	done   chan error
}

// startAuthority runs a real authority over HTTPS on a loopback port.
func startAuthority(t *testing.T, dir, listen string, opts ...func(*Config)) *testAuthority {
	t.Helper()
	return startAuthorityLog(t, dir, listen, io.Discard, opts...)
}

// startAuthorityLog is startAuthority with the process log written to w.
func startAuthorityLog(t *testing.T, dir, listen string, w io.Writer, opts ...func(*Config)) *testAuthority {
	t.Helper()
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	opsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &Config{Instance: "VN", Listen: ln.Addr().String(), OpsListen: opsLn.Addr().String(), Operators: []Operator{
		{Name: "alice", TokenSHA256: HashToken(adminToken), Role: RoleAdmin},
		{Name: "audit", TokenSHA256: HashToken(auditorToken), Role: RoleAuditor},
	}}
	c.SetDefaults()
	for _, o := range opts {
		o(c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(t.Context(), c, dir, slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAuthority{a: a, url: c.PublicURL, ops: "http://" + opsLn.Addr().String(), dir: dir, cfg: c, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.ServeWithOps(ctx, ln, opsLn) }()
	t.Cleanup(ta.stop)
	return ta
}

func (ta *testAuthority) stop() {
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	<-ta.done
	ta.a.Close()
	ta.cancel = nil
}

func (ta *testAuthority) client(token string) *Client {
	return NewClient(ta.url, token, ta.a.TLSCACert())
}

func (ta *testAuthority) raw(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	c := ta.client(token)
	req, _ := http.NewRequestWithContext(t.Context(), method, ta.url+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestManagementAPIAuthentication(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	for _, tc := range []struct {
		name, method, path, token string
		want                      int
	}{
		{"no token", "GET", "/api/v1/configuration", "", 401},
		{"unknown token", "GET", "/api/v1/configuration", "nope", 401},
		{"auditor reads", "GET", "/api/v1/configuration", auditorToken, 200},
		{"auditor may not write", "POST", "/api/v1/members", auditorToken, 403},
		{"admin reads", "GET", "/api/v1/configuration", adminToken, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ta.raw(t, tc.method, tc.path, tc.token, `{"id":"VN/GOV/MOF","name":"MOF"}`)
			if status != tc.want {
				t.Errorf("status = %d, want %d (%s)", status, tc.want, body)
			}
			if status >= 400 {
				var e struct{ Error string }
				if json.Unmarshal([]byte(body), &e) != nil || e.Error == "" {
					t.Errorf("error body %q is not {\"error\": …}", body)
				}
			}
		})
	}
}

func TestRefusalsChangeNothing(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := ta.client(adminToken)
	ctx := t.Context()
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	if err := api.AddMember(ctx, MemberInput{ID: mof, Name: "Ministry of Finance"}); err != nil {
		t.Fatal(err)
	}
	serial := ta.a.Current().Serial
	key, _ := pki.GenerateKey(pki.ECDSAP256)
	csr, _ := pki.NewCSR(key, "VN/GOV/MOF/gw1")
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
	}{
		{"duplicate member", "POST", "/api/v1/members", `{"id":"VN/GOV/MOF","name":"again"}`, 409},
		{"unknown class", "POST", "/api/v1/members", `{"id":"VN/XXX/A","name":"a"}`, 400},
		{"foreign member", "POST", "/api/v1/members", `{"id":"SG/GOV/A","name":"a"}`, 400},
		{"subsystem of unknown member", "POST", "/api/v1/subsystems", `{"id":"VN/GOV/NOBODY/x"}`, 400},
		{"unknown field", "POST", "/api/v1/members", `{"id":"VN/GOV/MPS","name":"a","extra":1}`, 400},
		{"malformed JSON", "POST", "/api/v1/members", `{"id":`, 400},
		{"gateway with a fingerprint never issued", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/gw1","address":"127.0.0.1:1","auth_cert_sha256":"` + strings.Repeat("ab", 32) + `","clients":[]}`, 400},
		{"CSR that does not parse", "POST", "/api/v1/certificates", `{"profile":"auth","subject":"VN/GOV/MOF/gw1","csr":"junk"}`, 400},
		{"sign profile for unknown member", "POST", "/api/v1/certificates", `{"profile":"sign","subject":"VN/GOV/NOBODY","csr":` + jsonString(string(csr)) + `}`, 400},
		{"unknown profile", "POST", "/api/v1/certificates", `{"profile":"root","subject":"VN/GOV/MOF/gw1","csr":` + jsonString(string(csr)) + `}`, 400},
		{"federate with itself", "PUT", "/api/v1/federation", `{"anchor":` + mustJSON(t, ta.a.Anchor()) + `}`, 400},
		{"remove unknown federation", "DELETE", "/api/v1/federation/SG", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := ta.raw(t, tc.method, tc.path, adminToken, tc.body)
			if status != tc.want {
				t.Errorf("status = %d, want %d (%s)", status, tc.want, body)
			}
			if got := ta.a.Current().Serial; got != serial {
				t.Errorf("serial moved from %d to %d", serial, got)
			}
		})
	}
}

func TestConfigurationPublishing(t *testing.T) {
	dir := t.TempDir()
	ta := startAuthority(t, dir, "")
	anchor, err := conf.ReadAnchor(ta.a.AnchorPath())
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: anchor.TLSRoots()}}}
	get := func(etag string) (*http.Response, []byte) {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, anchor.URL, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	resp, doc := get("")
	c1, err := conf.Verify(doc, anchor)
	if err != nil {
		t.Fatalf("published document does not verify against the anchor: %v", err)
	}
	if resp2, _ := get(resp.Header.Get("ETag")); resp2.StatusCode != http.StatusNotModified {
		t.Errorf("conditional GET: %d, want 304", resp2.StatusCode)
	}
	mps := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS"}
	if err := ta.client(adminToken).AddMember(t.Context(), MemberInput{ID: mps, Name: "MPS"}); err != nil {
		t.Fatal(err)
	}
	_, doc2 := get(resp.Header.Get("ETag"))
	c2, err := conf.Verify(doc2, anchor)
	if err != nil {
		t.Fatal(err)
	}
	if c2.Serial <= c1.Serial || c2.Member(mps) == nil {
		t.Errorf("after a change: serial %d (was %d), member present %v", c2.Serial, c1.Serial, c2.Member(mps) != nil)
	}

	// A restart keeps the CA, the anchor and the registry, and the
	// serial only goes up.
	kid := anchor.Keys[0].KeyID
	caFP := pki.Fingerprint(ta.a.CACert().Raw)
	addr := ta.cfg.Listen
	ta.stop()
	ta2 := startAuthority(t, dir, addr)
	an2, _ := conf.ReadAnchor(ta2.a.AnchorPath())
	if an2.Keys[0].KeyID != kid || pki.Fingerprint(ta2.a.CACert().Raw) != caFP {
		t.Error("restart changed the anchor or the CA")
	}
	if c3 := ta2.a.Current(); c3.Serial <= c2.Serial || c3.Member(mps) == nil {
		t.Errorf("after restart: serial %d (was %d), member present %v", c3.Serial, c2.Serial, c3.Member(mps) != nil)
	}
	for _, k := range []string{"ca.key", "conf-sign.key", "tls.key"} {
		fi, err := os.Stat(filepath.Join(dir, k))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, %v; want 0600", k, fi.Mode().Perm(), err)
		}
	}
}

func jsonString(s string) string { b, _ := json.Marshal(s); return string(b) }

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
