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
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/pki"
)

// nginxOrSkip finds nginx; CI sets SAMPAN_REQUIRE_NGINX so that a missing
// one fails there instead of skipping.
func nginxOrSkip(t *testing.T) string {
	t.Helper()
	bin, _, err := findNginx("")
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

// fakeNginx makes a directory holding an "nginx" that tells its version
// and then fails at start as a bad configuration would.
func fakeNginx(t *testing.T) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake nginx is a shell script")
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nif [ \"$1\" = -V ]; then echo 'nginx version: nginx/1.22.1' >&2; exit 0; fi\n" +
		"echo 'nginx: [emerg] no such directive in the test' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func startTestNginx(t *testing.T, s nginxSetup) *nginxFloor {
	t.Helper()
	n, err := startNginx(t.Context(), s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.stop)
	return n
}

func post(c *http.Client, url string) (int, string, error) {
	resp, err := c.Post(url, "text/plain", strings.NewReader("hello"))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// The nginx floor echoes through its two proxies, and its inner proxy
// speaks mutual TLS 1.3 only: no TLS 1.2, no client without a
// certificate of the floor's CA.
func TestNginxFloor(t *testing.T) {
	bin := nginxOrSkip(t)
	backend := httptest.NewServer(http.HandlerFunc(echo))
	defer backend.Close()
	fp, err := newFloorPKI("bench nginx floor CA")
	if err != nil {
		t.Fatal(err)
	}
	n := startTestNginx(t, nginxSetup{bin: bin, backend: strings.TrimPrefix(backend.URL, "http://"), conns: 64, pki: fp})
	if !strings.HasPrefix(n.version, "nginx/") {
		t.Errorf("version %q", n.version)
	}
	if code, body, err := post(http.DefaultClient, n.url+"/echo"); err != nil || code != 200 || body != "hello" {
		t.Fatalf("through the chain: %d %q %v, want 200 and the body echoed", code, body, err)
	}
	other, err := newFloorPKI("another CA")
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(fp.ca.Cert)
	inner := func(cfg *tls.Config) (int, string, error) {
		cfg.RootCAs, cfg.ServerName = roots, floorName
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
		defer c.CloseIdleConnections()
		return post(c, "https://"+n.inner+"/echo")
	}
	// Offered whatever the server asks for: Go's client would otherwise
	// keep back a certificate of a CA the server does not name.
	offer := func(c tls.Certificate) func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &c, nil }
	}
	if code, body, err := inner(&tls.Config{MinVersion: tls.VersionTLS13, GetClientCertificate: offer(fp.client)}); err != nil || code != 200 || body != "hello" {
		t.Errorf("inner proxy with the client certificate: %d %q %v, want 200", code, body, err)
	}
	for name, cfg := range map[string]*tls.Config{
		"TLS 1.2":                    {MaxVersion: tls.VersionTLS12, GetClientCertificate: offer(fp.client)},
		"no client certificate":      {MinVersion: tls.VersionTLS13},
		"another CA's client's cert": {MinVersion: tls.VersionTLS13, GetClientCertificate: offer(other.client)},
	} {
		t.Run(name, func(t *testing.T) {
			// Refused in the handshake, or with nginx's 400 for a client
			// certificate missing or not verified.
			code, body, err := inner(cfg)
			if err == nil && code != http.StatusBadRequest {
				t.Errorf("inner proxy: %d %q, want a refusal", code, body)
			}
			if err != nil && !strings.Contains(err.Error(), "tls") {
				t.Errorf("inner proxy: %v, want a TLS refusal", err)
			}
		})
	}
	// nginx's processes are counted: exchanges take some of their CPU
	// (read from /proc in 10 ms ticks).
	if childCPU {
		before := n.cpu()
		rose := false
		for i := 0; i < 10000 && !rose; i++ {
			if code, _, err := post(http.DefaultClient, n.url+"/echo"); err != nil || code != 200 {
				t.Fatalf("through the chain: %d %v", code, err)
			}
			rose = i%100 == 99 && n.cpu() > before
		}
		if !rose {
			t.Errorf("nginx's CPU time %v before 10,000 exchanges, %v after", before, n.cpu())
		}
	}
	n.stop()
	if _, err := os.Stat(n.dir); !os.IsNotExist(err) {
		t.Errorf("nginx's directory left behind: %v", err)
	}
	if c, err := net.DialTimeout("tcp", strings.TrimPrefix(n.url, "http://"), time.Second); err == nil {
		c.Close()
		t.Error("nginx still listens after stop")
	}
}

