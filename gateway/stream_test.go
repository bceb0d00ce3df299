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
	"sync/atomic"
	"testing"

	"github.com/sampan-exchange/sampan/gateway"
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
