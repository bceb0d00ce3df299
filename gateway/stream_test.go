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
	"strconv"
	"strings"
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
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, w.url+"/r1/"+filings, src)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Road-Client", hcmcClient)
	req.ContentLength = -1
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
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
