package ops

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

const testToken = "ops-token-for-tests-0123456789"

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// start runs a real server on a loopback port and stops it at the end of
// the test, checking that Serve then returned nil.
func start(t *testing.T, c Config) *Server {
	t.Helper()
	c.Log = quiet
	s, err := NewServer(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve() }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; err != nil {
			t.Errorf("Serve after Shutdown: %v", err)
		}
	})
	return s
}

func get(t *testing.T, s *Server, path, auth string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "GET", "http://"+s.Addr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestServerEndpoints(t *testing.T) {
	reg := NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "sampan_test_things_total", Help: "Things."})
	reg.MustRegister(c)
	c.Add(3)
	var ready atomic.Bool
	s := start(t, Config{
		Gatherer: reg,
		Ready:    func() (bool, any) { return ready.Load(), map[string]int{"serial": 7} },
		Handlers: map[string]http.Handler{"GET /records/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "records of "+r.URL.Path)
		})},
	})
	if h, _, _ := net.SplitHostPort(s.Addr()); h != "127.0.0.1" {
		t.Errorf("default address %s is not loopback", s.Addr())
	}

	status, _, body := get(t, s, "/metrics", "")
	if status != 200 || !strings.Contains(body, "sampan_test_things_total 3") || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics: %d %q", status, body)
	}
	status, hdr, body := get(t, s, "/healthz", "")
	var health map[string]string
	if status != 200 || json.Unmarshal([]byte(body), &health) != nil || health["status"] != "ok" || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("/healthz: %d %q", status, body)
	}
	for _, want := range []struct {
		ready  bool
		status int
		text   string
	}{{false, 503, "not ready"}, {true, 200, "ready"}} {
		ready.Store(want.ready)
		status, _, body := get(t, s, "/readyz", "")
		var got struct {
			Status  string
			Version string
			Detail  map[string]int
		}
		if err := json.Unmarshal([]byte(body), &got); err != nil || status != want.status || got.Status != want.text || got.Detail["serial"] != 7 || got.Version != Build().Version || got.Version == "" {
			t.Errorf("/readyz when ready=%v: %d %q", want.ready, status, body)
		}
	}
	if status, _, body := get(t, s, "/records/x", ""); status != 200 || body != "records of /records/x" {
		t.Errorf("/records/x: %d %q", status, body)
	}
	if status, _, _ := get(t, s, "/nothing", ""); status != 404 {
		t.Errorf("/nothing: %d, want 404", status)
	}
}

func TestServerToken(t *testing.T) {
	s := start(t, Config{
		Gatherer: NewRegistry(),
		Token:    testToken,
		Ready:    func() (bool, any) { return false, nil },
		Handlers: map[string]http.Handler{"/records/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "records")
		})},
	})
	for _, tc := range []struct {
		name, path, auth string
		want             int
	}{
		{"metrics without token", "/metrics", "", 401},
		{"metrics with the token", "/metrics", "Bearer " + testToken, 200},
		{"scheme in lower case", "/metrics", "bearer " + testToken, 200},
		{"wrong token", "/metrics", "Bearer not-the-token-at-all-000000", 401},
		{"token and more", "/metrics", "Bearer " + testToken + "x", 401},
		{"prefix of the token", "/metrics", "Bearer " + testToken[:len(testToken)-1], 401},
		{"empty token", "/metrics", "Bearer ", 401},
		{"token without scheme", "/metrics", testToken, 401},
		{"basic scheme", "/metrics", "Basic " + testToken, 401},
		{"mounted handler without token", "/records/1", "", 401},
		{"mounted handler with the token", "/records/1", "Bearer " + testToken, 200},
		{"unknown path without token", "/nothing", "", 401},
		{"dot segments to metrics", "/healthz/../metrics", "", 401},
		{"health without token", "/healthz", "", 200},
		{"readiness without token", "/readyz", "", 503},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+s.Addr(), nil)
			req.URL.Opaque = tc.path // sent as written, dot segments included
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tc.want, b)
			}
			if tc.want == 401 {
				var e struct{ Error string }
				if json.Unmarshal(b, &e) != nil || e.Error == "" || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("refusal %q (WWW-Authenticate %q) is not a JSON error with a Bearer challenge", b, resp.Header.Get("WWW-Authenticate"))
				}
				if strings.Contains(string(b), "go_goroutines") || strings.Contains(string(b), "records") {
					t.Errorf("refusal leaks the content: %q", b)
				}
			}
		})
	}
}

func TestNewServerRefuses(t *testing.T) {
	h := http.NotFoundHandler()
	for _, tc := range []struct {
		name string
		c    Config
	}{
		{"no gatherer", Config{}},
		{"handler on /metrics", Config{Gatherer: NewRegistry(), Handlers: map[string]http.Handler{"GET /metrics": h}}},
		{"handler on /healthz", Config{Gatherer: NewRegistry(), Handlers: map[string]http.Handler{"GET /healthz": h}}},
		{"bad pattern", Config{Gatherer: NewRegistry(), Handlers: map[string]http.Handler{"FETCH": h}}},
		{"nil handler", Config{Gatherer: NewRegistry(), Handlers: map[string]http.Handler{"/records/": nil}}},
		{"token with white space", Config{Gatherer: NewRegistry(), Token: " " + testToken}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewServer(tc.c); err == nil {
				t.Error("NewServer accepted it")
			}
		})
	}
}

// TestRunLifecycle: Run listens, serves, and on the end of its context
// stops within the shutdown timeout, returning nil; the port is closed
// afterwards.
func TestRunLifecycle(t *testing.T) {
	s, err := NewServer(Config{Gatherer: NewRegistry(), Log: quiet, ShutdownTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s.Addr() != "" {
		t.Errorf("Addr before Listen = %q, want empty", s.Addr())
	}
	if err := s.Serve(); err == nil {
		t.Error("Serve before Listen returned nil")
	}
	if err := s.Listen(); err != nil {
		t.Fatal(err)
	}
	addr := s.Addr()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if status, _, _ := get(t, s, "/healthz", ""); status != 200 {
		t.Fatalf("/healthz: %d", status)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Errorf("%s still accepts connections after Run returned", addr)
	}
}

// TestRunReportsListenFailure: an address in use is an error of Run, not
// a silent stop.
func TestRunReportsListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	s, err := NewServer(Config{Addr: ln.Addr().String(), Gatherer: NewRegistry(), Log: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context()); err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Run on a used address = %v, want an error naming it", err)
	}
}

func TestReadTokenFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"owner only, with a newline", write("ok", testToken+"\n", 0o600), testToken},
		{"read only", write("ro", testToken, 0o400), testToken},
		{"readable by the group", write("group", testToken, 0o640), ""},
		{"readable by all", write("all", testToken, 0o644), ""},
		{"too short", write("short", "abc", 0o600), ""},
		{"white space inside", write("space", "0123456789 abcdefgh", 0o600), ""},
		{"missing", filepath.Join(dir, "missing"), ""},
		{"a directory", dir, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ReadTokenFile(tc.path)
			if tc.want == "" {
				if err == nil {
					t.Errorf("accepted, token %q", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}
