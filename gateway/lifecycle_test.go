package gateway_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
)

// TestCloseJoinsRun: Close on a gateway whose Run is still serving ends
// Run and waits for it and every goroutine it started (configuration
// refresh, federation, time-stamping, listeners) before it closes the
// log: afterwards no goroutine of the gateway is left and its
// listeners are closed.
func TestCloseJoinsRun(t *testing.T) {
	mg, c := stoppedGateway(t)
	c.ClientListen, c.PeerListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	http.DefaultClient.CloseIdleConnections()
	before := settledGoroutines(0)

	g, err := gateway.New(t.Context(), c, mg.DataDir, gateway.Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- g.Run(context.Background()) }() // never cancelled: Close must end it
	ops := "http://" + g.OpsAddr()
	waitFor(t, 10*time.Second, "the operations listener", func() bool {
		resp, err := http.Get(ops + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	http.DefaultClient.CloseIdleConnections()
	// A client stalled halfway through its request body: Run gives it
	// its grace period, then closes its connection.
	stalled, err := net.Dial("tcp", g.ClientAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "POST /r1/VN/GOV/MOF/business-registry/filings HTTP/1.1\r\nHost: x\r\nX-Road-Client: %s\r\nContent-Length: 1000\r\n\r\nten bytes.", mg.Clients[0])
	time.Sleep(200 * time.Millisecond)

	closed := make(chan error, 1)
	go func() { closed <- g.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Close did not return")
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	default:
		t.Fatal("Close returned before Run did")
	}
	if _, err := http.Get(ops + "/healthz"); err == nil {
		t.Error("the operations listener still answers after Close")
	}
	stalled.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := stalled.Read(make([]byte, 1)); err == nil {
		t.Error("the stalled client's connection is still open after Close")
	}
	if n := settledGoroutines(before); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after Close, %d before New:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// settledGoroutines waits up to 5s for the goroutine count to fall to
// want (or, with want 0, to stop changing) and returns it.
func settledGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(100 * time.Millisecond)
		m := runtime.NumGoroutine()
		if (want > 0 && m <= want) || (want == 0 && m == n) {
			return m
		}
		n = m
	}
	return n
}
