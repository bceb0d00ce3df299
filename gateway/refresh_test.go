package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/sandbox"
)

// TestForcedRefresh: POST /conf/refresh on a gateway's operations
// listener downloads the configurations now and answers with what the
// gateway holds; with the authority down it answers 502 saying why, and
// the configuration held stays in force. Only POST refreshes.
func TestForcedRefresh(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	ops := w.manifestGateway("VN/GOV/HCMC/gw1").OpsURL
	refresh := func() (int, map[string]any) {
		t.Helper()
		resp, err := http.Post(ops+"/conf/refresh", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	if status, body := refresh(); status != http.StatusOK || body["configurations"] == nil {
		t.Fatalf("refresh: %d %v", status, body)
	}
	resp, err := http.Get(ops + "/conf/refresh")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /conf/refresh: %d, want 405", resp.StatusCode)
	}

	if err := w.sb.StopAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	status, body := refresh()
	if msg, _ := body["error"].(string); status != http.StatusBadGateway || !strings.Contains(msg, "download configuration") {
		t.Errorf("refresh with the authority down: %d %v", status, body)
	}
	if !w.gw["VN/GOV/HCMC/gw1"].Ready() {
		t.Error("a failed refresh left the gateway not ready")
	}
}
