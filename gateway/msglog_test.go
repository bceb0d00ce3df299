package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/store/pgtest"
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
		index        bool // break the record index rather than the tiles
	}{
		{"VN/GOV/MOF/gw1", r1.TypeServerLoggingFailed, false},
		{"VN/GOV/HCMC/gw1", r1.TypeClientLoggingFailed, false},
		{"VN/GOV/HCMC/gw1", r1.TypeClientLoggingFailed, true},
	} {
		name := tc.gateway + " tiles"
		if tc.index {
			name = tc.gateway + " index"
		}
		t.Run(name, func(t *testing.T) {
			w := startWorld(t, sandbox.Options{})
			if resp, body := w.do(t, call{path: companies + "/0100109106"}); resp.StatusCode != 200 {
				t.Fatalf("before: status %d, body %s", resp.StatusCode, body)
			}
			logDir := filepath.Join(w.manifestGateway(tc.gateway).DataDir, "log")
			if tc.index {
				breakIndex(t, logDir)
			} else {
				// The tree's storage goes bad: where the tiles go, there is
				// a file. Records are durable in the index before an
				// exchange is answered and their leaves follow, so the
				// exchange during which the tree fails still completes
				// (its record is kept and appended once the storage
				// recovers); the next ones are refused.
				tiles := filepath.Join(logDir, msglog.TilesDir, "tile")
				waitFor(t, 10*time.Second, "first leaves in the tree", func() bool { _, err := os.Stat(tiles); return err == nil })
				if err := os.Rename(tiles, tiles+".moved"); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tiles, []byte("not a directory"), 0o644); err != nil {
					t.Fatal(err)
				}
				defer func() {
					// The storage comes back: exchanges resume by themselves.
					os.Remove(tiles)
					os.Rename(tiles+".moved", tiles)
					waitFor(t, 15*time.Second, "recovery", func() bool {
						resp, _ := w.do(t, call{path: companies + "/0100109106"})
						return resp.StatusCode == 200
					})
				}()
			}
			var resp *http.Response
			var body []byte
			for i := range 50 {
				resp, body = w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: fmt.Sprintf("during-%d", i)}})
				if resp.StatusCode != 200 {
					break
				}
				time.Sleep(100 * time.Millisecond)
			}
			wantError(t, resp, body, 500, tc.typ)
			if strings.Contains(string(body), "Viettel") {
				t.Error("the backend's answer was released")
			}
		})
	}
}

// TestBodiesKeptWhereConfigured: SPF and MPS keep the bodies of their scam
// report exchanges, encrypted; the bodies decrypt to what was sent and
// answered; the one-stop shop's gateway keeps none.
func TestBodiesKeptWhereConfigured(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	report := `{"phone":"+65 8000 0000","summary":"investment scam, victims in both countries"}`
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.manifestGateway("SG/GOV/SPF/gw1").ClientURL+"/r1/VN/GOV/MPS/cybercrime/scam-reports/", strings.NewReader(report))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(r1.HeaderClient, "SG/GOV/SPF/anti-scam")
	req.Header.Set(r1.HeaderID, "scam-1")
	req.Header.Set(r1.HeaderPurpose, "scam-investigation")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d: %s", resp.StatusCode, answer)
	}
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: "no-bodies"}}); resp.StatusCode != 200 {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"SG/GOV/SPF/gw1", "VN/GOV/MPS/gw1"} {
		dir := filepath.Join(w.manifestGateway(gw).DataDir, "log")
		for part, want := range map[string]string{msglog.PartRequest: report, msglog.PartResponse: string(answer)} {
			var got bytes.Buffer
			if err := msglog.WriteBody(t.Context(), dir, "", "scam-1", part, &got); err != nil {
				t.Fatalf("%s %s body: %v", gw, part, err)
			}
			if got.String() != want {
				t.Errorf("%s %s body %q, want %q", gw, part, got.String(), want)
			}
		}
		// At rest the files hold no clear text.
		filepath.WalkDir(filepath.Join(dir, msglog.BodiesDir), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, _ := os.ReadFile(p); bytes.Contains(b, []byte("investment scam")) {
					t.Errorf("%s stores a body in clear: %s", gw, p)
				}
			}
			return nil
		})
	}
	hcmc := filepath.Join(w.manifestGateway("VN/GOV/HCMC/gw1").DataDir, "log")
	if err := msglog.WriteBody(t.Context(), hcmc, "", "no-bodies", msglog.PartResponse, io.Discard); err == nil {
		t.Error("a gateway not configured to keep bodies kept one")
	}
	if _, err := os.Stat(filepath.Join(hcmc, msglog.BodiesDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("HCMC has a bodies directory: %v", err)
	}
}

