package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
)

// PeerLimits bound what other gateways can hold at this gateway's peer
// side: a registered gateway is trusted to be who it is, not to be well
// behaved.
type PeerLimits struct {
	// BodyIdleTimeout drops an exchange whose request body stops
	// arriving, or whose answer the peer stops taking, for this long.
	// Default 30s.
	BodyIdleTimeout cfg.Duration `json:"body_idle_timeout"`
	// HandshakeTimeout bounds the TLS handshake and the request head.
	// Default 10s.
	HandshakeTimeout cfg.Duration `json:"handshake_timeout"`
	// ConnsPerPeer bounds the connections of one peer gateway (by its
	// certificate). Default 640: above the 512 a Sampan gateway opens to
	// one provider.
	ConnsPerPeer int `json:"conns_per_peer"`
	// MaxConns bounds the peer side's connections in all, handshakes
	// included. Default 4096.
	MaxConns int `json:"max_conns"`
	// StreamsPerConn bounds the concurrent HTTP/2 streams on one
	// connection. Default 250.
	StreamsPerConn int `json:"streams_per_conn"`
}

func (l *PeerLimits) setDefaults() {
	if l.BodyIdleTimeout == 0 {
		l.BodyIdleTimeout = cfg.Duration(30 * time.Second)
	}
	if l.HandshakeTimeout == 0 {
		l.HandshakeTimeout = cfg.Duration(10 * time.Second)
	}
	if l.ConnsPerPeer == 0 {
		l.ConnsPerPeer = 640
	}
	if l.MaxConns == 0 {
		l.MaxConns = 4096
	}
	if l.StreamsPerConn == 0 {
		l.StreamsPerConn = 250
	}
}

func (l *PeerLimits) validate() error {
	switch {
	case l.BodyIdleTimeout.D() < 100*time.Millisecond:
		return errors.New("peer_limits.body_idle_timeout: must be at least 100ms")
	case l.HandshakeTimeout.D() < 100*time.Millisecond:
		return errors.New("peer_limits.handshake_timeout: must be at least 100ms")
	case l.ConnsPerPeer < 1:
		return errors.New("peer_limits.conns_per_peer: must be positive")
	case l.MaxConns < l.ConnsPerPeer:
		return fmt.Errorf("peer_limits.max_conns: must be at least conns_per_peer (%d)", l.ConnsPerPeer)
	case l.StreamsPerConn < 1 || l.StreamsPerConn > 1000:
		return errors.New("peer_limits.streams_per_conn: must be 1 to 1000")
	}
	return nil
}

// idleBody ends a request body's reads once none has made progress for
// the timeout: each read pushes the stream's read deadline on. Once the
// body ends, fails or is interrupted, the deadline is lifted, so that it
// cannot cut the answer that follows, and later reads fail as the first
// did.
type idleBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration

	mu      sync.Mutex
	stopped bool
	err     error
	until   time.Time // the deadline last set
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	if b.err != nil || b.stopped {
		b.mu.Unlock()
		return 0, b.failed()
	}
	b.until = pushDeadline(b.until, b.timeout, b.rc.SetReadDeadline)
	b.mu.Unlock()
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.mu.Lock()
		b.err = err
		b.rc.SetReadDeadline(time.Time{})
		b.mu.Unlock()
	}
	return n, err
}

func (b *idleBody) failed() error {
	if b.err != nil {
		return b.err
	}
	return os.ErrDeadlineExceeded
}

// interrupt ends a read under way, and every later one.
func (b *idleBody) interrupt() {
	b.mu.Lock()
	b.stopped = true
	b.rc.SetReadDeadline(time.Now())
	b.mu.Unlock()
}

// interruptBody ends the reads of r's body: those under way and later
// ones.
func interruptBody(w http.ResponseWriter, r *http.Request) {
	if b, ok := r.Body.(*idleBody); ok {
		b.interrupt()
		return
	}
	http.NewResponseController(w).SetReadDeadline(time.Now())
}

// idleWriter ends an answer that the peer stops taking: each write pushes
// the stream's write deadline on, so a write that makes no progress for
// the timeout fails, and the handler gives up the answer and the
// service's response.
type idleWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	until   time.Time // the deadline last set
}

func (w *idleWriter) Write(p []byte) (int, error) {
	w.until = pushDeadline(w.until, w.timeout, w.rc.SetWriteDeadline)
	return w.ResponseWriter.Write(p)
}

