// Package bench measures the exchange: the same closed-loop load against a
// bare backend, against a floor of two plain reverse proxies chained over
// mutual TLS 1.3, and against two Sampan gateways with everything on, in
// one run, so that their ratio means something on a shared machine.
package bench

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Result is one target's figures.
type Result struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	RPS      float64 `json:"rps"`
	P50ms    float64 `json:"p50_ms"`
	P99ms    float64 `json:"p99_ms"`
	// CPUsPer1k is the process's CPU seconds per thousand exchanges
	// (load generator and backend included: they share the process).
	CPUsPer1k float64 `json:"cpu_s_per_1k,omitempty"`
	// RSSMB is the process's resident set after the run.
	RSSMB float64 `json:"rss_mb,omitempty"`
}

// load is a closed-loop load generator: conns workers, each sending the
// next request as soon as the previous answer has been read, over
// keep-alive connections, until the duration ends or maxRequests have
// been sent.
type load struct {
	conns       int
	duration    time.Duration
	maxRequests int64
	body        []byte
	header      http.Header
}

// run drives url and returns the figures. A request counts as an error
// unless it is answered 2xx with a body of the expected length.
func (l *load) run(ctx context.Context, url string) Result {
	tr := &http.Transport{
		MaxIdleConnsPerHost: l.conns,
		MaxConnsPerHost:     l.conns,
		IdleConnTimeout:     time.Minute,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, l.duration)
	defer cancel()
	var sent, errs atomic.Int64
	lats := make([][]time.Duration, l.conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range l.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 32<<10)
			for ctx.Err() == nil && sent.Add(1) <= l.maxRequests {
				req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(l.body))
				for k, v := range l.header {
					req.Header[k] = v
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				n, _ := io.CopyBuffer(io.Discard, resp.Body, buf)
				resp.Body.Close()
				if resp.StatusCode/100 != 2 || n != int64(len(l.body)) {
					errs.Add(1)
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	slices.Sort(all)
	r := Result{Requests: int64(len(all)), Errors: errs.Load()}
	if elapsed > 0 {
		r.RPS = float64(len(all)) / elapsed.Seconds()
	}
	if len(all) > 0 {
		r.P50ms = ms(all[len(all)/2])
		r.P99ms = ms(all[min(len(all)-1, len(all)*99/100)])
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