// TestRecordIndexInPostgres runs the sandbox with every gateway's record
// index in one PostgreSQL database (rows are per log) and checks an
// exchange's records there.
func TestRecordIndexInPostgres(t *testing.T) {
	dsn := pgtest.Start(t)
	w := startWorld(t, sandbox.Options{LogIndexDSN: dsn})
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: "pg-1"}}); resp.StatusCode != 200 {
		t.Fatalf("status %d, body %s", resp.StatusCode, body)
	}
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"VN/GOV/HCMC/gw1", "VN/GOV/MOF/gw1"} {
		dir := filepath.Join(w.manifestGateway(gw).DataDir, "log")
		if _, err := os.Stat(filepath.Join(dir, msglog.IndexFile)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s made a SQLite index although PostgreSQL was configured", gw)
		}
		n := 0
		if _, err := msglog.Verify(t.Context(), dir, dsn, func(r *msglog.Record) {
			if r.XRoadID == "pg-1" {
				n++
			}
		}); err != nil || n != 1 {
			t.Fatalf("%s: %d records of the exchange, %v", gw, n, err)
		}
		out := t.TempDir()
		if err := msglog.Export(t.Context(), dir, dsn, msglog.Selection{XRoadID: "pg-1"}, out); err != nil {
			t.Fatalf("%s: export: %v", gw, err)
		}
		if _, err := msglog.VerifyBundle(out); err != nil {
			t.Fatalf("%s: bundle: %v", gw, err)
		}
	}
}

// TestBatchSignedExchanges: gateways busy enough to sign in batches
// exchange correctly, and each exchange's evidence still stands on its
// own: its records verify, and its bundle's signatures verify offline.
func TestBatchSignedExchanges(t *testing.T) {
	// Always busy, and batches that gather long enough that concurrent
	// exchanges share them even on a slow machine.
	w := startWorld(t, sandbox.Options{Gateway: func(string) gateway.Options {
		return gateway.Options{BatchBusy: func() bool { return true }, BatchWindow: 50 * time.Millisecond}
	}})
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: fmt.Sprintf("batch-%d", i)}})
			if resp.StatusCode != 200 || !strings.Contains(string(body), "Viettel") {
				t.Errorf("exchange %d: status %d, body %s", i, resp.StatusCode, body)
			}
		}()
	}
	wg.Wait()
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	for _, gw := range []string{"VN/GOV/HCMC/gw1", "VN/GOV/MOF/gw1"} {
		dir := filepath.Join(w.manifestGateway(gw).DataDir, "log")
		batched := map[string]string{} // X-Road-Id → the batch JWS of its request or response
		if _, err := msglog.Verify(t.Context(), dir, "", func(r *msglog.Record) {
			for _, sig := range []string{r.RequestSignature, r.ResponseSignature} {
				if jws, _, ok := strings.Cut(sig, "~"); ok && strings.HasPrefix(r.XRoadID, "batch-") {
					batched[r.XRoadID] = jws
				}
			}
		}); err != nil {
			t.Fatalf("%s: %v", gw, err)
		}
		if len(batched) == 0 {
			t.Fatalf("%s: no exchange was batch-signed", gw)
		}
		for id := range batched {
			out := t.TempDir()
			if err := msglog.Export(t.Context(), dir, "", msglog.Selection{XRoadID: id}, out); err != nil {
				t.Fatalf("%s: export %s: %v", gw, id, err)
			}
			rep, err := msglog.VerifyBundle(out)
			if err != nil || !rep.Signatures {
				t.Fatalf("%s: bundle of %s: %+v, %v", gw, id, rep, err)
			}
			if readme, err := os.ReadFile(filepath.Join(out, "README.md")); err != nil || !strings.Contains(string(readme), "sampan-batch-v1") {
				t.Errorf("%s: the bundle's README does not explain its batch signature (%v)", gw, err)
			}
			break
		}
	}
}

