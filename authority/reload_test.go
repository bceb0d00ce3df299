package authority

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/internal/cfg"
)

// startFromFile runs a real authority, as startAuthority does, from a
// configuration file it loaded with LoadConfig; it returns the
// configuration as written, to change and write again.
func startFromFile(t *testing.T, opts ...func(*Config)) (*testAuthority, *Config, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
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
	for _, o := range opts {
		o(c)
	}
	path := filepath.Join(t.TempDir(), "authority.json")
	writeConfig(t, path, c)
	lc, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := New(t.Context(), lc, dir, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAuthority{a: a, url: lc.PublicURL, ops: "http://" + opsLn.Addr().String(), dir: dir, cfg: lc, cancel: cancel, done: make(chan error, 1)}
	go func() { ta.done <- a.ServeWithOps(ctx, ln, opsLn) }()
	t.Cleanup(ta.stop)
	return ta, c, path
}

func writeConfig(t *testing.T, path string, c *Config) {
	t.Helper()
	if err := cfg.Write(path, c, 0o600); err != nil {
		t.Fatal(err)
	}
}

// reloadCall asks the operations listener for a reload.
func (ta *testAuthority) reloadCall(t *testing.T, token string, header ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, ta.ops+"/config/reload", nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

const carolToken = "carol-operator-token-0123456789"

// TestReload: POST /config/reload applies the operators, validities,
// member classes and time-stamp rate at once — a removed or expired
// operator's token is refused from the next call —; a file that changes
// a restart-only setting, does not load, does not validate, or drops a
// member class in use changes nothing and says why; the outcome is
// counted and an applied change audited.
func TestReload(t *testing.T) {
	ta, c, path := startFromFile(t, withOpsToken(t))
	api := registerMOF(t, ta)
	get := func(token string) int {
		s, _ := ta.raw(t, http.MethodGet, "/api/v1/members", token, "")
		return s
	}
	if get(auditorToken) != 200 || get(carolToken) != 401 {
		t.Fatal("before the reload: the auditor is refused, or carol is not")
	}

	past := time.Now().Add(-time.Minute)
	c.Operators = []Operator{
		{Name: "alice", TokenSHA256: HashToken(adminToken), Role: RoleAdmin},
		{Name: "carol", TokenSHA256: HashToken(carolToken), Role: RoleAuditor},
		{Name: "former", TokenSHA256: HashToken(expiredToken), Role: RoleAdmin, ExpiresAt: &past},
	}
	c.CertValidity = cfg.Duration(48 * time.Hour)
	c.MemberClasses = []string{"GOV", "COM", "ORG", "EDU"}
	c.TSARate = 3
	writeConfig(t, path, c)
	s, b := ta.reloadCall(t, opsToken)
	var res ReloadResult
	if err := json.Unmarshal([]byte(b), &res); s != 200 || err != nil {
		t.Fatalf("reload: %d %s", s, b)
	}
	if got := strings.Join(res.Changed, ","); got != "cert_validity,member_classes,operators,tsa_requests_per_minute" || res.Operators != 3 {
		t.Errorf("reload applied %+v", res)
	}
	if s := get(auditorToken); s != 401 {
		t.Errorf("a removed operator's token: %d, want 401", s)
	}
	if s := get(expiredToken); s != 401 {
		t.Errorf("an operator's token the file made expired: %d, want 401", s)
	}
	if s := get(carolToken); s != 200 {
		t.Errorf("an added operator's token: %d, want 200", s)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/members", carolToken, `{"id":"VN/EDU/UNI","name":"university"}`); s != 403 {
		t.Errorf("an added auditor writing: %d %s, want 403", s, b)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/members", adminToken, `{"id":"VN/EDU/UNI","name":"university"}`); s != 201 {
		t.Errorf("a member of the added class: %d %s", s, b)
	}
	if left := time.Until(issueGateway(t, ta, api).c.NotAfter); left > 49*time.Hour || left < 47*time.Hour {
		t.Errorf("a certificate issued after the reload lasts %v, want 48h", left)
	}
	tsaStatus := 0
	for range 4 {
		resp, _ := postTSA(t, ta, tsaRequest(t, nil))
		tsaStatus = resp.StatusCode
	}
	if tsaStatus != http.StatusTooManyRequests {
		t.Errorf("fourth time-stamp request in a minute at 3 a minute: %d, want 429", tsaStatus)
	}
	if rows := ta.auditRows(t); !containsRow(rows, "-|reload configuration|cert_validity, member_classes, operators, tsa_requests_per_minute|ok") {
		t.Errorf("audit log lacks the reload:\n%s", strings.Join(rows, "\n"))
	}

	// Refused reloads: each leaves carol in and erin out.
	const erinToken = "erin-operator-token-0123456789"
	withErin := func(c Config) Config {
		c.Operators = append(append([]Operator{}, c.Operators...), Operator{Name: "erin", TokenSHA256: HashToken(erinToken), Role: RoleAdmin})
		return c
	}
	other, _ := net.Listen("tcp", "127.0.0.1:0")
	other.Close()
	for _, tc := range []struct {
		name  string
		write func()
		want  []string
	}{
		{"restart-only settings", func() {
			n := withErin(*c)
			n.Listen, n.TSAPolicyOID = other.Addr().String(), "1.2.3.4"
			writeConfig(t, path, &n)
		}, []string{"listen, public_url, tsa_policy_oid changed, which only a restart applies", "running configuration stays"}},
		{"not JSON", func() { os.WriteFile(path, []byte(`{"instance":`), 0o600) }, []string{"authority.json", "running configuration stays"}},
		{"unknown field", func() {
			n := withErin(*c)
			writeConfig(t, path, &n)
			b, _ := os.ReadFile(path)
			os.WriteFile(path, []byte(strings.Replace(string(b), "{", `{"operator":[],`, 1)), 0o600)
		}, []string{`unknown field "operator"`}},
		{"invalid", func() {
			n := withErin(*c)
			n.ConfValidity, n.ConfInterval = cfg.Duration(time.Minute), cfg.Duration(time.Minute)
			writeConfig(t, path, &n)
		}, []string{"conf_interval: must be positive and shorter than conf_validity"}},
		{"member class in use dropped", func() {
			n := withErin(*c)
			n.MemberClasses = []string{"COM", "ORG", "EDU"}
			writeConfig(t, path, &n)
		}, []string{"member_classes: GOV is the class of registered member VN/GOV/MOF"}},
		{"file gone", func() { os.Remove(path) }, []string{"no such file"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.write()
			s, b := ta.reloadCall(t, opsToken)
			if s != http.StatusConflict {
				t.Errorf("reload: %d %s, want 409", s, b)
			}
			var e apiError
			json.Unmarshal([]byte(b), &e)
			for _, w := range tc.want {
				if !strings.Contains(e.Error, w) {
					t.Errorf("reload answered %s; want it to say %q", b, w)
				}
			}
			if get(erinToken) != 401 || get(carolToken) != 200 {
				t.Error("a refused reload changed the operators")
			}
			if ta.a.config().CertValidity.D() != 48*time.Hour || len(ta.a.config().MemberClasses) != 4 {
				t.Error("a refused reload changed the settings")
			}
		})
	}

	// The call changes state: a web page may not make it, nor a caller
	// without the operations token.
	writeConfig(t, path, c)
	if s, b := ta.reloadCall(t, opsToken, "Origin", "https://example.org"); s != http.StatusForbidden {
		t.Errorf("reload from a web page: %d %s, want 403", s, b)
	}
	if s, b := ta.reloadCall(t, ""); s != http.StatusUnauthorized {
		t.Errorf("reload without the operations token: %d %s, want 401", s, b)
	}
	sc := ta.scrape(t)
	if ok, refused := sc.value("sampan_authority_config_reloads_total", "result", "ok"), sc.value("sampan_authority_config_reloads_total", "result", "refused"); ok != 1 || refused != 6 {
		t.Errorf("reloads counted: ok %v, refused %v; want 1 and 6", ok, refused)
	}

	// A shorter conf_interval applies to the re-publication timer at once.
	c.ConfInterval = cfg.Duration(200 * time.Millisecond)
	writeConfig(t, path, c)
	if s, b := ta.reloadCall(t, opsToken); s != 200 || !strings.Contains(b, "conf_interval") {
		t.Fatalf("reload conf_interval: %d %s", s, b)
	}
	serial := ta.a.Current().Serial
	deadline := time.Now().Add(5 * time.Second)
	for ta.a.Current().Serial < serial+3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := ta.a.Current().Serial; got < serial+3 {
		t.Errorf("serial %d five seconds after conf_interval became 200ms (was %d)", got, serial)
	}
}

// TestReloadWithoutFile: an authority whose configuration came from no
// file has no reload call, and Reload says why.
func TestReloadWithoutFile(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	if s, _ := ta.reloadCall(t, ""); s != http.StatusNotFound && s != http.StatusMethodNotAllowed {
		t.Errorf("POST /config/reload without a file: %d, want none", s)
	}
	if _, err := ta.a.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "not loaded from a file") {
		t.Errorf("Reload without a file: %v", err)
	}
}

// TestReloadAIObligations: the country's AI obligations are applied by a
// reload: the next configuration carries the rules as the file now
// names them, and a file naming another country's rules is refused and
// changes nothing.
func TestReloadAIObligations(t *testing.T) {
	ta, c, path := startFromFile(t, func(c *Config) {
		c.AIObligations = &obligations.Rules{Country: "VN", Tiers: map[string][]string{"high": {obligations.ConformityEvaluation}, "medium": {}, "low": {}}}
	})
	c.AIObligations.RecognisedEvaluations = []string{"SG"}
	writeConfig(t, path, c)
	if _, err := ta.a.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := ta.a.Publish(t.Context()); err != nil {
		t.Fatal(err)
	}
	if r := ta.a.Current().AIObligations; r == nil || !r.Recognises("SG") {
		t.Fatalf("after the reload the configuration publishes %+v", r)
	}
	c.AIObligations.Country = "SG"
	writeConfig(t, path, c)
	if _, err := ta.a.Reload(t.Context()); err == nil || !strings.Contains(err.Error(), "ai_obligations.country") {
		t.Fatalf("another country's rules: %v", err)
	}
	if r := ta.a.Current().AIObligations; r == nil || r.Country != "VN" {
		t.Errorf("a refused reload changed the rules: %+v", r)
	}
}
