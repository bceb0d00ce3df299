package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// peakRSS returns the process's peak resident set size in bytes, from
// /proc/self/status, or -1 where that is not available.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return -1
			}
			return kb << 10
		}
	}
	return -1
}

// pattern is an endless, cheap, non-repeating-looking byte stream.
type pattern struct{ x uint64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		p.x ^= p.x << 13
		p.x ^= p.x >> 7
		p.x ^= p.x << 17
		b[i] = byte(p.x)
	}
	return len(b), nil
}

// TestStreamingBody sends a large body of unknown length from client to
// backend through both gateways and checks that it arrives intact while
// the process's peak memory grows by far less than the body.
// SAMPAN_STREAM_BYTES sets the size (default 64 MiB; the 1 GiB figure in
// the docs comes from SAMPAN_STREAM_BYTES=1073741824).
func TestStreamingBody(t *testing.T) {
	size := int64(64 << 20)
	if v := os.Getenv("SAMPAN_STREAM_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			t.Fatalf("SAMPAN_STREAM_BYTES: %v", err)
		}
		size = n
	}
	if testing.Short() {
		size = 8 << 20
	}
	w := startWorld(t, sandbox.Options{Limits: gateway.Limits{MaxBodyBytes: -1}})
	before := peakRSS()

	h := sha256.New()
	src := &hashingReader{r: &pattern{x: 88172645463325252}, n: size, h: h}
	resp := postStreamed(t, w.url+"/r1/"+filings, src)
	defer resp.Body.Close()
	var got struct {
		Bytes  int64
		SHA256 string
	}
	var raw bytes.Buffer
	if err := json.NewDecoder(io.TeeReader(resp.Body, &raw)).Decode(&got); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("status %d, body %s, err %v", resp.StatusCode, raw.Bytes(), err)
	}
	if want := hex.EncodeToString(h.Sum(nil)); got.Bytes != size || got.SHA256 != want {
		t.Fatalf("backend received %d bytes with SHA-256 %s, want %d bytes %s", got.Bytes, got.SHA256, size, want)
	}
	after := peakRSS()
	if before < 0 {
		t.Logf("streamed %d MiB; peak RSS not available here", size>>20)
		return
	}
	t.Logf("streamed %d MiB through two gateways; process peak RSS %d MiB before, %d MiB after", size>>20, before>>20, after>>20)
	if growth := after - before; size >= 64<<20 && growth > size/2 {
		t.Errorf("peak RSS grew by %d MiB for a %d MiB body: the body is being buffered", growth>>20, size>>20)
	}
}

type hashingReader struct {
	r io.Reader
	n int64
	h io.Writer
}

func (r *hashingReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.r.Read(p)
	r.n -= int64(n)
	r.h.Write(p[:n])
	return n, err
}

// TestBackendAnswersBeforeReading: a backend that answers a large upload
// at once, without reading it, while the provider's gateway is still
// sending the body. The exchange is refused (the request's signature was
// never checked), the gateway survives it — the HTTP client goes on
// reading the request body after the handler has ended, so the body's
// buffer must not be freed under it — and the next exchange works.
func TestBackendAnswersBeforeReading(t *testing.T) {
	var early atomic.Bool
	sb, err := sandbox.Start(t.Context(), sandbox.Options{
		Dir:    filepath.Join(t.TempDir(), "sandbox"),
		Limits: gateway.Limits{MaxBodyBytes: -1},
		WrapBackends: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if early.Load() {
					http.Error(w, "too large", http.StatusRequestEntityTooLarge)
					return
				}
				h.ServeHTTP(w, r)
			})
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sb.Close() })
	var url string
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			url = g.ClientURL + "/r1/" + filings
		}
	}
	post := func(size int64) (*http.Response, []byte) {
		t.Helper()
		resp := postStreamed(t, url, io.LimitReader(&pattern{x: 7}, size))
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	early.Store(true)
	for range 3 {
		resp, body := post(8 << 20)
		if resp.StatusCode/100 == 2 || resp.Header.Get("X-Road-Error") == "" {
			t.Fatalf("early answer relayed: status %d, X-Road-Error %q, body %.200s", resp.StatusCode, resp.Header.Get("X-Road-Error"), body)
		}
	}
	early.Store(false)
	if resp, body := post(100 << 10); resp.StatusCode != http.StatusCreated {
		t.Fatalf("after the early answers: status %d, body %.300s", resp.StatusCode, body)
	}
}