// trailerSet changes a trailer once the body has ended, as a peer that
// sent another value would have.
type trailerSet struct {
	rc    io.ReadCloser
	tr    http.Header
	key   string
	value string // "" deletes it
	hold  chan struct{}
	ctx   context.Context // the request's: ends a hold, as the peer's stream would
}

func (f *trailerSet) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	if err == io.EOF {
		if f.hold != nil {
			select {
			case <-f.hold:
			case <-f.ctx.Done():
				return n, f.ctx.Err()
			}
		}
		if f.value == "" {
			f.tr.Del(f.key)
		} else {
			f.tr.Set(f.key, f.value)
		}
	}
	return n, err
}

func (f *trailerSet) Close() error { return f.rc.Close() }

// TestProviderConfirmsLogged: a consumer's gateway that accepts it gets a
// held answer while the provider's record of it is being written, and
// the Sampan-Logged trailer after; it releases the answer only once that
// trailer says the provider's record is durable. A consumer that does not
// ask gets the answer after the record, with no such trailer. The
// gateways are configured to speak HTTP/2 to each other, which carries a
// trailer after a body of known length.
func TestProviderConfirmsLogged(t *testing.T) {
	w := startWorld(t, sandbox.Options{PeerProtocol: gateway.PeerHTTP2})
	path := companies + "/0100109106"
	if resp, b := w.do(t, call{path: path}); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if p := w.proto.Load(); p == nil || *p != "HTTP/2.0" {
		t.Fatalf("gateways configured for h2 spoke %v", p)
	}
	// The provider served it on a warm goroutine, which now waits.
	if n := gauge(t, w.gw["VN/GOV/MOF/gw1"], "sampan_gateway_warm_goroutines"); n < 1 {
		t.Errorf("provider's warm goroutines after a request over HTTP/2: %v, want at least 1", n)
	}

	t.Run("asked", func(t *testing.T) {
		var declared bool
		var wire http.Header
		w.tamper.Store(&tamper{resp: func(r *http.Response) {
			_, declared = r.Trailer["Sampan-Logged"]
			wire = r.Trailer
		}})
		defer w.tamper.Store(nil)
		resp, b := w.do(t, call{path: path})
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Viettel") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if !declared || wire.Get("Sampan-Logged") != "ok" {
			t.Errorf("provider's trailer: declared %v, %q; want the trailer, ok", declared, wire.Get("Sampan-Logged"))
		}
	})

	t.Run("not asked", func(t *testing.T) {
		var declared bool
		var sig string
		w.tamper.Store(&tamper{
			req: func(r *http.Request) { r.Header.Del("Sampan-Features") },
			resp: func(r *http.Response) {
				_, declared = r.Trailer["Sampan-Logged"]
				sig = r.Header.Get("Sampan-Signature")
			},
		})
		defer w.tamper.Store(nil)
		resp, b := w.do(t, call{path: path})
		if resp.StatusCode != 200 || !strings.Contains(string(b), "Viettel") {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if declared || sig == "" {
			t.Errorf("without the feature: trailer declared %v, signature header %q; want no trailer and the signature in the header", declared, sig)
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		// An answer to HEAD ends with its headers: it can carry no
		// trailer, so the provider's record is durable before it is sent.
		resp, b := w.do(t, call{method: http.MethodHead, path: path})
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("%d %q", resp.StatusCode, b)
		}
	})

	for _, status := range []int{http.StatusNoContent, http.StatusNotModified} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.WriteHeader(status) })
			w.answer.Store(&answer)
			defer w.answer.Store(nil)
			resp, b := w.do(t, call{path: path})
			if resp.StatusCode != status || len(b) != 0 {
				t.Fatalf("%d %q, want %d", resp.StatusCode, b, status)
			}
		})
	}

	for _, n := range []int{64<<10 - 1, 64 << 10} {
		t.Run(fmt.Sprintf("answer of %d bytes", n), func(t *testing.T) {
			// The largest held answer, and the smallest streamed one.
			want := bytes.Repeat([]byte("x"), n)
			answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) { rw.Write(want) })
			w.answer.Store(&answer)
			defer w.answer.Store(nil)
			var pending string
			w.tamper.Store(&tamper{resp: func(r *http.Response) { pending = r.Header.Get("Sampan-Logged") }})
			defer w.tamper.Store(nil)
			resp, b := w.do(t, call{path: path})
			if resp.StatusCode != 200 || !bytes.Equal(b, want) {
				t.Fatalf("%d, %d bytes", resp.StatusCode, len(b))
			}
			if held := n < 64<<10; (pending == "pending") != held {
				t.Errorf("Sampan-Logged %q for %d bytes", pending, n)
			}
		})
	}

	for _, tc := range []struct {
		name, value string
		tp          func(r *http.Response)
		typ         string
	}{
		{"provider failed", "failed", nil, r1.TypeServerLoggingFailed},
		{"no confirmation", "", nil, r1.TypeNetworkError},
		{"unknown confirmation", "maybe", nil, r1.TypeNetworkError},
		{"answer not held whole", "", func(r *http.Response) { r.ContentLength = -1 }, r1.TypeNetworkError},
		{"announced length too large to hold", "", func(r *http.Response) { r.ContentLength = 64 << 10 }, r1.TypeNetworkError},
		{"confirmation not declared as a trailer", "", func(r *http.Response) { delete(r.Trailer, "Sampan-Logged") }, r1.TypeNetworkError},
		{"confirmation declared but not announced", "", func(r *http.Response) { r.Header.Del("Sampan-Logged") }, r1.TypeNetworkError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.tamper.Store(&tamper{resp: func(r *http.Response) {
				if tc.tp != nil {
					tc.tp(r)
					return
				}
				r.Body = &trailerSet{rc: r.Body, tr: r.Trailer, key: "Sampan-Logged", value: tc.value}
			}})
			defer w.tamper.Store(nil)
			resp, b := w.do(t, call{path: path})
			wantError(t, resp, b, 500, tc.typ)
			if strings.Contains(string(b), "Viettel") {
				t.Error("the answer was released")
			}
		})
	}

	t.Run("answer waits for the trailer, the consumer's record does not", func(t *testing.T) {
		// The consumer's record is durable (and indexed) while the
		// provider's confirmation is still held back: the two writes
		// overlap rather than follow each other. The client is answered
		// only after the confirmation.
		hold := make(chan struct{})
		w.tamper.Store(&tamper{resp: func(r *http.Response) {
			r.Body = &trailerSet{rc: r.Body, tr: r.Trailer, key: "Sampan-Logged", value: "ok", hold: hold, ctx: r.Request.Context()}
		}})
		defer w.tamper.Store(nil)
		done := make(chan int, 1)
		go func() {
			resp, _ := w.do(t, call{path: path, header: map[string]string{r1.HeaderID: "overlap-1"}})
			done <- resp.StatusCode
		}()
		db, err := msglog.OpenIndex(t.Context(), filepath.Join(w.manifestGateway("VN/GOV/HCMC/gw1").DataDir, "log"), "")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		waitFor(t, 10*time.Second, "the consumer's record, before the provider's confirmation", func() bool {
			var n int
			db.QueryRow(`SELECT count(*) FROM records WHERE x_road_id = 'overlap-1'`).Scan(&n)
			return n == 1
		})
		select {
		case s := <-done:
			t.Fatalf("the client was answered (%d) before the provider confirmed its record", s)
		case <-time.After(300 * time.Millisecond):
		}
		close(hold)
		if s := <-done; s != 200 {
			t.Fatalf("status %d", s)
		}
	})

	// A disk that fails after the log accepted the record: on the
	// provider, the answer has already left, and the consumer withholds
	// it on the provider's word; on the consumer, it withholds it too.
	for _, tc := range []struct{ gateway, typ string }{
		{"VN/GOV/MOF/gw1", r1.TypeServerLoggingFailed},
		{"VN/GOV/HCMC/gw1", r1.TypeClientLoggingFailed},
	} {
		t.Run("write fails on "+tc.gateway, func(t *testing.T) {
			restore := msglog.FailWrites(filepath.Join(w.manifestGateway(tc.gateway).DataDir, "log"), errors.New("injected disk failure"))
			resp, b := w.do(t, call{path: path})
			restore()
			wantError(t, resp, b, 500, tc.typ)
			if strings.Contains(string(b), "Viettel") {
				t.Error("the answer was released")
			}
		})
	}

	// The exchanges go on.
	if resp, b := w.do(t, call{path: path}); resp.StatusCode != 200 {
		t.Fatalf("after: %d %s", resp.StatusCode, b)
	}
}