// The outer proxy checks the inner one as a gateway checks its peer:
// TLS 1.3, a certificate of the floor's CA for the floor's name, and it
// shows its own client certificate.
func TestNginxFloorChecksItsUpstream(t *testing.T) {
	bin := nginxOrSkip(t)
	fp, err := newFloorPKI("bench nginx floor CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := newFloorPKI("another CA")
	if err != nil {
		t.Fatal(err)
	}
	clients := x509.NewCertPool()
	clients.AddCert(fp.ca.Cert)
	// The floor's CA, another name.
	k, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	c, err := fp.ca.Issue(k.Public(), pki.ProfileServer, pki.Template{CommonName: "elsewhere", DNSNames: []string{"elsewhere.invalid"}, IPs: []net.IP{net.IPv4(127, 0, 0, 1)}})
	if err != nil {
		t.Fatal(err)
	}
	elsewhere := tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: k, Leaf: c}
	for _, c := range []struct {
		name   string
		cert   tls.Certificate
		maxVer uint16
		want   int
	}{
		{"the floor's certificate over TLS 1.3", fp.server, tls.VersionTLS13, http.StatusOK},
		{"another CA's certificate", other.server, tls.VersionTLS13, http.StatusBadGateway},
		{"another name", elsewhere, tls.VersionTLS13, http.StatusBadGateway},
		{"TLS 1.2", fp.server, tls.VersionTLS12, http.StatusBadGateway},
	} {
		t.Run(c.name, func(t *testing.T) {
			var mu sync.Mutex
			var seen []string
			up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				seen = append(seen, tls.VersionName(r.TLS.Version)+" "+r.TLS.PeerCertificates[0].Issuer.CommonName)
				mu.Unlock()
				echo(w, r)
			}))
			up.TLS = &tls.Config{Certificates: []tls.Certificate{c.cert}, MaxVersion: c.maxVer, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clients}
			up.StartTLS()
			defer up.Close()
			n, err := startNginx(t.Context(), nginxSetup{bin: bin, backend: "127.0.0.1:9", conns: 64, pki: fp, upstream: up.Listener.Addr().String()})
			if c.want != http.StatusOK {
				// The readiness exchange itself fails: nginx does not
				// start as a floor.
				if err == nil {
					n.stop()
					t.Fatalf("nginx ready with %s as its inner proxy", c.name)
				}
				if !strings.Contains(err.Error(), "502") {
					t.Errorf("error %v, want the 502 of a refused upstream", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer n.stop()
			if code, body, err := post(http.DefaultClient, n.url+"/echo"); err != nil || code != c.want || body != "hello" {
				t.Errorf("through nginx: %d %q %v, want %d", code, body, err, c.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(seen) == 0 || seen[0] != "TLS 1.3 bench nginx floor CA" {
				t.Errorf("the upstream saw %v, want TLS 1.3 and a client certificate of the floor's CA", seen)
			}
		})
	}
}

// An nginx that cannot start says why, and leaves no directory behind.
func TestNginxThatFailsLeavesNothing(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	fp, err := newFloorPKI("bench nginx floor CA")
	if err != nil {
		t.Fatal(err)
	}
	_, err = startNginx(t.Context(), nginxSetup{bin: filepath.Join(fakeNginx(t), "nginx"), backend: "127.0.0.1:9", conns: 4, pki: fp})
	if err == nil || !strings.Contains(err.Error(), "no such directive") {
		t.Errorf("error %v, want nginx's own message", err)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

// With nginx there, a run measures it as a second floor next to the Go
// floor, counts its processes' CPU, and reports its throughput and
// Sampan's ratio to it.
func TestRunMeasuresNginx(t *testing.T) {
	bin := nginxOrSkip(t)
	var order []string
	measuring = func(name string) { order = append(order, name) }
	var ext []time.Duration
	extMeasured = func(name string, d time.Duration) {
		if name == "nginx" {
			ext = append(ext, d)
		}
	}
	defer func() { measuring, extMeasured = func(string) {}, func(string, time.Duration) {} }()
	rep, err := Run(t.Context(), Options{Duration: 400 * time.Millisecond, Warmup: 100 * time.Millisecond, Connections: 4, BodySize: 256, Rounds: 2, StreamBytes: -1, Nginx: bin}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := "backend floor nginx sampan sampan nginx floor"; !strings.HasPrefix(strings.Join(order, " "), want) {
		t.Errorf("measured %v, want %s first", order, want)
	}
	if len(ext) != 2 || childCPU && (ext[0] <= 0 || ext[1] <= 0) {
		t.Errorf("nginx's own CPU per measurement: %v", ext)
	}
	n := rep.Nginx
	if n == nil || n.Requests == 0 || n.Errors != 0 || childCPU && n.CPUsPer1k <= 0 || rep.RatioSampanToNginx != rep.Sampan.RPS/n.RPS || !strings.HasPrefix(rep.Config.Nginx, "nginx/") {
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

// An nginx named but missing, or named and failing, is refused before
// anything is measured.
func TestRunRefusesNamedNginx(t *testing.T) {
	measured := false
	measuring = func(string) { measured = true }
	defer func() { measuring = func(string) {} }()
	if _, err := Run(t.Context(), Options{Nginx: filepath.Join(t.TempDir(), "nginx")}, io.Discard); err == nil || !strings.Contains(err.Error(), "nginx") || measured {
		t.Errorf("a missing nginx: %v (measured: %v), want a refusal first", err, measured)
	}
	measured = false
	if _, err := Run(t.Context(), Options{Nginx: filepath.Join(fakeNginx(t), "nginx")}, io.Discard); err == nil || !strings.Contains(err.Error(), "no such directive") || measured {
		t.Errorf("an nginx that does not start: %v (measured: %v), want its error first", err, measured)
	}
	if bin, _, err := findNginx(NginxOff); bin != "" || err != nil {
		t.Errorf("off: %q %v", bin, err)
	}
}
