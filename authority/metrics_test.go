package authority

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

const opsToken = "ops-token-for-the-authority-tests"

// withOpsToken gives the authority an operations token, from a 0600 file.
func withOpsToken(t *testing.T) func(*Config) {
	p := filepath.Join(t.TempDir(), "ops-token")
	if err := os.WriteFile(p, []byte(opsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return func(c *Config) { c.OpsTokenFile = p }
}

// opsGet fetches a path of the operations listener over HTTP.
func (ta *testAuthority) opsGet(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), "GET", ta.ops+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scrape is the operations listener's /metrics, parsed.
type scrape map[string]*dto.MetricFamily

func (ta *testAuthority) scrape(t *testing.T) scrape {
	t.Helper()
	status, body := ta.opsGet(t, "/metrics", opsToken)
	if status != 200 {
		t.Fatalf("/metrics: %d %s", status, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// value is the counter or gauge name with exactly the labels given, or
// -1 when the series is absent.
func (s scrape) value(name string, labels ...string) float64 {
	f := s[name]
	if f == nil {
		return -1
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := want[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		if m.Counter != nil {
			return m.GetCounter().GetValue()
		}
		return m.GetGauge().GetValue()
	}
	return -1
}

// moved is how much a series grew between two scrapes (absent counts as
// zero).
func moved(before, after scrape, name string, labels ...string) float64 {
	return max(after.value(name, labels...), 0) - max(before.value(name, labels...), 0)
}

// TestMetrics drives every counted event through the authority's real
// API and reads the effect from its operations listener.
func TestMetrics(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", withOpsToken(t))
	before := ta.scrape(t) // answered: the listener serves
	if "http://"+ta.a.OpsAddr() != ta.ops {
		t.Errorf("OpsAddr() = %q, want the listener %s", ta.a.OpsAddr(), ta.ops)
	}
	if got := before.value("sampan_authority_certs_issued_total", "kind", "tls", "outcome", "issued"); got != 1 {
		t.Errorf("tls certificates issued at first start = %v, want 1", got)
	}

	// Publications: four registry changes and one explicit publication.
	api := registerMOF(t, ta)
	if err := ta.a.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Management calls refused: no or a wrong token, an auditor writing,
	// a body that is not JSON, a path that names no operation.
	member := `{"id":"VN/GOV/MOF","name":"MOF"}`
	for _, c := range []struct{ method, path, token, body string }{
		{"POST", "/api/v1/members", "", member},
		{"POST", "/api/v1/members", "wrong", member},
		{"POST", "/api/v1/members", auditorToken, member},
		{"POST", "/api/v1/members", adminToken, `{"id":`},
		{"GET", "/api/v1/nothing/here", adminToken, ""},
		{"DELETE", "/api/v1/members", adminToken, ""},
	} {
		if status, body := ta.raw(t, c.method, c.path, c.token, c.body); status < 400 || status >= 500 {
			t.Fatalf("%s %s: %d %s, want a refusal", c.method, c.path, status, body)
		}
	}
	// Accepted reads.
	for range 2 {
		if status, body := ta.raw(t, "GET", "/api/v1/configuration", auditorToken, ""); status != 200 {
			t.Fatalf("GET /api/v1/configuration: %d %s", status, body)
		}
	}
	// Certificates: one authentication certificate issued, one signing
	// request refused.
	issueGateway(t, ta, api)
	if _, err := api.Issue(t.Context(), IssueInput{Profile: "sign", Subject: "VN/GOV/MOF", CSR: "not a CSR"}); err == nil {
		t.Fatal("a signing certificate was issued for a bad CSR")
	}
	// Time-stamps: one issued, one refused.
	sum := sha256.Sum256([]byte("checkpoint"))
	good, _ := (&timestamp.Request{HashAlgorithm: crypto.SHA256, HashedMessage: sum[:]}).Marshal()
	hc := ta.client("").HTTP
	for _, body := range [][]byte{good, []byte("not DER")} {
		resp, err := hc.Post(ta.url+"/tsa", "application/timestamp-query", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}

	after := ta.scrape(t)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"sampan_authority_publications_total", nil, 5},
		{"sampan_authority_management_calls_total", []string{"call", "add_member", "outcome", "ok"}, 2},
		{"sampan_authority_management_calls_total", []string{"call", "add_subsystem", "outcome", "ok"}, 1},
		{"sampan_authority_management_calls_total", []string{"call", "put_gateway", "outcome", "ok"}, 1},
		{"sampan_authority_management_calls_total", []string{"call", "add_member", "outcome", "refused"}, 4},
		{"sampan_authority_management_calls_total", []string{"call", "other", "outcome", "refused"}, 2},
		{"sampan_authority_management_calls_total", []string{"call", "get_configuration", "outcome", "ok"}, 2},
		{"sampan_authority_management_calls_total", []string{"call", "issue_certificate", "outcome", "ok"}, 1},
		{"sampan_authority_management_calls_total", []string{"call", "issue_certificate", "outcome", "refused"}, 1},
		{"sampan_authority_management_calls_total", []string{"call", "add_member", "outcome", "error"}, 0},
		{"sampan_authority_certs_issued_total", []string{"kind", "auth", "outcome", "issued"}, 1},
		{"sampan_authority_certs_issued_total", []string{"kind", "auth", "outcome", "refused"}, 0},
		{"sampan_authority_certs_issued_total", []string{"kind", "sign", "outcome", "refused"}, 1},
		{"sampan_authority_certs_issued_total", []string{"kind", "sign", "outcome", "issued"}, 0},
		{"sampan_authority_certs_issued_total", []string{"kind", "tls", "outcome", "issued"}, 0},
		{"sampan_authority_tsa_tokens_total", []string{"outcome", "issued"}, 1},
		{"sampan_authority_tsa_tokens_total", []string{"outcome", "refused"}, 1},
	} {
		if got := moved(before, after, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v moved by %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	if n := len(after["sampan_authority_management_calls_total"].GetMetric()); n != 8 {
		t.Errorf("%d management call series, want 8 (one per call and outcome seen)", n)
	}

	// The configuration gauges describe what /conf serves.
	cur := ta.a.Current()
	if got := after.value("sampan_authority_conf_serial"); got != float64(cur.Serial) {
		t.Errorf("conf_serial = %v, want %d", got, cur.Serial)
	}
	if got, want := after.value("sampan_authority_conf_bytes"), float64(len(ta.get(t, "/conf"))); got != want {
		t.Errorf("conf_bytes = %v, want %v (the size of /conf)", got, want)
	}
	if got := after.value("sampan_authority_conf_expiry_seconds"); got <= 0 || got > ta.cfg.ConfValidity.D().Seconds() {
		t.Errorf("conf_expiry_seconds = %v, want in (0, %v]", got, ta.cfg.ConfValidity.D().Seconds())
	}
	if after.value("go_goroutines") <= 0 || after.value("process_open_fds") <= 0 {
		t.Error("the Go and process collectors are missing")
	}
}

// TestOpsListener: health and readiness answer without the token, the
// metrics only with it, and readiness follows the published
// configuration's expiry.
func TestOpsListener(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", withOpsToken(t))
	for _, c := range []struct {
		name, path, token string
		want              int
	}{
		{"health without token", "/healthz", "", 200},
		{"readiness without token", "/readyz", "", 200},
		{"metrics without token", "/metrics", "", 401},
		{"metrics with another token", "/metrics", adminToken, 401},
		{"metrics with the token", "/metrics", opsToken, 200},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, body := ta.opsGet(t, c.path, c.token)
			if status != c.want {
				t.Fatalf("status = %d, want %d (%s)", status, c.want, body)
			}
			if status == 401 && strings.Contains(body, "sampan_authority") {
				t.Errorf("refusal shows metrics: %s", body)
			}
		})
	}

	var ready struct {
		Status string
		Detail struct{ Serial uint64 }
	}
	_, body := ta.opsGet(t, "/readyz", "")
	if err := json.Unmarshal([]byte(body), &ready); err != nil || ready.Status != "ready" || ready.Detail.Serial != ta.a.Current().Serial {
		t.Errorf("/readyz = %s, want ready at serial %d", body, ta.a.Current().Serial)
	}
	// An expired configuration makes the authority not ready.
	p := *ta.a.current.Load()
	expired := *p.cfg
	expired.ExpiresAt = time.Now().Add(-time.Second)
	p.cfg = &expired
	ta.a.current.Store(&p)
	if status, body := ta.opsGet(t, "/readyz", ""); status != 503 || !strings.Contains(body, "expired") {
		t.Errorf("/readyz with an expired configuration: %d %s, want 503", status, body)
	}
	if got := ta.scrape(t).value("sampan_authority_conf_expiry_seconds"); got >= 0 {
		t.Errorf("conf_expiry_seconds of an expired configuration = %v, want negative", got)
	}
	if err := ta.a.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if status, body := ta.opsGet(t, "/readyz", ""); status != 200 {
		t.Errorf("/readyz after publishing anew: %d %s", status, body)
	}
}

// TestOpsTokenFileChecked: the authority refuses to start with a token
// file that is missing, readable by others or too short.
func TestOpsTokenFileChecked(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), mode)
		os.Chmod(p, mode)
		return p
	}
	for _, c := range []struct{ name, path string }{
		{"missing", filepath.Join(dir, "missing")},
		{"readable by others", write("open", opsToken, 0o644)},
		{"readable by the group", write("group", opsToken, 0o640)},
		{"too short", write("short", "abc", 0o600)},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := &Config{Instance: "VN", OpsTokenFile: c.path, Operators: []Operator{{Name: "alice", TokenSHA256: HashToken(adminToken), Role: RoleAdmin}}}
			cfg.SetDefaults()
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			adir := filepath.Join(dir, "authority-"+strings.ReplaceAll(c.name, " ", "-"))
			a, err := New(t.Context(), cfg, adir, slog.New(slog.NewTextHandler(io.Discard, nil)))
			if err == nil {
				a.Close()
				t.Fatal("the authority started")
			}
			if !strings.HasPrefix(err.Error(), "ops_token_file: ") {
				t.Errorf("error %q does not name ops_token_file", err)
			}
			if _, err := os.Stat(adir); err == nil {
				t.Errorf("%s was created before the token was checked", adir)
			}
		})
	}
}

