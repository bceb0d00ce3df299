package authority

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
)

// TestPolicyAPI: data classes, agreements, rules and suspensions go into
// the published configuration; bad input is refused with a message naming
// the fault and changes nothing (the serial does not move).
func TestPolicyAPI(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	api := ta.client(adminToken)
	ctx := t.Context()
	mps := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS"}
	if err := api.AddMember(ctx, MemberInput{ID: mps, Name: "MPS"}); err != nil {
		t.Fatal(err)
	}
	if err := api.AddSubsystem(ctx, SubsystemInput{ID: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS", Subsystem: "cybercrime"}}); err != nil {
		t.Fatal(err)
	}
	scam, _ := ident.ParseService("VN/GOV/MPS/cybercrime/scam-reports")
	rules, _ := policy.National("VN")
	if err := api.PutRules(ctx, rules); err != nil {
		t.Fatal(err)
	}
	if err := api.PutServiceClass(ctx, policy.ServiceClass{ID: scam, Class: policy.ClassConfidential, Flags: []string{policy.FlagPersonal}}); err != nil {
		t.Fatal(err)
	}
	ag := policy.Agreement{ID: "VN-SG-SCAM-1", Consumers: []string{"SG/GOV/SPF/anti-scam"}, Services: []ident.ServiceID{scam},
		Purposes: []string{"scam-investigation"}, Destinations: []string{"SG"}, ValidFrom: time.Now().Add(-time.Hour).UTC(),
		RetentionDays: 90, QuotaPerDay: 1000, References: []policy.Reference{{Kind: policy.RefTransferAssessment, Ref: "MPS-TIA-2026-014"}}, Status: policy.StatusActive}
	if err := api.PutAgreement(ctx, ag); err != nil {
		t.Fatal(err)
	}
	c := ta.a.Current()
	if c.Policy == nil || len(c.Policy.Agreements) != 1 || len(c.Policy.Rules) != len(rules) || len(c.Policy.Services) != 1 {
		t.Fatalf("published policy %+v", c.Policy)
	}
	serial := c.Serial

	for _, bad := range []struct{ method, path, body, want string }{
		{"PUT", "/api/v1/policy/services", `{"id":"VN/GOV/MPS/cybercrime/scam-reports","data_class":"secret"}`, `unknown value "secret"`},
		{"PUT", "/api/v1/policy/services", `{"id":"VN/GOV/MOF/registry/x","data_class":"public"}`, "subsystem VN/GOV/MOF/registry is not registered"},
		{"PUT", "/api/v1/policy/services", `{"id":"VN/GOV/MPS/cybercrime/scam-reports","data_class":"public","colour":"red"}`, `unknown field "colour"`},
		{"PUT", "/api/v1/policy/rules", `[{"id":"r","applies_at":"both","when":{"flow":"upstream"},"effect":"deny"}]`, `unknown value "upstream"`},
		{"PUT", "/api/v1/policy/agreements", `{"id":"x","consumers":["SG/GOV/SPF"],"services":["VN/GOV/MPS/cybercrime/scam-reports"],"purposes":["p"],"valid_from":"2026-01-01T00:00:00Z","status":"pending"}`, `unknown value "pending"`},
		{"POST", "/api/v1/policy/agreements/nope/status", `{"status":"suspended","reason":"r"}`, `no agreement "nope"`},
		{"POST", "/api/v1/policy/agreements/VN-SG-SCAM-1/status", `{"status":"paused","reason":"r"}`, `unknown value "paused"`},
		{"POST", "/api/v1/policy/agreements/VN-SG-SCAM-1/status", `{"status":"suspended"}`, `say why`},
		{"PUT", "/api/v1/policy/suspensions", `{"id":"s","when":{"flow":"cross-border"},"reason":"r"}`, `name the data classes or flags`},
		{"DELETE", "/api/v1/policy/suspensions/none", ``, `no suspension "none"`},
	} {
		code, raw := ta.raw(t, bad.method, bad.path, adminToken, bad.body)
		var e apiError
		json.Unmarshal([]byte(raw), &e)
		body := e.Error
		if code < 400 || code >= 500 || !strings.Contains(body, bad.want) {
			t.Errorf("%s %s %s: %d %s, want a 4xx naming %q", bad.method, bad.path, bad.body, code, body, bad.want)
		}
	}
	if got := ta.a.Current().Serial; got != serial {
		t.Fatalf("refused changes moved the serial from %d to %d", serial, got)
	}
	// An auditor may read the compiled policy, not change it.
	if code, body := ta.raw(t, "GET", "/api/v1/policy", auditorToken, ""); code != http.StatusOK || !strings.Contains(body, "vn-core-stays") || !strings.Contains(body, "forbid") {
		t.Errorf("GET policy: %d %s", code, body)
	}
	if code, _ := ta.raw(t, "PUT", "/api/v1/policy/suspensions", auditorToken, `{"id":"s","when":{"flow":"cross-border","flags":["personal"]},"reason":"r"}`); code != http.StatusForbidden {
		t.Errorf("auditor suspended flows: %d", code)
	}

	// The stop switches and their release.
	if err := api.SetAgreementStatus(ctx, "VN-SG-SCAM-1", StatusInput{Status: policy.StatusSuspended, Reason: "audit of the recipient"}); err != nil {
		t.Fatal(err)
	}
	if st := ta.a.Current().Policy.Agreements[0].Status; st != policy.StatusSuspended {
		t.Errorf("status %s after suspension", st)
	}
	if err := api.PutSuspension(ctx, policy.Suspension{ID: "personal-out", When: policy.When{Flow: "cross-border", Flags: []string{policy.FlagPersonal}}, Reason: "incident response"}); err != nil {
		t.Fatal(err)
	}
	if n := len(ta.a.Current().Policy.Suspensions); n != 1 {
		t.Errorf("%d suspensions", n)
	}
	if err := api.RemoveSuspension(ctx, "personal-out"); err != nil {
		t.Fatal(err)
	}
	if err := api.SetAgreementStatus(ctx, "VN-SG-SCAM-1", StatusInput{Status: policy.StatusTerminated, Reason: "ended"}); err != nil {
		t.Fatal(err)
	}
	if err := api.SetAgreementStatus(ctx, "VN-SG-SCAM-1", StatusInput{Status: policy.StatusActive, Reason: "again"}); err == nil {
		t.Error("a terminated agreement was reactivated")
	}
}
