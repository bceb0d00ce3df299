package gateway_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/store/pgtest"
)

// sent is a request exactly as the HCMC gateway sent it to a provider's
// gateway, signed.
type sent struct {
	method, url string
	header      http.Header
	body        []byte
}

// capture makes the HCMC gateway's next request to a provider's gateway
// be kept; with divert, it is sent to a closed port instead, so that no
// provider ever sees it.
func (w *world) capture(t *testing.T, divert bool) *sent {
	t.Helper()
	var mu sync.Mutex
	s := &sent{}
	w.tamper.Store(&tamper{req: func(r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if s.header != nil {
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read the request's body: %v", err)
		}
		r.Body = io.NopCloser(bytes.NewReader(b))
		s.method, s.url, s.header, s.body = r.Method, r.URL.String(), r.Header.Clone(), b
		if divert {
			r.URL.Host = "127.0.0.1:1"
		}
	}})
	t.Cleanup(func() { w.tamper.Store(nil) })
	return s
}

// resend sends a captured request again, byte for byte, over mutual TLS
// with the HCMC gateway's own authentication certificate, to the
// provider gateway listening at addr.
func (w *world) resend(t *testing.T, s *sent, addr string) (*http.Response, []byte) {
	t.Helper()
	dir := w.manifestGateway("VN/GOV/HCMC/gw1").DataDir
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, "auth.crt"), filepath.Join(dir, "auth.key"))
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert},
		InsecureSkipVerify: true, // the provider's identity is not what is tested
	}}
	defer tr.CloseIdleConnections()
	u := strings.Replace(s.url, "https://"+hostOf(s.url), "https://"+addr, 1)
	req, err := http.NewRequestWithContext(t.Context(), s.method, u, bytes.NewReader(s.body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = s.header.Clone()
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("resend: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func hostOf(u string) string {
	rest := strings.TrimPrefix(u, "https://")
	h, _, _ := strings.Cut(rest, "/")
	return h
}

// wantRefused checks a provider gateway's r1 refusal of a resent
// request, and that its service saw nothing.
func (w *world) wantRefused(t *testing.T, resp *http.Response, body []byte, before int64, typ, msg string) {
	t.Helper()
	wantError(t, resp, body, 500, typ)
	if !strings.Contains(string(body), msg) {
		t.Errorf("refusal %s does not say %q", body, msg)
	}
	if got := w.hits.Load() - before; got != 0 {
		t.Errorf("the service saw %d requests, want none", got)
	}
}

// TestReplayRefused: a signed request captured between the gateways and
// sent again with the consumer's own certificate is refused, also after
// the provider's gateway restarts (its nonces are in memory); requests
// signed outside the clock-skew tolerance are refused; exchanges go on.
func TestReplayRefused(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	mof := w.manifestGateway("VN/GOV/MOF/gw1").PeerAddr
	hdr := map[string]string{r1.HeaderID: "replay-1", r1.HeaderPurpose: "company-lookup", r1.HeaderUserID: "VN12345"}

	s := w.capture(t, false)
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %s", resp.StatusCode, body)
	}
	w.tamper.Store(nil)
	if s.header.Get("Sampan-Nonce") == "" || s.header.Get("Sampan-Signed-At") == "" {
		t.Fatalf("the request carries no nonce or signed time: %v", s.header)
	}
	t.Run("replayed at once", func(t *testing.T) {
		before := w.hits.Load()
		resp, body := w.resend(t, s, mof)
		w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "received before")
	})
	t.Run("replayed upload", func(t *testing.T) {
		up := w.capture(t, false)
		if resp, body := w.do(t, call{method: http.MethodPost, path: filings, body: strings.NewReader("statement")}); resp.StatusCode != 201 {
			t.Fatalf("upload: %d %s", resp.StatusCode, body)
		}
		w.tamper.Store(nil)
		before := w.hits.Load()
		resp, body := w.resend(t, up, mof)
		w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "received before")
	})
	t.Run("a request never delivered passes once", func(t *testing.T) {
		d := w.capture(t, true)
		if resp, _ := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode == 200 {
			t.Fatal("the diverted request was answered")
		}
		w.tamper.Store(nil)
		if resp, body := w.resend(t, d, mof); resp.StatusCode != 200 {
			t.Fatalf("first delivery: %d %s", resp.StatusCode, body)
		}
		before := w.hits.Load()
		resp, body := w.resend(t, d, mof)
		w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "received before")
	})
	for _, tc := range []struct {
		name  string
		shift time.Duration
	}{{"signed too long ago", -3 * time.Minute}, {"signed in the future", 3 * time.Minute}} {
		t.Run(tc.name, func(t *testing.T) {
			w.setClock("VN/GOV/HCMC/gw1", tc.shift)
			defer w.setClock("VN/GOV/HCMC/gw1", 0)
			before := w.hits.Load()
			resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr})
			w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "beyond the tolerance of 2m0s")
		})
	}
	t.Run("after a restart", func(t *testing.T) {
		d := w.capture(t, true)
		w.do(t, call{path: companies + "/0100109106", header: hdr})
		w.tamper.Store(nil)
		if resp, body := w.resend(t, d, mof); resp.StatusCode != 200 {
			t.Fatalf("first delivery: %d %s", resp.StatusCode, body)
		}
		if err := w.sb.RestartGateway("VN/GOV/MOF/gw1"); err != nil {
			t.Fatal(err)
		}
		w.gw["VN/GOV/MOF/gw1"] = w.sb.Gateways[gatewayIndex(w, "VN/GOV/MOF/gw1")]
		mof = w.gw["VN/GOV/MOF/gw1"].PeerAddr()
		before := w.hits.Load()
		resp, body := w.resend(t, d, mof)
		w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "before this gateway node's replay window opened")
		// Exchanges signed after the restart pass.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr})
			if resp.StatusCode == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no exchange after the restart: %d %s", resp.StatusCode, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	// (Ahead of the provider's clock: a node refuses what was signed
	// before it started, and this one started moments ago.)
	t.Run("within the tolerance", func(t *testing.T) {
		w.setClock("VN/GOV/HCMC/gw1", 90*time.Second)
		defer w.setClock("VN/GOV/HCMC/gw1", 0)
		if resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode != 200 {
			t.Fatalf("status %d %s", resp.StatusCode, body)
		}
	})
}

