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
	// (load generator and backend included: they share the process),
	// over the measurements alone (not their warm-ups).
	CPUsPer1k float64 `json:"cpu_s_per_1k,omitempty"`
	// SyscallsPerExchange is the process's read and write system calls
	// per exchange (Linux), likewise.
	SyscallsPerExchange float64 `json:"syscalls_per_exchange,omitempty"`
	// AllocKiBPerExchange is the Go heap the process allocated per
	// exchange, in KiB, likewise (load generator and backend included):
	// less noisy than CPU time on a shared machine, it shows a change in
	// the work done per exchange.
	AllocKiBPerExchange float64 `json:"alloc_kib_per_exchange,omitempty"`
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
	// extra is how much longer than the body an answer is (a SOAP
	// answer gains its requestHash header).
	extra int
}

// run drives url and returns the figures. A request counts as an error
// unless it is answered 2xx with a body of the expected length.
func (l *load) run(ctx context.Context, url string) samples {
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
				if resp.StatusCode/100 != 2 || n != int64(len(l.body)+l.extra) {
					if ctx.Err() == nil { // not cut off by the end of the measurement
						errs.Add(1)
					}
					continue
				}
				lats[i] = append(lats[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	s := samples{errs: errs.Load(), elapsed: time.Since(start)}
	for _, l := range lats {
		s.lats = append(s.lats, l...)
	}
	return s
}

// samples are the raw figures of one or more measurements.
type samples struct {
	lats    []time.Duration
	errs    int64
	elapsed time.Duration
}

func (s *samples) add(o samples) {
	s.lats = append(s.lats, o.lats...)
	s.errs += o.errs
	s.elapsed += o.elapsed
}

func (s samples) result() Result { return summarize(s.lats, s.errs, s.elapsed) }

// summarize turns latencies into a result.
func summarize(all []time.Duration, errs int64, elapsed time.Duration) Result {
	slices.Sort(all)
	r := Result{Requests: int64(len(all)), Errors: errs}
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

// runRate is an open-loop generator: it starts requests at a fixed rate,
// whatever the answers' latency, for the load's duration, and measures
// each latency from when the request was due (so a stall is not hidden by
// sending less). At most maxInFlight requests are outstanding; a request
// due beyond that counts as an error.
func (l *load) runRate(ctx context.Context, url string, rate float64) samples {
	const maxInFlight = 4096
	tr := &http.Transport{MaxIdleConnsPerHost: 512, IdleConnTimeout: time.Minute, DisableCompression: true}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, l.duration)
	defer cancel()
	interval := time.Duration(float64(time.Second) / rate)
	var errs, inFlight atomic.Int64
	var mu sync.Mutex
	var all []time.Duration
	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); ctx.Err() == nil && i < l.maxRequests; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			select {
			case <-time.After(d):
			case <-ctx.Done():
			}
		}
		if ctx.Err() != nil {
			break
		}
		if inFlight.Add(1) > maxInFlight {
			inFlight.Add(-1)
			errs.Add(1)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inFlight.Add(-1)
			req, _ := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, url, bytes.NewReader(l.body))
			for k, v := range l.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				errs.Add(1)
				return
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode/100 != 2 || n != int64(len(l.body)+l.extra) {
				errs.Add(1)
				return
			}
			lat := time.Since(due)
			mu.Lock()
			all = append(all, lat)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return samples{lats: all, errs: errs.Load(), elapsed: time.Since(start)}
}
