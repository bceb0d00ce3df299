package gateway_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// A service's description goes only where its data may go: SPF holds an
// access right to Vietnam's resident records, but Vietnam's core rule
// keeps them in Vietnam, so SPF may neither read their OpenAPI
// description nor see them listed; HCMC, which may receive them, can.
// A class that makes its description public opens the description, not
// the data.
func TestMetaservicesFollowPolicy(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	const residents = "VN/GOV/MPS/residents"
	listed := func(body []byte, code string) bool {
		var out struct {
			Service []struct {
				Code string `json:"service_code"`
			} `json:"service"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("listMethods answer: %v: %s", err, body)
		}
		for _, s := range out.Service {
			if s.Code == code {
				return true
			}
		}
		return false
	}

	t.Run("refused where the data may not go", func(t *testing.T) {
		resp, body := w.callAs(t, spfGW, spfClient, residents+"/getOpenAPI?serviceCode=persons", "scam-investigation")
		wantError(t, resp, body, 500, r1.TypeServerPolicyDenied)
		if !strings.Contains(string(body), "vn-core-stays") && !strings.Contains(string(body), "core data never leaves Vietnam") {
			t.Errorf("refusal does not say which rule: %s", body)
		}
		for _, m := range []string{"listMethods", "allowedMethods"} {
			resp, body := w.callAs(t, spfGW, spfClient, residents+"/"+m, "scam-investigation")
			if resp.StatusCode != 200 {
				t.Fatalf("%s: status %d: %s", m, resp.StatusCode, body)
			}
			if listed(body, "persons") {
				t.Errorf("%s lists persons to SPF: %s", m, body)
			}
		}
	})
	t.Run("served where the data may go", func(t *testing.T) {
		resp, body := w.callAs(t, hcmcGW, hcmcClient, residents+"/getOpenAPI?serviceCode=persons", "administrative-procedure")
		if resp.StatusCode != 200 || !strings.Contains(string(body), "openapi") {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		resp, body = w.callAs(t, hcmcGW, hcmcClient, residents+"/listMethods", "administrative-procedure")
		if resp.StatusCode != 200 || !listed(body, "persons") {
			t.Fatalf("listMethods to HCMC: status %d: %s", resp.StatusCode, body)
		}
	})
	t.Run("a public description opens the description only", func(t *testing.T) {
		id, _ := ident.ParseService(persons)
		if err := w.adminAPI(t).PutServiceClass(t.Context(), policy.ServiceClass{ID: id, Class: "restricted", Flags: []string{"personal", "core"}, PublicDescription: true}); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		resp, body := w.callAs(t, spfGW, spfClient, residents+"/getOpenAPI?serviceCode=persons", "scam-investigation")
		if resp.StatusCode != 200 {
			t.Fatalf("public description refused: %d %s", resp.StatusCode, body)
		}
		resp, body = w.callAs(t, spfGW, spfClient, persons+"/079200001234", "scam-investigation")
		wantError(t, resp, body, 500, r1.TypeServerPolicyDenied)
	})
}
