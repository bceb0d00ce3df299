package gateway_test

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// peerTransport speaks to a peer side as a registered gateway would.
func peerTransport(t *testing.T, cert tls.Certificate, h2 bool) *http.Transport {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
	}, ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

// A registered gateway that opens streams and stops sending their bodies
// holds nothing for longer than the body idle timeout: every stream is
// answered and dropped, and the provider's goroutines and heap come back
// to their level.
func TestStalledPeerStreamsDropped(t *testing.T) {
	const idle = 500 * time.Millisecond
	w := startWorld(t, sandbox.Options{PeerLimits: gateway.PeerLimits{BodyIdleTimeout: cfg.Duration(idle)}})
	addr := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	tr := peerTransport(t, w.gatewayTLS(t, hcmcGW), true)
	stalledStreams := func(n int) {
		t.Helper()
		type result struct {
			status int
			err    error
		}
		done := make(chan result, n)
		var writers []*io.PipeWriter
		for range n {
			pr, pw := io.Pipe()
			writers = append(writers, pw)
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "https://"+addr+"/x/"+filings, pr)
			req.Header.Set(r1.HeaderClient, hcmcClient)
			go func() {
				resp, err := tr.RoundTrip(req)
				if err != nil {
					done <- result{err: err}
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				done <- result{status: resp.StatusCode}
			}()
			go pw.Write([]byte(strings.Repeat("x", 100))) // then nothing more
		}
		deadline := time.After(idle + 10*time.Second)
		for i := range n {
			select {
			case r := <-done:
				if r.err == nil && r.status < 400 {
					t.Errorf("stalled stream answered %d", r.status)
				}
			case <-deadline:
				t.Fatalf("%d of %d stalled streams still held after %s", n-i, n, idle+10*time.Second)
			}
		}
		for _, pw := range writers {
			pw.Close()
		}
	}
	// The first round grows the pools (warm goroutines, bounded at 128
	// idle) to their size for this load; the second must leave nothing.
	stalledStreams(60)
	tr.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond)
	g0, h0 := level()
	const n = 60
	stalledStreams(n)
	tr.CloseIdleConnections()
	// A stream held would keep at least its handler's goroutine: the
	// margin is for the world's own comings and goings.
	const margin = n / 4
	var g1 int
	var h1 uint64
	for range 50 {
		if g1, h1 = level(); g1 <= g0+margin && h1 <= h0+8<<20 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if g1 > g0+margin {
		var b strings.Builder
		pprof.Lookup("goroutine").WriteTo(&b, 1)
		t.Errorf("goroutines: %d before the stalled streams, %d after\n%s", g0, g1, b.String())
	}
	if h1 > h0+8<<20 {
		t.Errorf("heap: %d bytes before the stalled streams, %d after", h0, h1)
	}
	t.Logf("goroutines %d → %d, heap %d → %d KiB", g0, g1, h0>>10, h1>>10)
}

// level returns the goroutines but the warm pool's idle workers (a
// bounded pool: warmIdle) and the heap in use.
func level() (int, uint64) {
	runtime.GC()
	runtime.GC() // pooled buffers are dropped at the second
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	buf := make([]byte, 8<<20)
	stacks := string(buf[:runtime.Stack(buf, true)])
	return strings.Count(stacks, "goroutine ") - strings.Count(stacks, "warm.(*Pool).serve"), m.HeapAlloc
}

// One peer gateway holds at most conns_per_peer connections: the next is
// closed at once, and once one of its connections closes it may open
// another.
func TestConnectionsPerPeerCapped(t *testing.T) {
	w := startWorld(t, sandbox.Options{PeerLimits: gateway.PeerLimits{ConnsPerPeer: 2}})
	addr := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	cert := w.gatewayTLS(t, hcmcGW)
	call := func(tr *http.Transport) error {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+addr+"/x/"+companies+"/0100109106", nil)
		req.Header.Set(r1.HeaderClient, hcmcClient)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return nil
	}
	trs := []*http.Transport{peerTransport(t, cert, false), peerTransport(t, cert, false), peerTransport(t, cert, false)}
	for i, tr := range trs[:2] {
		if err := call(tr); err != nil {
			t.Fatalf("connection %d within the limit: %v", i+1, err)
		}
	}
	if err := call(trs[2]); err == nil {
		t.Fatal("a third connection of the same peer was served")
	}
	// Another gateway is not held back by this one's connections.
	if err := call(peerTransport(t, w.gatewayTLS(t, "VN/GOV/MPS/gw1"), false)); err != nil {
		t.Fatalf("another peer's connection: %v", err)
	}
	trs[0].CloseIdleConnections()
	var err error
	for range 50 {
		if err = call(trs[2]); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("a connection freed up, but a new one is still refused: %v", err)
	}
}

// lockedBuffer is a log sink the gateways' goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// A registered gateway that opens and resets streams by the hundred costs
// the provider's log a few lines, not one a stream.
func TestResetStreamFloodQuietInLog(t *testing.T) {
	var logs lockedBuffer
	w := startWorld(t, sandbox.Options{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	addr := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	tr := peerTransport(t, w.gatewayTLS(t, hcmcGW), true)
	const n = 300
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithCancel(t.Context())
			pr, pw := io.Pipe()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+addr+"/x/"+filings, pr)
			req.Header.Set(r1.HeaderClient, hcmcClient)
			go func() {
				pw.Write([]byte("x"))
				time.Sleep(20 * time.Millisecond)
				cancel() // resets the stream
				pw.Close()
			}()
			if resp, err := tr.RoundTrip(req); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	got := logs.count(`msg="peer request refused"`)
	if got == 0 {
		t.Fatal("no refusal logged at all")
	}
	if got > 40 {
		t.Errorf("%d log lines for %d reset streams", got, n)
	}
	t.Logf("%d reset streams, %d lines", n, got)
}
