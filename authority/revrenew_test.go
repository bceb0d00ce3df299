package authority

import (
	"crypto/x509/pkix"
	"net/http"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// TestReplacedCertificateEndsRenewal: registering a gateway with an
// authentication certificate other than its current or next one (the
// way a compromised gateway's certificate is replaced) ends a renewal
// under way: the next certificate of that renewal is no longer
// published, so it no longer identifies the gateway to peers.
func TestReplacedCertificateEndsRenewal(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := registerMOF(t, ta)
	old := issueGateway(t, ta, api)
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	sub := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	put := func(fp string) {
		t.Helper()
		if err := api.PutGateway(t.Context(), GatewayInput{ID: gid, Address: "127.0.0.1:8443", AuthFP: fp, Clients: []ident.ClientID{sub}}); err != nil {
			t.Fatal(err)
		}
	}
	put(pki.Fingerprint(old.c.Raw))
	out, err := api.RenewGateway(t.Context(), gid, RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{}, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	// A re-registration that keeps the certificate keeps the renewal.
	put(pki.Fingerprint(old.c.Raw))
	if g := ta.a.Current().Gateway(gid); g.NextAuthFP != out.Auth.SHA256 {
		t.Fatalf("re-registered with the same certificate: next %q, want %s", g.NextAuthFP, out.Auth.SHA256)
	}
	fresh, err := api.Issue(t.Context(), IssueInput{Profile: "auth", Subject: gid.String(), CSR: csrPEM(t, newKey(t), pkix.Name{}, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	put(fresh.SHA256)
	c := ta.a.Current()
	if g := c.Gateway(gid); g.AuthFP != fresh.SHA256 || g.NextAuthFP != "" {
		t.Errorf("after replacing the certificate: auth %s next %q, want %s and none", g.AuthFP, g.NextAuthFP, fresh.SHA256)
	}
	if c.GatewayByFingerprint(out.Auth.SHA256) != nil {
		t.Error("the abandoned renewal's certificate still identifies the gateway")
	}
	// Nor does taking the certificate off and registering one again
	// bring it back.
	if _, err := api.RenewGateway(t.Context(), gid, RenewInput{AuthCSR: csrPEM(t, newKey(t), pkix.Name{}, nil, nil)}); err != nil {
		t.Fatal(err)
	}
	put("")
	put(fresh.SHA256)
	if g := ta.a.Current().Gateway(gid); g.NextAuthFP != "" {
		t.Errorf("after unregistering and registering the certificate again: next %q survives", g.NextAuthFP)
	}
}

// TestAuditorRefusalsBounded: an auditor calling admin-only routes in a
// loop cannot grow the audit log without bound: past the failed-call
// threshold an address's refusals are still refused, and not audited.
func TestAuditorRefusalsBounded(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.authFailures = 5 })
	before := len(ta.auditRows(t))
	for i := range 50 {
		s, b := ta.raw(t, http.MethodPost, "/api/v1/members", auditorToken, `{"id":"VN/GOV/X`+string(rune('A'+i%26))+`","name":"x"}`)
		if s != http.StatusForbidden {
			t.Fatalf("call %d: %d %s", i, s, b)
		}
	}
	if n := len(ta.auditRows(t)) - before; n > 5 {
		t.Errorf("an auditor's 50 refused calls wrote %d audit rows; want at most the failed-call threshold (5)", n)
	}
}

// TestReadAPIProbes: the read APIs answer nothing without a token, keep
// pages within bounds, and answer an odd or huge id with a JSON error
// rather than a scan, a 5xx or another object.
func TestReadAPIProbes(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.authFailures = 1000 })
	api := registerMOF(t, ta)
	f := issueGateway(t, ta, api)
	for _, p := range []string{"/api/v1/certificates/" + f.serial, "/api/v1/members", "/api/v1/gateways/VN/GOV/MOF/gw1", "/api/v1/audit", "/api/v1/operators"} {
		if s, b := ta.raw(t, http.MethodGet, p, "", ""); s != http.StatusUnauthorized || strings.Contains(b, "BEGIN") || strings.Contains(b, "VN/GOV") {
			t.Errorf("GET %s without a token: %d %s", p, s, b)
		}
	}
	for _, tc := range []struct {
		path   string
		status int
	}{
		{"/api/v1/members?limit=1001", 400},
		{"/api/v1/members?limit=0", 400},
		{"/api/v1/members?limit=-1", 400},
		{"/api/v1/members?after=-1", 400},
		{"/api/v1/members?after=99999999999999999999", 400},
		{"/api/v1/members?limit=1e3", 400},
		{"/api/v1/members/VN%2F..%2F..%2Fapi", 404},
		{"/api/v1/members/VN/GOV/MOF%00", 404},
		{"/api/v1/members/VN%2FGOV%2F%25", 404},
		{"/api/v1/members/" + strings.Repeat("A", 60000), 404},
		{"/api/v1/certificates/" + f.serial + "%20OR%201=1", 404},
		{"/api/v1/certificates/%25", 404},
		{"/api/v1/gateways/VN/GOV/MOF/gw1/renew", 404},
	} {
		s, b := ta.raw(t, http.MethodGet, tc.path, auditorToken, "")
		if s != tc.status || !strings.Contains(b, `"error":`) {
			t.Errorf("GET %.80s: %d %.200s, want %d with a JSON error", tc.path, s, b, tc.status)
		}
	}
	if s, b := ta.raw(t, http.MethodGet, "/api/v1/members/VN%2FGOV%2FMOF", auditorToken, ""); s != 200 || !strings.Contains(b, `"VN/GOV/MOF"`) {
		t.Errorf("GET a member by its encoded id: %d %s", s, b)
	}
	if s, b := ta.raw(t, http.MethodGet, "/api/v1/certificates/"+strings.ToUpper(f.serial), auditorToken, ""); s != 200 || strings.Contains(b, "PRIVATE") {
		t.Errorf("GET a certificate: %d %s", s, b)
	}
}

// TestReloadKeepsRevocations: a token revoked through the API stays
// refused whatever a reload names it: another name, the admin role, the
// hash in capitals.
func TestReloadKeepsRevocations(t *testing.T) {
	ta, c, path := startFromFile(t, withOpsToken(t))
	c.Operators = append(c.Operators, Operator{Name: "carol", TokenSHA256: HashToken(carolToken), Role: RoleAuditor})
	writeConfig(t, path, c)
	if s, b := ta.reloadCall(t, opsToken); s != 200 {
		t.Fatalf("reload: %d %s", s, b)
	}
	if s, b := ta.raw(t, http.MethodPost, "/api/v1/operators/carol/revoke", adminToken, ""); s != 200 {
		t.Fatalf("revoke carol: %d %s", s, b)
	}
	for _, o := range []Operator{
		{Name: "carol", TokenSHA256: HashToken(carolToken), Role: RoleAdmin},
		{Name: "dave", TokenSHA256: HashToken(carolToken), Role: RoleAdmin},
		{Name: "erin", TokenSHA256: strings.ToUpper(HashToken(carolToken)), Role: RoleAdmin},
	} {
		c.Operators = append(c.Operators[:2:2], o)
		writeConfig(t, path, c)
		if s, b := ta.reloadCall(t, opsToken); s != 200 {
			t.Fatalf("reload naming %s: %d %s", o.Name, s, b)
		}
		if s, b := ta.raw(t, http.MethodPost, "/api/v1/members", carolToken, `{"id":"VN/GOV/X","name":"x"}`); s != http.StatusUnauthorized {
			t.Errorf("the revoked token, named %s (admin) by a reload: %d %s", o.Name, s, b)
		}
	}
}
