package gateway_test

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

const (
	spfGW, spfClient = "SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam"
	mpsGW, mpsClient = "VN/GOV/MPS/gw1", "VN/GOV/MPS/cybercrime"
	hcmcGW           = "VN/GOV/HCMC/gw1"
	vnScam           = "VN/GOV/MPS/cybercrime/scam-reports"
	sgScam           = "SG/GOV/SPF/anti-scam/scam-reports"
)

// TestPolicyEndToEnd runs the sandbox's flows through both gateways'
// decisions: what is allowed flows and is logged with its decision; what
// is refused is refused by the right side with the rule and what would be
// needed, never reaches the backend, leaks no other party's agreement,
// and is logged as a denial.
func TestPolicyEndToEnd(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	for _, c := range []struct {
		name, gw, client, path, purpose string
		status                          int
		typ                             string
		want                            []string
	}{
		{"domestic personal with its purpose", hcmcGW, hcmcClient, persons + "/079200001234", "administrative-procedure", 200, "", nil},
		{"cross-border scam reports, VN to SG", mpsGW, mpsClient, sgScam + "/", "scam-investigation", 200, "", nil},
		{"cross-border scam reports, SG to VN", spfGW, spfClient, vnScam + "/", "scam-investigation", 200, "", nil},
		{"public data across the border", "SG/GOV/ACRA/gw1", "SG/GOV/ACRA/bizfile", companies + "/0300588569", "", 200, "", nil},
		{"core data to SG", spfGW, spfClient, persons + "/079200001234", "scam-investigation", 500, r1.TypeServerPolicyDenied,
			[]string{"vn-core-stays", "core data never leaves Vietnam", "to SG"}},
		{"the same without a purpose", spfGW, spfClient, persons + "/079200001234", "", 500, r1.TypeClientPolicyDenied,
			[]string{"sg-purpose-declared", "X-Road-Purpose"}},
		{"domestic personal without a purpose", hcmcGW, hcmcClient, persons + "/079200001234", "", 500, r1.TypeClientPolicyDenied,
			[]string{"vn-purpose-declared", "allowed: administrative-procedure"}},
		{"domestic personal for another purpose", hcmcGW, hcmcClient, persons + "/079200001234", "marketing", 500, r1.TypeClientPolicyDenied,
			[]string{`purpose "marketing" is not one agreement VN-HCMC-RESIDENTS-2026 allows`}},
		{"scam reports for a purpose the agreement does not allow", spfGW, spfClient, vnScam + "/", "marketing", 500, r1.TypeServerPolicyDenied,
			[]string{"vn-personal-export", `purpose "marketing" is not one agreement VN-SG-SCAM-2026 allows`}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := w.hits.Load()
			resp, body := w.callAs(t, c.gw, c.client, c.path, c.purpose)
			if c.status == 200 {
				if resp.StatusCode != 200 {
					t.Fatalf("status %d: %s", resp.StatusCode, body)
				}
				return
			}
			wantError(t, resp, body, c.status, c.typ)
			var e struct{ Message string }
			json.Unmarshal(body, &e)
			for _, s := range c.want {
				if !strings.Contains(e.Message, s) {
					t.Errorf("message %q lacks %q", e.Message, s)
				}
			}
			if strings.Contains(e.Message, "VN-HCMC") && c.client != hcmcClient {
				t.Errorf("message names another party's agreement: %q", e.Message)
			}
			if w.hits.Load() != before {
				t.Error("a refused request reached the backend")
			}
		})
	}
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	// Decisions are in the records, refusals are denial records.
	type seen struct{ allowed, denied int }
	logs := map[string]*seen{}
	var mu sync.Mutex
	for _, gw := range []string{hcmcGW, mpsGW, spfGW} {
		logs[gw] = &seen{}
		_, err := msglog.Verify(t.Context(), filepath.Join(w.manifestGateway(gw).DataDir, "log"), "", func(r *msglog.Record) {
			mu.Lock()
			defer mu.Unlock()
			if r.Decision == nil || r.Decision.PolicyVersion == "" {
				t.Errorf("%s: record %s without a decision", gw, r.XRoadID)
				return
			}
			switch r.Kind {
			case msglog.KindExchange:
				logs[gw].allowed++
				if r.Service == persons && r.Side == "provider" && (r.Decision.Agreement != "VN-HCMC-RESIDENTS-2026" || r.Decision.DataClass != "restricted" || r.Decision.Purpose != "administrative-procedure") {
					t.Errorf("decision on a resident record: %+v", r.Decision)
				}
			case msglog.KindDenial:
				logs[gw].denied++
				if r.Decision.Allow || r.Decision.Message == "" {
					t.Errorf("denial record %+v", r.Decision)
				}
			}
		})
		if err != nil {
			t.Fatalf("%s: %v", gw, err)
		}
	}
	// HCMC: 1 allowed, 2 refused by itself; MPS: 3 allowed (HCMC, SPF, and
	// its own call to SG), 2 refused as provider; SPF: 2 allowed, 1 refused
	// by itself.
	for gw, want := range map[string]seen{hcmcGW: {1, 2}, mpsGW: {3, 2}, spfGW: {2, 1}} {
		if *logs[gw] != want {
			t.Errorf("%s: %d allowed, %d denials; want %+v", gw, logs[gw].allowed, logs[gw].denied, want)
		}
	}
}