// TestOpsConfig: ops_listen defaults to a fixed loopback port, and a bad
// or clashing address is refused naming the field.
func TestOpsConfig(t *testing.T) {
	base := func() *Config {
		return &Config{Instance: "VN", Operators: []Operator{{Name: "alice", TokenSHA256: HashToken(adminToken), Role: RoleAdmin}}}
	}
	c := base()
	c.SetDefaults()
	if c.OpsListen != "127.0.0.1:4001" {
		t.Errorf("ops_listen default = %q", c.OpsListen)
	}
	for _, tc := range []struct{ name, listen, ops, want string }{
		{"no port", "127.0.0.1:4000", "127.0.0.1", "ops_listen: "},
		{"same as listen", "127.0.0.1:4000", "127.0.0.1:4000", "ops_listen: 127.0.0.1:4000 is also listen"},
		{"both on a system-chosen port", "127.0.0.1:0", "127.0.0.1:0", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := base()
			c.Listen, c.OpsListen = tc.listen, tc.ops
			c.SetDefaults()
			err := c.Validate()
			if tc.want == "" {
				if err != nil {
					t.Errorf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRunServesOps: Run opens the operations listener beside the API and
// closes both when its context ends.
func TestRunServesOps(t *testing.T) {
	c := &Config{Instance: "VN", Listen: "127.0.0.1:0", OpsListen: "127.0.0.1:0", Operators: []Operator{{Name: "alice", TokenSHA256: HashToken(adminToken), Role: RoleAdmin}}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := New(t.Context(), c, t.TempDir(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		addr = a.OpsAddr()
	}
	if addr == "" {
		t.Fatal("OpsAddr stayed empty")
	}
	ta := &testAuthority{ops: "http://" + addr}
	if status, body := ta.opsGet(t, "/metrics", ""); status != 200 || !strings.Contains(body, "sampan_authority_publications_total 1") {
		t.Errorf("/metrics: %d %s", status, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
	if a.OpsAddr() != "" {
		t.Errorf("OpsAddr after Run = %q, want empty", a.OpsAddr())
	}
}