// pushDeadline moves a deadline to timeout from now, with set, once less
// than three quarters of the timeout is left: a stream that makes progress
// pays for a deadline now and then rather than at every read or write,
// and one that stops is dropped after between 3/4 and all of the timeout.
func pushDeadline(until time.Time, timeout time.Duration, set func(time.Time) error) time.Time {
	now := time.Now()
	if until.Sub(now) >= timeout*3/4 {
		return until
	}
	until = now.Add(timeout)
	set(until)
	return until
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *idleWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// peerConns counts the peer side's connections: before their handshake
// per source address (a peer is not known yet), after it per peer
// gateway; it closes one that would take either past its limit. Those
// not yet authenticated get at most half of all connections, and one
// source at most what one peer may hold (a gateway opens a burst of
// connections at once) and half of that half, so that silent
// connections from a few addresses cannot lock registered gateways out.
type peerConns struct {
	limit int
	mu    sync.Mutex
	of    map[net.Conn]string // connection → peer certificate fingerprint
	count map[string]int

	pendingMax, pendingPerSource int
	pending                      map[net.Conn]string // connection → source
	pendingOf                    map[string]int
}

func newPeerConns(limit, maxConns int) *peerConns {
	pm := max(maxConns/2, 1)
	return &peerConns{limit: limit, of: map[net.Conn]string{}, count: map[string]int{},
		pendingMax: pm, pendingPerSource: max(min(limit, pm/2), 1),
		pending: map[net.Conn]string{}, pendingOf: map[string]int{}}
}

// sourceOf is the address a connection's pre-handshake count is kept by.
func sourceOf(c net.Conn) string {
	host, _, err := net.SplitHostPort(c.RemoteAddr().String())
	if err != nil {
		return c.RemoteAddr().String()
	}
	ip := net.ParseIP(host)
	if ip == nil || ip.To4() != nil {
		return host
	}
	return ip.Mask(net.CIDRMask(64, 128)).String()
}

// unpend forgets a connection's pre-handshake count; p.mu is held.
func (p *peerConns) unpend(c net.Conn) {
	if src, ok := p.pending[c]; ok {
		delete(p.pending, c)
		if p.pendingOf[src]--; p.pendingOf[src] == 0 {
			delete(p.pendingOf, src)
		}
	}
}

// track is the peer server's ConnState hook. A new connection counts
// against its source until its first request; it is then counted against
// its peer gateway, named by the handshake.
// open reports how many peer connections are open (past their handshake).
func (p *peerConns) open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.of)
}

func (p *peerConns) track(c net.Conn, s http.ConnState) {
	switch s {
	case http.StateNew:
		src := sourceOf(c)
		p.mu.Lock()
		if len(p.pending) >= p.pendingMax || p.pendingOf[src] >= p.pendingPerSource {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.pending[c] = src
		p.pendingOf[src]++
		p.mu.Unlock()
	case http.StateActive:
		p.mu.Lock()
		if _, ok := p.of[c]; ok {
			p.mu.Unlock()
			return
		}
		p.unpend(c)
		tc, ok := c.(*tls.Conn)
		if !ok {
			p.mu.Unlock()
			return
		}
		cs := tc.ConnectionState()
		if len(cs.PeerCertificates) == 0 {
			p.mu.Unlock()
			return
		}
		fp := pki.CachedFingerprint(cs.PeerCertificates[0].Raw)
		if p.count[fp] >= p.limit {
			p.mu.Unlock()
			c.Close()
			return
		}
		p.of[c] = fp
		p.count[fp]++
		p.mu.Unlock()
	case http.StateClosed, http.StateHijacked:
		p.mu.Lock()
		p.unpend(c)
		if fp, ok := p.of[c]; ok {
			delete(p.of, c)
			if p.count[fp]--; p.count[fp] == 0 {
				delete(p.count, fp)
			}
		}
		p.mu.Unlock()
	}
}

// limitListener holds at most n connections open at once: past it, a new
// connection is closed at once.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func newLimitListener(ln net.Listener, n int) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, n)}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &releasingConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			c.Close()
		}
	}
}

type releasingConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releasingConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// quietHandler passes at most burst records of one message and level per
// window to next; the records past that are counted, and the next record
// of that message to pass says how many were left out. A peer that
// floods refused or reset streams costs a few lines a window, not one a
// stream. Errors always pass.
type quietHandler struct {
	next   slog.Handler
	shared *quietState
}

type quietState struct {
	burst  int
	window time.Duration
	mu     sync.Mutex
	seen   map[quietKey]*quietCount
}

type quietKey struct {
	msg   string
	level slog.Level
}

type quietCount struct {
	start      time.Time
	n, dropped int
}

// maxQuietKeys bounds the messages tracked; messages are constants of
// the code, so this is never reached in practice.
const maxQuietKeys = 1024

func newQuietHandler(next slog.Handler, burst int, window time.Duration) *quietHandler {
	return &quietHandler{next: next, shared: &quietState{burst: burst, window: window, seen: map[quietKey]*quietCount{}}}
}

func (h *quietHandler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		return h.next.Handle(ctx, r)
	}
	s, k := h.shared, quietKey{r.Message, r.Level}
	s.mu.Lock()
	c := s.seen[k]
	if c == nil {
		if len(s.seen) >= maxQuietKeys {
			clear(s.seen)
		}
		c = &quietCount{start: r.Time}
		s.seen[k] = c
	}
	if r.Time.Sub(c.start) >= s.window {
		c.start, c.n = r.Time, 0
	}
	if c.n >= s.burst {
		c.dropped++
		s.mu.Unlock()
		return nil
	}
	c.n++
	dropped := c.dropped
	c.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("similar_lines_left_out", dropped))
	}
	return h.next.Handle(ctx, r)
}

func (h *quietHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &quietHandler{next: h.next.WithAttrs(as), shared: h.shared}
}

func (h *quietHandler) WithGroup(name string) slog.Handler {
	return &quietHandler{next: h.next.WithGroup(name), shared: h.shared}
}
