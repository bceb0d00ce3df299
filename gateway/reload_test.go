package gateway_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestReloadAccessRights: MOF's gateway drops HCMC's right to read
// filings by a reload of its configuration file, under traffic to
// another of its services that refuses no call. A file that changes a
// setting only a restart applies, or does not parse, is refused and the
// last good configuration stays.
func TestReloadAccessRights(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	mg := w.manifestGateway("VN/GOV/MOF/gw1")
	reload := func() (int, string) {
		t.Helper()
		resp, err := http.Post(mg.OpsURL+"/config/reload", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		json.NewDecoder(resp.Body).Decode(&body)
		msg, _ := body["error"].(string)
		return resp.StatusCode, msg
	}
	orig, err := os.ReadFile(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	edit := func(change func(map[string]any)) {
		t.Helper()
		var c map[string]any
		if err := json.Unmarshal(orig, &c); err != nil {
			t.Fatal(err)
		}
		change(c)
		b, _ := json.MarshalIndent(c, "", "  ")
		if err := os.WriteFile(mg.Config, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	readFilings := func() (*http.Response, []byte) { return w.do(t, call{path: filings}) }
	if resp, b := readFilings(); resp.StatusCode != 200 {
		t.Fatalf("before: %d %s", resp.StatusCode, b)
	}

	// Traffic that the reload must not disturb.
	var stop atomic.Bool
	var calls, refused atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				resp, b := w.do(t, call{path: companies + "/0100109106"})
				calls.Add(1)
				if resp.StatusCode != 200 {
					refused.Add(1)
					t.Errorf("during the reload: %d %s", resp.StatusCode, b)
				}
			}
		}()
	}

	edit(func(c map[string]any) {
		for _, s := range c["services"].([]any) {
			svc := s.(map[string]any)
			if !strings.HasSuffix(svc["id"].(string), "/filings") {
				continue
			}
			var kept []any
			for _, a := range svc["access"].([]any) {
				if a.(map[string]any)["endpoint"] != "GET /" {
					kept = append(kept, a)
				}
			}
			svc["access"] = kept
		}
	})
	if status, msg := reload(); status != http.StatusOK {
		t.Fatalf("reload: %d %s", status, msg)
	}
	resp, b := readFilings()
	wantError(t, resp, b, 500, r1.TypeServerAccessDenied)

	// Refused reloads change nothing.
	edit(func(c map[string]any) { c["peer_listen"] = "127.0.0.1:1" })
	if status, msg := reload(); status != http.StatusConflict || !strings.Contains(msg, "peer_listen changed") {
		t.Errorf("reload changing peer_listen: %d %s", status, msg)
	}
	if err := os.WriteFile(mg.Config, []byte(`{"services": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if status, msg := reload(); status != http.StatusConflict || !strings.Contains(msg, "running configuration stays") {
		t.Errorf("reload of a broken file: %d %s", status, msg)
	}
	resp, b = readFilings()
	wantError(t, resp, b, 500, r1.TypeServerAccessDenied)

	stop.Store(true)
	wg.Wait()
	if calls.Load() == 0 || refused.Load() != 0 {
		t.Errorf("%d calls during the reloads, %d refused", calls.Load(), refused.Load())
	}
}

// TestReloadKeepsProgramOverrides: a reload loads the configuration the
// way the program loaded it at start (Options.LoadConfig), so what the
// program put in from elsewhere — `sampan gateway run` takes the record
// index's DSN from the environment — does not read as a change that
// needs a restart.
func TestReloadKeepsProgramOverrides(t *testing.T) {
	mg, c := stoppedGateway(t)
	c.OpsListen = "127.0.0.1:0"
	override := func(c *gateway.Config) { c.Log.Retention = cfg.Duration(48 * time.Hour) }
	override(c)
	g, err := gateway.New(t.Context(), c, mg.DataDir, gateway.Options{LoadConfig: func() (*gateway.Config, error) {
		c, err := gateway.LoadConfig(mg.Config)
		if err == nil {
			c.OpsListen = "127.0.0.1:0"
			override(c)
		}
		return c, err
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := g.Reload(); err != nil {
		t.Fatalf("reload with the program's own settings: %v", err)
	}
}