func gatewayIndex(w *world, id string) int {
	for i, g := range w.sb.Manifest.Gateways {
		if g.ID == id {
			return i
		}
	}
	panic("no gateway " + id)
}

// TestSignedHeadCoversXRoadHeaders: each header access rights, policy,
// routing or the log read is covered by the request signature, present
// or absent: changing, adding or dropping one after signing, or leaving
// it out of the signed header list, is refused before the service sees
// anything.
func TestSignedHeadCoversXRoadHeaders(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	hdr := map[string]string{r1.HeaderID: "head-1", r1.HeaderPurpose: "company-lookup", r1.HeaderUserID: "VN12345", "Accept": "application/json"}
	for _, tc := range []struct {
		name   string
		change func(h http.Header)
		msg    string
	}{
		{"purpose changed", func(h http.Header) { h.Set(r1.HeaderPurpose, "other") }, "does not verify"},
		{"purpose dropped", func(h http.Header) { h.Del(r1.HeaderPurpose) }, "does not verify"},
		{"legal basis added", func(h http.Header) { h.Set(r1.HeaderLegalBasis, "decree-13") }, "does not verify"},
		{"represented party added", func(h http.Header) { h.Set(r1.HeaderRepresentedParty, "COM/0100109106") }, "does not verify"},
		{"user id changed", func(h http.Header) { h.Set(r1.HeaderUserID, "VN99999") }, "does not verify"},
		{"issue added", func(h http.Header) { h.Set(r1.HeaderIssue, "case-7") }, "does not verify"},
		{"id changed", func(h http.Header) { h.Set(r1.HeaderID, "head-2") }, "does not verify"},
		{"other signed header changed", func(h http.Header) { h.Set("Accept", "text/html") }, "does not verify"},
		{"nonce changed", func(h http.Header) { h.Set("Sampan-Nonce", strings.Repeat("0", 32)) }, "does not verify"},
		{"purpose left out of the signed list", func(h http.Header) {
			h.Set("Sampan-Signed-Headers", strings.Replace(h.Get("Sampan-Signed-Headers"), "x-road-purpose,", "", 1))
		}, "does not cover x-road-purpose"},
		{"purpose sent twice", func(h http.Header) { h.Add(r1.HeaderPurpose, "company-lookup") }, "appears more than once"},
		{"version 1 head", func(h http.Header) {
			h.Set("Sampan-Signed-Headers", "accept,x-road-client,x-road-id,x-road-service")
			h.Del("Sampan-Signed-At")
			h.Del("Sampan-Nonce")
		}, "does not cover"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.tamper.Store(&tamper{req: func(r *http.Request) { tc.change(r.Header) }})
			defer w.tamper.Store(nil)
			before := w.hits.Load()
			resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr})
			typ := r1.TypeServerSignature
			if strings.Contains(tc.msg, "more than once") {
				typ = r1.TypeServerInvalidReq
			}
			w.wantRefused(t, resp, body, before, typ, tc.msg)
		})
	}
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode != 200 {
		t.Fatalf("an untouched exchange: %d %s", resp.StatusCode, body)
	}
}

// TestReplayRefusedAcrossNodes: two nodes of a provider gateway share a
// record index on PostgreSQL, and with it the nonces they have seen: a
// request delivered to one is refused by the other.
func TestReplayRefusedAcrossNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	w := startWorld(t, sandbox.Options{LogIndexDSN: dsn})
	mg := w.manifestGateway("VN/GOV/MOF/gw1")
	node2 := startNode(t, mg, "n2")
	hdr := map[string]string{r1.HeaderID: "nodes-1"}

	d := w.capture(t, true)
	w.do(t, call{path: companies + "/0100109106", header: hdr})
	w.tamper.Store(nil)
	if resp, body := w.resend(t, d, node2.PeerAddr()); resp.StatusCode != 200 {
		t.Fatalf("delivery to the second node: %d %s", resp.StatusCode, body)
	}
	for _, addr := range []string{mg.PeerAddr, node2.PeerAddr()} {
		before := w.hits.Load()
		resp, body := w.resend(t, d, addr)
		w.wantRefused(t, resp, body, before, r1.TypeServerReplayed, "received before")
	}
	// Ordinary exchanges go on through the first node.
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: hdr}); resp.StatusCode != 200 {
		t.Fatalf("exchange: %d %s", resp.StatusCode, body)
	}
}

// startNode starts a second node of a sandbox gateway: its keys, its
// configuration with another node name and listeners, its own data
// directory, the same record index.
func startNode(t *testing.T, mg sandbox.ManifestGateway, node string) *gateway.Gateway {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(mg.DataDir)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"log", "state.db", "state.db-wal", "state.db-shm", "replay-floor"} {
		os.RemoveAll(filepath.Join(dir, p))
	}
	// (os.CopyFS leaves files readable by all; keys must not be.)
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			err = os.Chmod(p, 0o600)
		}
		return err
	})
	c, err := gateway.LoadConfig(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientListen, c.PeerListen, c.OpsListen, c.Log.Node = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0", node
	g, err := gateway.New(t.Context(), c, dir, gateway.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.RefreshConf(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("second node: %v", err)
		}
		g.Close()
	})
	return g
}
