package authority

import (
	"bytes"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// auditRows returns the audit log as lines
// "operator|action|detail|outcome".
func (ta *testAuthority) auditRows(t *testing.T) []string {
	t.Helper()
	rows, err := ta.a.db.QueryContext(t.Context(), `SELECT operator, action, detail, outcome FROM audit_log ORDER BY rowid`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var o, a, d, oc string
		rows.Scan(&o, &a, &d, &oc)
		out = append(out, o+"|"+a+"|"+d+"|"+oc)
	}
	return out
}

func containsRow(rows []string, parts ...string) bool {
	for _, r := range rows {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(r, p)
		}
		if ok {
			return true
		}
	}
	return false
}

const (
	expiredToken = "expired-operator-token-0123456789"
	wrongToken   = "wrong-operator-token-9876543210"
)

func withExpiredOperator(c *Config) {
	past := time.Now().Add(-time.Hour)
	c.Operators = append(c.Operators, Operator{Name: "former", TokenSHA256: HashToken(expiredToken), Role: RoleAdmin, ExpiresAt: &past})
}

// TestOperatorTokens: an expired token and a revoked one are refused; a
// revocation is a management call that holds across a restart; calls
// refused to an operator land in the audit log, those without a valid
// token only in the process log and the metrics, and no token (nor its
// hash) is written anywhere.
func TestOperatorTokens(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	ta := startAuthorityLog(t, dir, "", logs, withExpiredOperator)
	get := func(ta *testAuthority, token string) int {
		s, _ := ta.raw(t, http.MethodGet, "/api/v1/configuration", token, "")
		return s
	}
	if s := get(ta, expiredToken); s != 401 {
		t.Errorf("expired token: %d, want 401", s)
	}
	if s := get(ta, auditorToken); s != 200 {
		t.Fatalf("auditor before revocation: %d", s)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/operators/alice/revoke", auditorToken, ""); s != 403 {
		t.Errorf("auditor revoking: %d %s, want 403", s, b)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/operators/nobody/revoke", adminToken, ""); s != 404 {
		t.Errorf("revoking an unknown operator: %d %s, want 404", s, b)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/operators/audit/revoke", adminToken, ""); s != 200 {
		t.Fatalf("revoke: %d %s", s, b)
	}
	if s := get(ta, auditorToken); s != 401 {
		t.Errorf("revoked token: %d, want 401", s)
	}
	if s, b := ta.raw(t, http.MethodGet, "/api/v1/operators", adminToken, ""); s != 200 || !strings.Contains(b, `"name": "audit",
    "role": "auditor",
    "revoked": true`) {
		t.Errorf("operators: %d %s", s, b)
	}
	if s := get(ta, wrongToken); s != 401 {
		t.Errorf("unknown token: %d, want 401", s)
	}
	// A call that fails inside, with the admin token.
	ta.raw(t, http.MethodPost, "/api/v1/members", adminToken, `{"id":"VN/GOV/MOF","name":"x","extra":"`+adminToken+`"}`)

	rows := ta.auditRows(t)
	for _, want := range [][]string{
		{"alice|revoke operator token|audit|ok"},
		{"audit|revoke operator|POST /api/v1/operators/alice/revoke from ", "|refused: operator audit (role auditor) may not do this"},
		{"alice|revoke operator|POST /api/v1/operators/nobody/revoke", `|refused: no operator "nobody"`},
		{"alice|add member|POST /api/v1/members", "|refused: request body: "},
	} {
		if !containsRow(rows, want...) {
			t.Errorf("audit log lacks %q:\n%s", want, strings.Join(rows, "\n"))
		}
	}
	if len(rows) != 4 {
		t.Errorf("audit log holds %d entries, want 4 (none for calls without a valid token):\n%s", len(rows), strings.Join(rows, "\n"))
	}
	for _, want := range []string{"status=403", "why=\"expired token\"", "why=\"revoked token\"", "why=\"unknown token\""} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("process log lacks the refusal %s:\n%s", want, logs)
		}
	}
	s := ta.scrape(t)
	for _, r := range []string{"expired_token", "revoked_token", "unknown_token"} {
		if v := s.value("sampan_authority_unauthenticated_calls_total", "reason", r); v != 1 {
			t.Errorf("unauthenticated calls, %s: %v, want 1", r, v)
		}
	}

	// The revocation holds across a restart.
	addr := ta.cfg.Listen
	ta.stop()
	ta2 := startAuthorityLog(t, dir, addr, logs, withExpiredOperator)
	if s := get(ta2, auditorToken); s != 401 {
		t.Errorf("revoked token after restart: %d, want 401", s)
	}
	if s := get(ta2, adminToken); s != 200 {
		t.Errorf("admin after restart: %d", s)
	}
	all := logs.String() + strings.Join(ta2.auditRows(t), "\n")
	for _, tok := range []string{adminToken, auditorToken, expiredToken, wrongToken} {
		if strings.Contains(all, tok) || strings.Contains(all, HashToken(tok)) {
			t.Errorf("token %q or its hash is in a log", tok)
		}
	}
}

// TestFailedCallsThrottled: after repeated failures an address gets 429
// with Retry-After, even with a good token, until the window ends.
func TestFailedCallsThrottled(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.authFailures, c.authWindow = 3, 1500*time.Millisecond })
	for i := range 3 {
		if s, _ := ta.raw(t, http.MethodGet, "/api/v1/configuration", wrongToken, ""); s != 401 {
			t.Fatalf("failure %d: %d, want 401", i, s)
		}
	}
	for _, tok := range []string{wrongToken, adminToken} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, ta.url+"/api/v1/configuration", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := ta.client(tok).HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
			t.Errorf("after 3 failures: %d, Retry-After %q; want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	time.Sleep(1600 * time.Millisecond)
	if s, _ := ta.raw(t, http.MethodGet, "/api/v1/configuration", adminToken, ""); s != 200 {
		t.Errorf("after the window: %d, want 200", s)
	}
}

func TestConfigOperatorPositions(t *testing.T) {
	c := &Config{Instance: "VN", Operators: []Operator{
		{Name: "alice", TokenSHA256: HashToken("a"), Role: RoleAdmin},
		{Name: "bob", TokenSHA256: HashToken("b"), Role: RoleAuditor},
		{Name: "alice", TokenSHA256: HashToken("c"), Role: RoleAuditor},
	}}
	c.SetDefaults()
	if err := c.Validate(); err == nil || err.Error() != `operators[2].name duplicates operators[0].name ("alice")` {
		t.Fatalf("got %v", err)
	}
	c.Operators[2] = Operator{Name: "carol", TokenSHA256: HashToken("c"), Role: "root"}
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "operators[2].role:") {
		t.Fatalf("got %v", err)
	}
}