// postStreamed posts body, of unknown length, as HCMC's one-stop system.
func postStreamed(t *testing.T, url string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Road-Client", hcmcClient)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestTamperedStreamedAnswer changes an answer too large to be held whole
// (it streams, signed in a trailer) between the gateways. The consumer's
// gateway has passed most of it to the client when the signature fails:
// it must withhold the end, break the connection so that the client
// cannot take the answer for a whole one, and keep no record of it.
func TestTamperedStreamedAnswer(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	const size = 256 << 10
	answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "application/octet-stream")
		io.Copy(rw, io.LimitReader(&pattern{x: 42}, size))
	})
	w.answer.Store(&answer)
	defer w.answer.Store(nil)

	get := func(t *testing.T, id string) (int, []byte, error) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, w.url+"/r1/"+companies+"/0100109106", nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set(r1.HeaderClient, hcmcClient)
		req.Header.Set(r1.HeaderID, id)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.StatusCode, b, err
	}

	// Untouched, the answer arrives whole: the test's answer is sound.
	want, _ := io.ReadAll(io.LimitReader(&pattern{x: 42}, size))
	if status, b, err := get(t, "stream-ok"); err != nil || status != 200 || !bytes.Equal(b, want) {
		t.Fatalf("untouched: status %d, %d bytes, err %v; want 200 and the %d bytes", status, len(b), err, size)
	}

	for _, tc := range []struct {
		name string
		tp   tamper
	}{
		{"signature", tamper{resp: func(r *http.Response) { r.Body = &trailerFlip{rc: r.Body, tr: r.Trailer} }}},
		{"body", tamper{resp: func(r *http.Response) { r.Body = flipFirst(r.Body) }}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w.tamper.Store(&tc.tp)
			defer w.tamper.Store(nil)
			hits := w.hits.Load()
			status, b, err := get(t, "stream-tampered-"+tc.name)
			if w.hits.Load() != hits+1 {
				t.Fatalf("the service was called %d times, want once", w.hits.Load()-hits)
			}
			if err == nil {
				t.Fatalf("status %d: the client read %d bytes and no error: a tampered answer passed for a whole one", status, len(b))
			}
			if len(b) > size-1024 {
				t.Errorf("the client got %d of %d bytes: the end must be withheld until the signature verifies", len(b), size)
			}
			t.Logf("status %d, %d of %d bytes, then %v", status, len(b), size, err)
		})
	}

	// After the tampering, exchanges go on; the consumer's log holds the
	// untouched exchange and none of the tampered ones.
	w.answer.Store(nil)
	if resp, body := w.do(t, call{path: companies + "/0100109106"}); resp.StatusCode != 200 {
		t.Fatalf("after tampering: status %d, body %s", resp.StatusCode, body)
	}
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	var ids []string
	dir := filepath.Join(w.manifestGateway("VN/GOV/HCMC/gw1").DataDir, "log")
	var mu sync.Mutex
	if _, err := msglog.Verify(t.Context(), dir, "", func(r *msglog.Record) {
		mu.Lock()
		defer mu.Unlock()
		if strings.HasPrefix(r.XRoadID, "stream-") {
			ids = append(ids, r.XRoadID)
		}
	}); err != nil {
		t.Fatalf("consumer's log does not verify: %v", err)
	}
	if len(ids) != 1 || ids[0] != "stream-ok" {
		t.Errorf("consumer's log holds %v, want only stream-ok", ids)
	}
}
