package ops

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultAddr is the listen address of a Server whose Config names none:
// loopback, on a port the system picks. Daemons set their own fixed
// loopback default.
const DefaultAddr = "127.0.0.1:0"

// Paths every Server answers.
const (
	PathMetrics = "/metrics"
	PathHealth  = "/healthz"
	PathReady   = "/readyz"
)

// Timeouts of a Server.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// DefaultWriteTimeout bounds writing one response unless
	// Config.WriteTimeout says otherwise.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultShutdownTimeout is how long Run lets requests in flight
	// finish once its context ends, unless Config.ShutdownTimeout says
	// otherwise.
	DefaultShutdownTimeout = 5 * time.Second
)

// Config describes a Server. The zero value of each optional field is
// documented with it.
type Config struct {
	// Addr is the TCP address to listen on. Default DefaultAddr.
	Addr string
	// Listener, when set, is used by Listen instead of opening Addr.
	Listener net.Listener
	// Gatherer is served at /metrics. Required.
	Gatherer prometheus.Gatherer
	// Ready reports readiness for /readyz, with a detail that goes into
	// the JSON answer. Nil: always ready.
	Ready func() (ready bool, detail any)
	// Handlers are mounted beside the fixed paths, keyed by
	// http.ServeMux pattern (for example "/records/" or
	// "GET /records/{id}"). A pattern that clashes with a fixed path is
	// refused by NewServer.
	Handlers map[string]http.Handler
	// Token, when set, is required as "Authorization: Bearer <Token>" on
	// every path except /healthz and /readyz. Empty: no token.
	Token string
	// WriteTimeout bounds writing one response. Default
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop of Run. Default
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Log receives the server's errors. Default slog.Default().
	Log *slog.Logger
}

// Server is an operations listener: Prometheus metrics, liveness and
// readiness, and the handlers a daemon mounts on it. Its lifecycle is
// Listen, then Serve (or Run), then Shutdown.
type Server struct {
	cfg     Config
	handler http.Handler
	srv     *http.Server

	mu sync.Mutex
	ln net.Listener
}

// NewServer checks c and builds a server; it opens nothing.
func NewServer(c Config) (*Server, error) {
	if c.Gatherer == nil {
		return nil, errors.New("ops server: no gatherer")
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Token != "" && strings.TrimSpace(c.Token) != c.Token {
		return nil, errors.New("ops server: token has surrounding white space")
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+PathMetrics, MetricsHandler(c.Gatherer))
	mux.HandleFunc("GET "+PathHealth, func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET "+PathReady, func(w http.ResponseWriter, r *http.Request) {
		ready, detail := true, any(nil)
		if c.Ready != nil {
			ready, detail = c.Ready()
		}
		if ready {
			writeJSON(w, http.StatusOK, readyBody{Status: "ready", Version: Build().Version, Detail: detail})
			return
		}
		writeJSON(w, http.StatusServiceUnavailable, readyBody{Status: "not ready", Version: Build().Version, Detail: detail})
	})
	for pattern, h := range c.Handlers {
		if err := mount(mux, pattern, h); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: c, handler: requireToken(c.Token, mux)}
	s.srv = &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      c.WriteTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(c.Log.Handler(), slog.LevelDebug),
	}
	return s, nil
}

// mount registers h for pattern, turning the mux's panic on a bad or
// clashing pattern into an error.
func mount(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	if h == nil {
		return fmt.Errorf("ops server: handler for %q is nil", pattern)
	}
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("ops server: mount %q: %v", pattern, p)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}

// readyBody is the answer of /readyz: the status, the daemon's detail
// and the running build's version (as `sampan version` prints it), so
// that a rolling upgrade can be followed from the load balancer's checks.
type readyBody struct {
	Status  string `json:"status"`
	Version string `json:"version"`
	Detail  any    `json:"detail,omitempty"`
}

type errorBody struct {
	Error string `json:"error"`
}

// requireToken refuses, when token is set, every request but those of
// the liveness and readiness probes that lacks the bearer token.
func requireToken(token string, next http.Handler) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == PathHealth || r.URL.Path == PathReady {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		// Both sides are hashed so that the comparison takes as long
		// whatever the length of what was sent.
		gh := sha256.Sum256([]byte(got))
		if subtle.ConstantTimeCompare(gh[:], want[:]) != 1 || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="sampan-ops"`)
			writeJSON(w, http.StatusUnauthorized, errorBody{"missing or wrong bearer token"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// bearer returns the token of an "Authorization: Bearer" header value.
func bearer(h string) (string, bool) {
	const scheme = "bearer "
	if len(h) <= len(scheme) || !strings.EqualFold(h[:len(scheme)], scheme) {
		return "", false
	}
	return h[len(scheme):], true
}

// Handler returns the server's handler, token check included, for tests
// and for callers serving it themselves.
func (s *Server) Handler() http.Handler { return s.handler }

// Listen opens the listener (or adopts Config.Listener). Addr is known
// once it returns.
func (s *Server) Listen() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		return errors.New("ops server: already listening")
	}
	if s.cfg.Listener != nil {
		s.ln = s.cfg.Listener
		return nil
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", s.cfg.Addr, err)
	}
	s.ln = ln
	return nil
}

// Addr returns the address the server listens on, or "" before Listen.
func (s *Server) Addr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return ""
	}
	return s.ln.Addr().String()
}

// Serve answers requests on the listener Listen opened until Shutdown;
// it then returns nil.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("ops server: Serve before Listen")
	}
	s.cfg.Log.Info("operations listener serving", "addr", ln.Addr().String(), "token", s.cfg.Token != "")
	if err := s.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("ops server: %w", err)
	}
	return nil
}

// Shutdown stops the server: it closes the listener, lets requests in
// flight finish until ctx ends, then closes what remains.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	s.mu.Lock()
	if s.ln != nil {
		s.ln.Close() // when Serve never ran
	}
	s.mu.Unlock()
	return err
}

// Run listens (unless Listen was called), serves until ctx ends, shuts
// down within Config.ShutdownTimeout, and returns once the server has
// stopped. It returns nil on a stop by ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.Addr() == "" {
		if err := s.Listen(); err != nil {
			return err
		}
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Serve() }()
	select {
	case err := <-errc:
		s.Shutdown(context.Background())
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	s.Shutdown(sctx)
	return <-errc
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