// TestConfirmationTimesOut: a provider's gateway that sends an answer
// and never its confirmation gets the client an error after the peer
// timeout, not a hang, and not the answer.
func TestConfirmationTimesOut(t *testing.T) {
	w := startWorld(t, sandbox.Options{PeerTimeout: time.Second, PeerProtocol: gateway.PeerHTTP2})
	never := make(chan struct{})
	defer close(never)
	w.tamper.Store(&tamper{resp: func(r *http.Response) {
		r.Body = &trailerSet{rc: r.Body, tr: r.Trailer, key: "Sampan-Logged", value: "ok", hold: never, ctx: r.Request.Context()}
	}})
	start := time.Now()
	resp, b := w.do(t, call{path: companies + "/0100109106"})
	wantError(t, resp, b, 500, r1.TypeNetworkError)
	if !strings.Contains(string(b), "did not confirm within 1s") || strings.Contains(string(b), "Viettel") {
		t.Errorf("body %s", b)
	}
	if d := time.Since(start); d < time.Second || d > 10*time.Second {
		t.Errorf("answered after %v, want about the peer timeout of 1s", d)
	}
}

// TestProviderLogsFirstOverHTTP1: HTTP/1.1 carries no trailer after a
// body of known length, so between gateways speaking it (the default)
// the provider's record is durable before its answer leaves, even when
// the consumer asks for the confirmation; a failed write is then answered
// with an error.
func TestProviderLogsFirstOverHTTP1(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	path := companies + "/0100109106"
	var pending string
	w.tamper.Store(&tamper{resp: func(r *http.Response) { pending = r.Header.Get("Sampan-Logged") }})
	resp, b := w.do(t, call{path: path})
	if resp.StatusCode != 200 || !strings.Contains(string(b), "Viettel") {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if p := w.proto.Load(); p == nil || *p != "HTTP/1.1" || pending != "" {
		t.Fatalf("between the gateways: %v, Sampan-Logged %q; want HTTP/1.1 and no confirmation", p, pending)
	}
	// Over HTTP/1.1 the provider serves on the connection's goroutine.
	if n := gauge(t, w.gw["VN/GOV/MOF/gw1"], "sampan_gateway_warm_goroutines"); n != 0 {
		t.Errorf("provider's warm goroutines after a request over HTTP/1.1: %v, want none", n)
	}
	restore := msglog.FailWrites(filepath.Join(w.manifestGateway("VN/GOV/MOF/gw1").DataDir, "log"), errors.New("injected disk failure"))
	resp, b = w.do(t, call{path: path})
	restore()
	wantError(t, resp, b, 500, r1.TypeServerLoggingFailed)
	if strings.Contains(string(b), "Viettel") {
		t.Error("the answer was released")
	}
}

// gauge reads an unlabelled gauge from a gateway's registry.
func gauge(t *testing.T, g *gateway.Gateway, name string) float64 {
	t.Helper()
	mfs, err := g.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// breakIndex takes the table away from the record index in logDir, so
// that the log fails its next records.
func breakIndex(t *testing.T, logDir string) {
	t.Helper()
	db, err := msglog.OpenIndex(t.Context(), logDir, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = db.Exec(`ALTER TABLE records RENAME TO records_gone`)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
}
