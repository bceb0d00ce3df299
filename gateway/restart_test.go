package gateway_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestRestartsDuringTraffic restarts each authority and gateways of both
// instances while domestic and cross-border traffic runs. Every upload a
// caller saw acknowledged must have reached the service, and traffic must
// recover by itself.
func TestRestartsDuringTraffic(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts daemons")
	}
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})
	stop := make(chan struct{})
	var mu sync.Mutex
	acked := map[string]bool{}
	var ok, failed [3]int
	var wg sync.WaitGroup
	acraURL, acraHC := w.clientOf(t, "SG/GOV/ACRA/gw1", acraClient)
	flows := []func() bool{
		func() bool { // domestic upload
			b := make([]byte, 2048)
			rand.Read(b)
			req, _ := http.NewRequest(http.MethodPost, w.manifestGateway("VN/GOV/HCMC/gw1").ClientURL+"/r1/"+filings, bytes.NewReader(b))
			req.Header.Set(r1.HeaderClient, hcmcClient)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var f struct{ SHA256 string }
			if resp.StatusCode != http.StatusCreated || json.NewDecoder(resp.Body).Decode(&f) != nil {
				return false
			}
			sum := sha256.Sum256(b)
			if f.SHA256 != hex.EncodeToString(sum[:]) {
				t.Errorf("acknowledged upload with a wrong digest")
			}
			mu.Lock()
			acked[f.SHA256] = true
			mu.Unlock()
			return true
		},
		func() bool {
			return getWith(acraHC, acraURL, acraClient, companies+"/0300588569")
		},
		func() bool {
			return get(w.manifestGateway("VN/GOV/MOF/gw1").ClientURL, mofClient, entities+"/199201624D")
		},
	}
	for i, flow := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 100000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				if flow() {
					mu.Lock()
					ok[i]++
					mu.Unlock()
				} else {
					mu.Lock()
					failed[i]++
					mu.Unlock()
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	steps := []struct {
		name string
		do   func() error
	}{
		{"authority VN", func() error { return w.sb.RestartAuthority("VN") }},
		{"gateway VN/GOV/MOF/gw1", func() error { return w.sb.RestartGateway("VN/GOV/MOF/gw1") }},
		{"authority SG", func() error { return w.sb.RestartAuthority("SG") }},
		{"gateway SG/GOV/ACRA/gw1", func() error { return w.sb.RestartGateway("SG/GOV/ACRA/gw1") }},
		{"gateway VN/GOV/HCMC/gw1", func() error { return w.sb.RestartGateway("VN/GOV/HCMC/gw1") }},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("restart %s: %v", st.name, err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	// Recovery without an operator: every flow succeeds again.
	deadline := time.Now().Add(10 * time.Second)
	for i, flow := range flows {
		for !flow() {
			if time.Now().After(deadline) {
				t.Fatalf("flow %d has not recovered 10s after the last restart", i)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	close(stop)
	wg.Wait()
	t.Logf("during 5 restarts: domestic uploads %d ok / %d failed, SG→VN %d / %d, VN→SG %d / %d",
		ok[0], failed[0], ok[1], failed[1], ok[2], failed[2])

	// Every acknowledged upload is at the service.
	resp, err := http.DefaultClient.Do(mustReq(t, w.manifestGateway("VN/GOV/HCMC/gw1").ClientURL+"/r1/"+filings+"/", hcmcClient))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []struct{ SHA256 string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range got {
		have[f.SHA256] = true
	}
	missing := 0
	for h := range acked {
		if !have[h] {
			missing++
		}
	}
	if missing > 0 || len(acked) == 0 {
		t.Errorf("%d of %d acknowledged uploads are missing at the service", missing, len(acked))
	}
}

func get(base, client, path string) bool { return getWith(http.DefaultClient, base, client, path) }

func getWith(hc *http.Client, base, client, path string) bool {
	req, _ := http.NewRequest(http.MethodGet, base+"/r1/"+path, nil)
	req.Header.Set(r1.HeaderClient, client)
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func mustReq(t *testing.T, url, client string) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(r1.HeaderClient, client)
	return req
}
