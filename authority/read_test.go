package authority

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/store"
)

// TestReadAPIs: auditors list the certificates issued and read the audit
// log, refusals included, a page at a time; pages neither repeat nor
// skip; bad paging parameters are refused with 400, callers without a
// token with 401.
func TestReadAPIs(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	ta.raw(t, http.MethodPost, "/api/v1/members", auditorToken, `{"id":"VN/GOV/MOF","name":"Ministry of Finance"}`) // refused: audited
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/members", adminToken, `{"id":"VN/GOV/MOF","name":"Ministry of Finance"}`); s != http.StatusCreated {
		t.Fatalf("add member: %d %s", s, b)
	}

	api := ta.client(adminToken)
	if err := api.PutGateway(t.Context(), GatewayInput{ID: ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}, Address: "127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	kept, gone := issueGateway(t, ta, api), issueGateway(t, ta, api)
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/certificates/"+gone.serial+"/revoke", adminToken, ""); s != 200 {
		t.Fatalf("revoke: %d %s", s, b)
	}
	s, b := ta.raw(t, http.MethodGet, "/api/v1/certificates", auditorToken, "")
	var certs Page[CertificateInfo]
	if err := json.Unmarshal([]byte(b), &certs); s != 200 || err != nil {
		t.Fatalf("certificates: %d %s (%v)", s, b, err)
	}
	status := map[string]string{}
	for _, c := range certs.Items {
		if c.Serial == "" || c.Fingerprint == "" || c.NotAfter == "" || c.Use != "auth" {
			t.Errorf("certificate %+v", c)
		}
		status[c.Serial] = c.Status
	}
	if status[kept.serial] != "valid" || status[gone.serial] != "revoked" {
		t.Errorf("statuses %v; want %s valid, %s revoked", status, kept.serial, gone.serial)
	}

	want := len(ta.auditRows(t))
	var got []AuditEntry
	after := int64(0)
	for range want + 2 {
		s, b := ta.raw(t, http.MethodGet, fmt.Sprintf("/api/v1/audit?limit=1&after=%d", after), auditorToken, "")
		var p Page[AuditEntry]
		if err := json.Unmarshal([]byte(b), &p); s != 200 || err != nil {
			t.Fatalf("audit page: %d %s", s, b)
		}
		got = append(got, p.Items...)
		if p.Next == 0 {
			break
		}
		after = p.Next
	}
	if len(got) != want {
		t.Fatalf("paged audit log holds %d entries, the table %d", len(got), want)
	}
	refusals, adds := 0, 0
	for i, e := range got {
		if i > 0 && e.ID <= got[i-1].ID {
			t.Errorf("entry %d (id %d) after id %d", i, e.ID, got[i-1].ID)
		}
		switch e.Outcome {
		case "refused: operator audit (role auditor) may not do this":
			refusals++
		case "ok":
			if e.Operator == "alice" && e.Action == "add member" {
				adds++
			}
		}
	}
	if refusals == 0 || adds == 0 {
		t.Errorf("audit log lacks the refusal or the change: %+v", got)
	}

	for _, q := range []string{"?limit=0", "?limit=1001", "?limit=x", "?after=-1", "?after=x"} {
		if s, b := ta.raw(t, http.MethodGet, "/api/v1/audit"+q, auditorToken, ""); s != http.StatusBadRequest {
			t.Errorf("audit%s: %d %s, want 400", q, s, b)
		}
	}
	if s, _ := ta.raw(t, http.MethodGet, "/api/v1/certificates", "", ""); s != http.StatusUnauthorized {
		t.Errorf("certificates without a token: %d, want 401", s)
	}
}

// TestCertExpiryMetric: the authority reports how long each of its own
// certificates has left, on its operations listener.
func TestCertExpiryMetric(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	s := ta.scrape(t)
	for use, min := range map[string]float64{"ca": 5 * 365 * 86400, "tls_ca": 30 * 86400, "tls": 30 * 86400, "tsa": 30 * 86400} {
		if v := s.value("sampan_authority_cert_expiry_seconds", "use", use); v < min {
			t.Errorf("%s certificate: %v seconds left, want at least %v", use, v, min)
		}
	}
}

