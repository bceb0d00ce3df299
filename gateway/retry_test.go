package gateway

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// A request whose handler dies before answering reaches the provider at
// most twice, however many pooled connections there are; without the
// limit Go's client sends it on every one of them.
func TestAttemptLimit(t *testing.T) {
	const pooled = 6
	var fatal atomic.Int32
	var arrived sync.WaitGroup
	arrived.Add(pooled)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fill" {
			arrived.Done()
			arrived.Wait() // every filling request holds its own connection
			return
		}
		fatal.Add(1)
		panic(http.ErrAbortHandler) // the connection closes, nothing answered
	}))
	defer srv.Close()

	send := func(limited bool) (int32, error) {
		tr := &http.Transport{MaxIdleConnsPerHost: 2 * pooled}
		defer tr.CloseIdleConnections()
		var wg sync.WaitGroup
		for range pooled {
			wg.Go(func() {
				resp, err := tr.RoundTrip(httptest.NewRequest("GET", srv.URL+"/fill", nil).WithContext(t.Context()))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
			})
		}
		wg.Wait()
		arrived.Add(pooled) // for the next round
		fatal.Store(0)
		req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/x", nil)
		var rt http.RoundTripper = tr
		if limited {
			rt = attemptLimit{tr}
		}
		_, err := rt.RoundTrip(req)
		// An attempt that got through arrives at the handler a moment
		// after the client has given up on it.
		time.Sleep(100 * time.Millisecond)
		return fatal.Load(), err
	}

	// Go's client alone: the request goes out once per pooled connection
	// (and on a new one).
	if n, err := send(false); err == nil || n <= maxPeerAttempts {
		t.Fatalf("without the limit: %d attempts, %v; want more than %d (does the client still retry?)", n, err, maxPeerAttempts)
	}
	n, err := send(true)
	t.Logf("attempts with the limit: %d", n)
	if err == nil || n > maxPeerAttempts || !errors.Is(err, errTooManyAttempts) {
		t.Fatalf("with the limit: %d attempts, error %v; want at most %d and %v", n, err, maxPeerAttempts, errTooManyAttempts)
	}
}
