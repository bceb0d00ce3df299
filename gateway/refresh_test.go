package gateway_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

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

	// Forced refreshes are spaced: the authorities serve every gateway.
	if status, body := refresh(); status != http.StatusTooManyRequests {
		t.Errorf("a second refresh at once: %d %v, want 429", status, body)
	}
	// Not from a web page: a browser sends Origin.
	req, _ := http.NewRequest(http.MethodPost, ops+"/conf/refresh", nil)
	req.Header.Set("Origin", "https://attacker.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("a refresh with an Origin: %v %v, want 403", resp.StatusCode, err)
	}

	if err := w.sb.StopAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second)
	status, body := refresh()
	if msg, _ := body["error"].(string); status != http.StatusBadGateway || !strings.Contains(msg, "download configuration") {
		t.Errorf("refresh with the authority down: %d %v", status, body)
	}
	if !w.gw["VN/GOV/HCMC/gw1"].Ready() {
		t.Error("a failed refresh left the gateway not ready")
	}
}
