package gateway_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestExchangesAreLogged checks that both gateways of an exchange log it,
// and that their logs verify offline once the gateways have stopped.
func TestExchangesAreLogged(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: "evidence-1", r1.HeaderUserID: "VN123"}})
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	reqHash := resp.Header.Get(r1.HeaderRequestHash)
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"VN/GOV/HCMC/gw1", "VN/GOV/MOF/gw1"} {
		var mu sync.Mutex
		var found []*msglog.Record
		dir := filepath.Join(w.manifestGateway(gw).DataDir, "log")
		rep, err := msglog.Verify(t.Context(), dir, "", func(r *msglog.Record) {
			mu.Lock()
			defer mu.Unlock()
			if r.XRoadID == "evidence-1" {
				found = append(found, r)
			}
		})
		if err != nil {
			t.Fatalf("%s: log does not verify: %v", gw, err)
		}
		if len(found) != 1 {
			t.Fatalf("%s: %d records of the exchange in %d", gw, len(found), rep.Records)
		}
		r := found[0]
		wantSide := map[string]string{"VN/GOV/HCMC/gw1": "consumer", "VN/GOV/MOF/gw1": "provider"}[gw]
		if r.Side != wantSide || r.Client != hcmcClient || r.Service != companies || r.UserID != "VN123" || r.Status != 200 ||
			r.RequestHash != reqHash || r.RequestSignature == "" || r.ResponseSignature == "" || r.ResponseBodySHA256 == "" {
			t.Errorf("%s: record %+v", gw, r)
		}
	}
}

// TestLoggingFailsClosed breaks a gateway's log storage: the exchange is
// refused and the backend's answer is not released.
func TestLoggingFailsClosed(t *testing.T) {
	for _, tc := range []struct {
		gateway, typ string
	}{
		{"VN/GOV/MOF/gw1", r1.TypeServerLoggingFailed},
		{"VN/GOV/HCMC/gw1", r1.TypeClientLoggingFailed},
	} {
		t.Run(tc.gateway, func(t *testing.T) {
			w := startWorld(t, sandbox.Options{})
			if resp, body := w.do(t, call{path: companies + "/0100109106"}); resp.StatusCode != 200 {
				t.Fatalf("before: status %d, body %s", resp.StatusCode, body)
			}
			// The storage goes bad: where the tiles go, there is a file.
			tiles := filepath.Join(w.manifestGateway(tc.gateway).DataDir, "log", msglog.TilesDir, "tile")
			if err := os.Rename(tiles, tiles+".moved"); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(tiles, []byte("not a directory"), 0o644); err != nil {
				t.Fatal(err)
			}
			resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: "unlogged"}})
			wantError(t, resp, body, 500, tc.typ)
			if strings.Contains(string(body), "Viettel") {
				t.Error("the backend's answer was released")
			}
		})
	}
}
