package sandbox_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/sandbox"
)

// TestDeployFilesNameRealMetrics scrapes every operations listener of
// the sandbox after exchanges have run, and checks that each metric the
// Grafana dashboard and the alert rules in deploy/ query is one the
// daemons expose, and that each metric they expose is documented in
// docs/operating.md.
func TestDeployFilesNameRealMetrics(t *testing.T) {
	sb, err := sandbox.Start(t.Context(), sandbox.Options{Dir: filepath.Join(t.TempDir(), "sb")})
	if err != nil {
		t.Fatal(err)
	}
	defer sb.Close()
	m := sb.Manifest
	callExamples(t, m)
	// A refusal, so that the policy's refusal counters exist too.
	for _, g := range m.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, g.ClientURL+"/r1/VN/GOV/MPS/residents/persons/079200001234", nil)
			req.Header.Set("X-Road-Client", "VN/GOV/HCMC/one-stop")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
	}

	exposed := map[string]bool{}
	var urls []string
	for _, g := range m.Gateways {
		urls = append(urls, g.OpsURL)
	}
	for _, a := range m.Authorities {
		urls = append(urls, a.OpsURL)
	}
	typeLine := regexp.MustCompile(`(?m)^# TYPE (\S+) (\S+)$`)
	for _, u := range urls {
		if u == "" {
			t.Fatal("a component has no ops_url in the manifest")
		}
		resp, err := http.Get(u + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s/metrics: %d", u, resp.StatusCode)
		}
		for _, m := range typeLine.FindAllStringSubmatch(string(b), -1) {
			exposed[m[1]] = true
			if m[2] == "histogram" {
				for _, suf := range []string{"_bucket", "_sum", "_count"} {
					exposed[m[1]+suf] = true
				}
			}
		}
	}
	for _, want := range []string{"go_goroutines", "process_cpu_seconds_total", "sampan_gateway_exchanges_total", "sampan_authority_publications_total", "sampan_msglog_records_total", "sampan_opmon_records_total"} {
		if !exposed[want] {
			t.Errorf("%s is not exposed", want)
		}
	}

	dash, err := os.ReadFile("../deploy/grafana/sampan.json")
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(dash) {
		t.Error("deploy/grafana/sampan.json is not JSON")
	}
	alerts, err := os.ReadFile("../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	name := regexp.MustCompile(`\b(?:sampan|go|process)_[a-z0-9_]+`)
	for file, b := range map[string][]byte{"sampan.json": dash, "alerts.yml": alerts} {
		for _, n := range name.FindAllString(string(b), -1) {
			if !exposed[n] {
				t.Errorf("%s queries %s, which no component exposes", file, n)
			}
		}
	}

	doc, err := os.ReadFile("../docs/operating.md")
	if err != nil {
		t.Fatal(err)
	}
	for n := range exposed {
		if strings.HasPrefix(n, "sampan_") && !strings.HasSuffix(n, "_bucket") && !strings.HasSuffix(n, "_sum") && !strings.HasSuffix(n, "_count") && !strings.Contains(string(doc), n) {
			t.Errorf("%s is not documented in docs/operating.md", n)
		}
	}
}
