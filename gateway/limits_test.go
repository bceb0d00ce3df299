package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestBodyLimitWhileRefused: a client streams a body to a service the
// provider refuses, pauses until the refusal is relayed, then goes past
// the body limit. The limit trips in the transport's goroutine while the
// handler answers; it must not touch the client's response from there
// (under -race this test fails if it does: such a write can crash the
// gateway with a concurrent map write).
func TestBodyLimitWhileRefused(t *testing.T) {
	w := startWorld(t, sandbox.Options{Limits: gateway.Limits{MaxBodyBytes: 525 << 10}})
	for i := range 3 {
		pr, pw := io.Pipe()
		go func() {
			pw.Write(bytes.Repeat([]byte("x"), 520<<10))
			time.Sleep(300 * time.Millisecond)
			for range 20 {
				if _, err := pw.Write(bytes.Repeat([]byte("y"), 16<<10)); err != nil {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			pw.Close()
		}()
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.url+"/r1/VN/GOV/MOF/business-registry/nothing/1", pr)
		req.Header.Set(r1.HeaderClient, hcmcClient)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue // the connection may be closed under a body still being sent
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK || resp.Header.Get(r1.HeaderError) == "" {
			t.Errorf("round %d: %d %s, want a refusal", i, resp.StatusCode, b)
		}
	}
}
