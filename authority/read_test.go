package authority

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

// TestReadAPIs: auditors list the certificates issued and read the audit
// log, refusals included, a page at a time; pages neither repeat nor
// skip; bad paging parameters are refused with 400, callers without a
// token with 401.
func TestReadAPIs(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	ta.raw(t, http.MethodGet, "/api/v1/configuration", wrongToken, "") // refused: audited
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
		switch e.Action {
		case "refused 401":
			refusals++
		}
		if e.Operator == "alice" && e.Action != "" {
			adds++
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