// TestStopSwitchDuringTraffic: while SPF sends scam-report requests
// continuously, Vietnam's authority suspends the agreement; within one
// configuration refresh every request is refused with the reason, and
// resuming brings the flow back. Then the same with a suspension of all
// cross-border flows of confidential data.
func TestStopSwitchDuringTraffic(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})
	api := w.adminAPIOf(t, "VN")
	type result struct {
		at     time.Time
		status int
		typ    string
	}
	var mu sync.Mutex
	var results []result
	var stop atomic.Bool
	var wg sync.WaitGroup
	base := w.manifestGateway(spfGW).ClientURL
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				req, _ := http.NewRequest(http.MethodGet, base+"/r1/"+vnScam+"/", nil)
				req.Header.Set(r1.HeaderClient, spfClient)
				req.Header.Set(r1.HeaderPurpose, "scam-investigation")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Errorf("traffic: %v", err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				results = append(results, result{time.Now(), resp.StatusCode, resp.Header.Get(r1.HeaderError)})
				mu.Unlock()
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	// until waits for the traffic to show only the wanted outcome for half
	// a second, and returns how long that took from since.
	until := func(since time.Time, ok func(result) bool) time.Duration {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			mu.Lock()
			var first time.Time
			good := 0
			for i := len(results) - 1; i >= 0 && results[i].at.After(since); i-- {
				if !ok(results[i]) {
					break
				}
				first, good = results[i].at, good+1
			}
			mu.Unlock()
			if good > 0 && time.Since(first) > 500*time.Millisecond {
				return first.Sub(since)
			}
		}
		t.Fatal("the flow did not change within 15 s")
		return 0
	}
	flowing := func(r result) bool { return r.status == 200 }
	stopped := func(r result) bool { return r.typ == r1.TypeServerPolicyDenied || r.typ == r1.TypeClientPolicyDenied }
	until(time.Now(), flowing)

	t0 := time.Now()
	if err := api.SetAgreementStatus(t.Context(), "VN-SG-SCAM-2026", authority.StatusInput{Status: policy.StatusSuspended, Reason: "review of the recipient's safeguards"}); err != nil {
		t.Fatal(err)
	}
	d := until(t0, stopped)
	t.Logf("agreement suspended: flow stopped after %v", d)
	resp, body := w.callAs(t, spfGW, spfClient, vnScam+"/", "scam-investigation")
	if !strings.Contains(string(body), "agreement VN-SG-SCAM-2026 is suspended (review of the recipient's safeguards)") {
		t.Errorf("refusal %d %s does not say the agreement is suspended and why", resp.StatusCode, body)
	}
	t0 = time.Now()
	if err := api.SetAgreementStatus(t.Context(), "VN-SG-SCAM-2026", authority.StatusInput{Status: policy.StatusActive, Reason: "review complete"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("agreement resumed: flow back after %v", until(t0, flowing))

	t0 = time.Now()
	if err := api.PutSuspension(t.Context(), policy.Suspension{ID: "confidential-out", When: policy.When{Flow: "cross-border", Classes: []string{policy.ClassConfidential}}, Reason: "incident response"}); err != nil {
		t.Fatal(err)
	}
	t.Logf("class suspended: flow stopped after %v", until(t0, stopped))
	if _, body := w.callAs(t, spfGW, spfClient, vnScam+"/", "scam-investigation"); !strings.Contains(string(body), "confidential-out") || !strings.Contains(string(body), "incident response") {
		t.Errorf("refusal %s does not name the suspension", body)
	}
	// Domestic flows of the class go on.
	if resp, body := w.callAs(t, hcmcGW, hcmcClient, vnScam+"/", "citizen-report"); resp.StatusCode != 200 {
		t.Errorf("domestic flow stopped too: %d %s", resp.StatusCode, body)
	}
	t0 = time.Now()
	if err := api.RemoveSuspension(t.Context(), "confidential-out"); err != nil {
		t.Fatal(err)
	}
	t.Logf("class resumed: flow back after %v", until(t0, flowing))
}

// TestQuotaEndToEnd: an agreement's daily quota is counted at the
// provider's gateway; the call past it is refused with a message saying
// so, and the backend does not see it.
func TestQuotaEndToEnd(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	api := w.adminAPIOf(t, "VN")
	scam, _ := ident.ParseService(vnScam)
	if err := api.PutAgreement(t.Context(), policy.Agreement{
		ID: "VN-SG-SCAM-2026", Consumers: []string{spfClient}, Services: []ident.ServiceID{scam},
		Purposes: []string{"scam-investigation"}, Destinations: []string{"SG"}, ValidFrom: time.Now().Add(-time.Hour).UTC(),
		QuotaPerDay: 3, References: []policy.Reference{{Kind: policy.RefTransferAssessment, Ref: "MPS-TIA-2026-014"}}, Status: policy.StatusActive,
	}); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{mpsGW, spfGW} {
		if err := w.gw[gw].RefreshConf(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		if resp, body := w.callAs(t, spfGW, spfClient, vnScam+"/", "scam-investigation"); resp.StatusCode != 200 {
			t.Fatalf("call %d within the quota: %d %s", i+1, resp.StatusCode, body)
		}
	}
	before := w.hits.Load()
	resp, body := w.callAs(t, spfGW, spfClient, vnScam+"/", "scam-investigation")
	wantError(t, resp, body, 500, r1.TypeServerPolicyDenied)
	if !strings.Contains(string(body), "agreement VN-SG-SCAM-2026 allows 3 calls per day") {
		t.Errorf("refusal %s does not explain the quota", body)
	}
	if w.hits.Load() != before {
		t.Error("the call past the quota reached the backend")
	}
}
