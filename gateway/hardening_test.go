package gateway_test

import (
	"bytes"
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// TestPeerThatStopsReadingIsDropped: a registered consumer gateway that
// sends a valid signed request and then stops reading the answer holds
// the provider's handler and its backend request no longer than the
// body idle timeout: each write to the peer has a deadline.
func TestPeerThatStopsReadingIsDropped(t *testing.T) {
	const idle = 500 * time.Millisecond
	w := startWorld(t, sandbox.Options{PeerLimits: gateway.PeerLimits{BodyIdleTimeout: cfg.Duration(idle)}})
	mof := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	var written atomic.Int64
	released := make(chan struct{})
	answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		defer close(released)
		chunk := bytes.Repeat([]byte("x"), 1<<20)
		for range 1024 {
			if _, err := rw.Write(chunk); err != nil {
				return
			}
			written.Add(int64(len(chunk)))
		}
	})
	w.answer.Store(&answer)
	defer w.answer.Store(nil)

	hdr := map[string]string{r1.HeaderID: "stall-1", r1.HeaderPurpose: "company-lookup"}
	d := w.capture(t, true)
	w.do(t, call{path: companies + "/0100109106", header: hdr})
	w.tamper.Store(nil)

	dir := w.manifestGateway("VN/GOV/HCMC/gw1").DataDir
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "auth.crt"), filepath.Join(dir, "auth.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}, InsecureSkipVerify: true}}
	defer tr.CloseIdleConnections()
	u := strings.Replace(d.url, "https://"+hostOf(d.url), "https://"+mof, 1)
	req, _ := http.NewRequestWithContext(t.Context(), d.method, u, bytes.NewReader(d.body))
	req.Header = d.header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	// Never read the body. Wait well past every configured bound.
	select {
	case <-released:
		t.Logf("backend released after %d MiB", written.Load()>>20)
	case <-time.After(idle + 10*time.Second):
		t.Fatalf("backend handler still blocked after %s with a peer that stopped reading (%d MiB written)", idle+10*time.Second, written.Load()>>20)
	}
}

// TestUnauthenticatedConnectionsCannotLockPeersOut: connections that
// have not finished their handshake get at most half of max_conns,
// and a bounded share of that per source address, so silent TCP
// connections from anywhere cannot keep registered gateways out.
func TestUnauthenticatedConnectionsCannotLockPeersOut(t *testing.T) {
	w := startWorld(t, sandbox.Options{PeerLimits: gateway.PeerLimits{ConnsPerPeer: 8, MaxConns: 16}})
	addr := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	// From another address than the gateways' (all on 127.0.0.1 here).
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	for range 16 {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	hdr := map[string]string{r1.HeaderID: "cap-1", r1.HeaderPurpose: "company-lookup"}
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode != 200 {
		t.Errorf("registered consumer refused while 16 unauthenticated TCP connections are open: %d %s", resp.StatusCode, body)
	}
}

// TestSilentClientConnectionDoesNotDelayStop: a connection to the client
// port that sends nothing is closed when the gateway stops, instead of
// holding the stop until the sorter's timeout.
func TestSilentClientConnectionDoesNotDelayStop(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	addr := strings.TrimPrefix(w.url, "http://")
	addr = strings.TrimPrefix(addr, "https://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(100 * time.Millisecond)
	start := time.Now()
	if err := w.sb.RestartGateway("VN/GOV/HCMC/gw1"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("restart took %s with one silent client connection open", d.Round(time.Second))
	}
}
