package bench

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nginxOrSkip finds nginx; CI sets SAMPAN_REQUIRE_NGINX so that a missing
// one fails there instead of skipping.
func nginxOrSkip(t *testing.T) string {
	t.Helper()
	bin, err := findNginx("")
	if err != nil {
		t.Fatal(err)
	}
	if bin == "" {
		if os.Getenv("SAMPAN_REQUIRE_NGINX") != "" {
			t.Fatal("nginx is not installed, and SAMPAN_REQUIRE_NGINX is set")
		}
		t.Skip("nginx is not installed")
	}
	return bin
}

// The nginx floor echoes through its two proxies, and its inner proxy
// speaks mutual TLS 1.3 only: no TLS 1.2, no client without a
// certificate of the floor's CA.
func TestNginxFloor(t *testing.T) {
	bin := nginxOrSkip(t)
	backend := httptest.NewServer(http.HandlerFunc(echo))
	defer backend.Close()
	fp, err := newFloorPKI()
	if err != nil {
		t.Fatal(err)
	}
	n, err := startNginx(bin, strings.TrimPrefix(backend.URL, "http://"), fp)
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	defer func() {
		if !stopped {
			n.stop()
		}
	}()
	if !strings.HasPrefix(n.version, "nginx/") {
		t.Errorf("version %q", n.version)
	}
	post := func(c *http.Client, url string) (int, string, error) {
		resp, err := c.Post(url, "text/plain", strings.NewReader("hello"))
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := post(http.DefaultClient, n.url+"/echo"); err != nil || code != 200 || body != "hello" {
		t.Fatalf("through the chain: %d %q %v, want 200 and the body echoed", code, body, err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(fp.ca.Cert)
	inner := func(cfg *tls.Config) (int, string, error) {
		cfg.RootCAs, cfg.ServerName = roots, floorName
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		return post(c, "https://"+n.inner+"/echo")
	}
	if code, body, err := inner(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{fp.client}}); err != nil || code != 200 || body != "hello" {
		t.Errorf("inner proxy with the client certificate: %d %q %v, want 200", code, body, err)
	}
	if code, _, err := inner(&tls.Config{MaxVersion: tls.VersionTLS12, Certificates: []tls.Certificate{fp.client}}); err == nil {
		t.Errorf("inner proxy over TLS 1.2: %d, want a failed handshake", code)
	}
	if code, _, err := inner(&tls.Config{MinVersion: tls.VersionTLS13}); err == nil && code != http.StatusBadRequest {
		t.Errorf("inner proxy without a client certificate: %d, want a refusal", code)
	}
	other, err := newFloorPKI()
	if err != nil {
		t.Fatal(err)
	}
	if code, _, err := inner(&tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{other.client}}); err == nil && code != http.StatusBadRequest {
		t.Errorf("inner proxy with another CA's client certificate: %d, want a refusal", code)
	}
	// nginx's processes are counted: a few hundred exchanges take some
	// of their CPU (read from /proc in 10 ms ticks).
	before := n.cpu()
	for range 500 {
		if code, _, err := post(http.DefaultClient, n.url+"/echo"); err != nil || code != 200 {
			t.Fatalf("through the chain: %d %v", code, err)
		}
	}
	if after := n.cpu(); after <= before {
		t.Errorf("nginx's CPU time %v before 500 exchanges, %v after", before, after)
	}
	n.stop()
	stopped = true
	if _, err := os.Stat(n.dir); !os.IsNotExist(err) {
		t.Errorf("nginx's directory left behind: %v", err)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("nginx still listens after stop")
	}
}

// With nginx there, a run measures it as a second floor next to the Go
// floor, and reports its throughput and Sampan's ratio to it.
func TestRunMeasuresNginx(t *testing.T) {
	bin := nginxOrSkip(t)
	var order []string
	measuring = func(name string) { order = append(order, name) }
	defer func() { measuring = func(string) {} }()
	rep, err := Run(t.Context(), Options{Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond, Connections: 4, BodySize: 256, Rounds: 2, StreamBytes: -1, Nginx: bin}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "backend floor nginx sampan sampan nginx floor"; !strings.HasPrefix(strings.Join(order, " "), want) {
		t.Errorf("measured %v, want %s first", order, want)
	}
	n := rep.Nginx
	if n == nil || n.Requests == 0 || n.Errors != 0 || n.CPUsPer1k <= 0 || rep.RatioSampanToNginx != rep.Sampan.RPS/n.RPS || !strings.HasPrefix(rep.Config.Nginx, "nginx/") {
		t.Fatalf("nginx %+v, ratio %v, version %q", n, rep.RatioSampanToNginx, rep.Config.Nginx)
	}
	for i, r := range rep.Rounds {
		if r.NginxRPS <= 0 {
			t.Errorf("round %d: no nginx rate", i)
		}
	}
	var b strings.Builder
	rep.Print(&b)
	if !strings.Contains(b.String(), "ratio sampan/nginx: ") {
		t.Errorf("printed report lacks nginx:\n%s", b.String())
	}
}

// An nginx named but missing is refused before anything runs.
func TestRunRefusesMissingNginx(t *testing.T) {
	measured := false
	measuring = func(string) { measured = true }
	defer func() { measuring = func(string) {} }()
	if _, err := Run(t.Context(), Options{Nginx: filepath.Join(t.TempDir(), "nginx")}, io.Discard); err == nil || !strings.Contains(err.Error(), "nginx") || measured {
		t.Errorf("a missing nginx: %v (measured: %v), want a refusal first", err, measured)
	}
	if bin, err := findNginx(NginxOff); bin != "" || err != nil {
		t.Errorf("off: %q %v", bin, err)
	}
}