// TestAuditRefusals: a change refused to an operator — for the role, or
// because it failed — is in the audit log with who, what, when and
// "refused: <reason>", and the registry is unchanged; a failed read
// writes nothing, nor does any number of calls without a valid token.
func TestAuditRefusals(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.authFailures = 1000 })
	api := ta.client(adminToken)
	if err := api.AddMember(t.Context(), MemberInput{ID: mustID(t, "VN/GOV/MOF"), Name: "MOF"}); err != nil {
		t.Fatal(err)
	}
	serial := ta.a.Current().Serial
	read := func() []AuditEntry {
		p, err := ta.client(auditorToken).Audit(t.Context(), 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		return p.Items
	}
	before := len(read())
	for range 50 {
		ta.raw(t, http.MethodPost, "/api/v1/members", "", `{"id":"VN/GOV/X","name":"x"}`)
		ta.raw(t, http.MethodPost, "/api/v1/members", wrongToken, `{"id":"VN/GOV/X","name":"x"}`)
	}
	ta.raw(t, http.MethodGet, "/api/v1/members/VN%2FGOV%2FNOPE", auditorToken, "")
	if n := len(read()); n != before {
		t.Fatalf("calls without a valid token or failed reads wrote %d audit entries", n-before)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/members", adminToken, `{"id":"VN/GOV/MOF","name":"again"}`); s != 409 {
		t.Fatalf("duplicate member: %d %s", s, b)
	}
	if s, b := ta.raw(t, http.MethodPut, "/api/v1/gateways", auditorToken, `{"id":"VN/GOV/MOF/gw1","address":"127.0.0.1:1","clients":[]}`); s != 403 {
		t.Fatalf("auditor registering a gateway: %d %s", s, b)
	}
	got := read()[before:]
	want := []AuditEntry{
		{Operator: "alice", Action: "add member", Detail: "POST /api/v1/members from ", Outcome: "refused: member VN/GOV/MOF is already registered"},
		{Operator: "audit", Action: "put gateway", Detail: "PUT /api/v1/gateways from ", Outcome: "refused: operator audit (role auditor) may not do this"},
	}
	if len(got) != len(want) {
		t.Fatalf("audit entries of the refusals: %+v", got)
	}
	for i, w := range want {
		g := got[i]
		if g.Operator != w.Operator || g.Action != w.Action || !strings.HasPrefix(g.Detail, w.Detail) || g.Outcome != w.Outcome || g.At == "" {
			t.Errorf("entry %d = %+v, want %+v", i, g, w)
		}
	}
	if ta.a.Current().Serial != serial {
		t.Error("a refused change published a configuration")
	}
}

// TestAuditOutcomeUpgrade: entries written before the audit log had an
// outcome read "ok" for changes, and the status for refusals.
func TestAuditOutcomeUpgrade(t *testing.T) {
	dir := t.TempDir()
	i := slices.IndexFunc(migrations, func(m store.Migration) bool { return strings.Contains(m.Up, "ADD COLUMN outcome") })
	db, err := store.Open(t.Context(), filepath.Join(dir, registryFile), migrations[:i])
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`INSERT INTO audit_log VALUES ('2026-01-01T00:00:00Z', 'alice', 'add member', 'VN/GOV/MOF')`,
		`INSERT INTO audit_log VALUES ('2026-01-01T00:00:01Z', '-', 'refused 401', 'GET /api/v1/configuration from 127.0.0.1:1: unknown token')`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	ta := startAuthority(t, dir, "")
	p, err := ta.client(auditorToken).Audit(t.Context(), 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Items) != 2 || p.Items[0].Outcome != "ok" || p.Items[1].Outcome != "refused: status 401" {
		t.Errorf("upgraded entries: %+v", p.Items)
	}
}
