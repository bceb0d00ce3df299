package report

import (
	"bytes"
	"encoding/csv"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/sandbox"
)

// TestTransfersFromTheLog runs sandbox traffic and checks the report MPS's
// gateway gives a regulator: one line per flow, with the agreement,
// purpose, categories, countries, volumes and refusals.
func TestTransfersFromTheLog(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	dirs := map[string]string{}
	for _, g := range sb.Manifest.Gateways {
		urls[g.ID], dirs[g.ID] = g.ClientURL, g.DataDir
	}
	start := time.Now().Add(-time.Minute)
	call := func(gw, client, path, purpose, body string) int {
		method := http.MethodGet
		if body != "" {
			method = http.MethodPost
		}
		req, _ := http.NewRequest(method, urls[gw]+"/r1/"+path, strings.NewReader(body))
		req.Header.Set("X-Road-Client", client)
		if purpose != "" {
			req.Header.Set("X-Road-Purpose", purpose)
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	report := `{"phone":"+65 8000 0001","summary":"job scam"}`
	for range 3 {
		if st := call("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "VN/GOV/MPS/cybercrime/scam-reports/", "scam-investigation", report); st != 201 {
			t.Fatalf("scam report: %d", st)
		}
	}
	if st := call("SG/GOV/SPF/gw1", "SG/GOV/SPF/anti-scam", "VN/GOV/MPS/cybercrime/scam-reports/", "marketing", ""); st != 500 {
		t.Fatalf("refused purpose: %d", st)
	}
	if st := call("VN/GOV/HCMC/gw1", "VN/GOV/HCMC/one-stop", "VN/GOV/MPS/residents/persons/079200001234", "administrative-procedure", ""); st != 200 {
		t.Fatalf("domestic: %d", st)
	}
	if err := sb.Close(); err != nil {
		t.Fatal(err)
	}
	o := Options{From: start, To: time.Now().Add(time.Minute)}
	flows, err := Transfers(t.Context(), filepath.Join(dirs["VN/GOV/MPS/gw1"], "log"), o)
	if err != nil {
		t.Fatal(err)
	}
	// Cross-border only by default: the scam reports under the agreement,
	// and the refused request for another purpose.
	if len(flows) != 2 {
		t.Fatalf("%d flows: %+v", len(flows), flows)
	}
	var ok, refused *Flow
	for _, f := range flows {
		if f.Purpose == "scam-investigation" {
			ok = f
		} else {
			refused = f
		}
	}
	if ok == nil || refused == nil {
		t.Fatalf("flows %+v", flows)
	}
	if len(ok.References) != 1 || !strings.HasPrefix(ok.References[0], "transfer-assessment: MPS-TIA-2026-014") || ok.RetentionDays != 90 {
		t.Errorf("references %q, retention %d", ok.References, ok.RetentionDays)
	}
	if ok.Agreement != "VN-SG-SCAM-2026" || ok.Calls != 3 || ok.Refused != 0 || ok.Sender != "VN/GOV/MPS/cybercrime" || ok.RecipientCountry != "SG" || ok.SenderCountry != "VN" ||
		ok.Purpose != "scam-investigation" || ok.DataClass != "confidential" || strings.Join(ok.DataCategories, ",") != "personal" ||
		ok.BytesToSender != int64(3*len(report)) || ok.BytesToRecipient == 0 || ok.FirstTransfer.IsZero() || ok.LastTransfer.Before(ok.FirstTransfer) || len(ok.PolicyVersions) == 0 {
		t.Errorf("scam flow %+v", ok)
	}
	if refused.Calls != 0 || refused.Refused != 1 || refused.Purpose != "marketing" {
		t.Errorf("refused flow %+v", refused)
	}
	o.Domestic = true
	if all, _ := Transfers(t.Context(), filepath.Join(dirs["VN/GOV/MPS/gw1"], "log"), o); len(all) != 3 {
		t.Errorf("with domestic flows: %d", len(all))
	}
	// The CSV form: a header and one row per flow.
	var b bytes.Buffer
	if err := WriteCSV(&b, flows); err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil || len(rows) != 3 || len(rows[1]) != len(CSVHeader) {
		t.Fatalf("CSV: %d rows, %v", len(rows), err)
	}
	// Nothing in a period without traffic.
	if none, _ := Transfers(t.Context(), filepath.Join(dirs["VN/GOV/MPS/gw1"], "log"), Options{From: start.Add(-time.Hour), To: start}); len(none) != 0 {
		t.Errorf("%d flows in an empty period", len(none))
	}
}
