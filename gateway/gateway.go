// Package gateway is the daemon every member organisation runs. On its
// client side it speaks the X-Road Message Protocol for REST (r1) to the
// organisation's information systems; on its peer side it talks to other
// gateways over mutual TLS 1.3, signing every request and response with the
// member's key; on its provider side it enforces access rights and forwards
// to the backends. Bodies are streamed, never stored.
package gateway

import (
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/busy"
	"github.com/sampan-exchange/sampan/internal/dirlock"
	"github.com/sampan-exchange/sampan/internal/warm"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/opmon"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// Gateway is a running gateway.
type Gateway struct {
	lock *dirlock.Lock // held on the data directory while open

	cfg        *Config
	dir        string
	log        *slog.Logger
	peerLog    *slog.Logger // the peer side's, quiet under floods
	db         *sql.DB
	sigs       *pki.VerifyCache // batch roots already verified
	mlog       *msglog.Log
	replay     *replayGuard
	stamp      stamper
	anchor     *conf.Anchor
	sync       *confSync
	conf       atomic.Pointer[confState]  // the gateway's own instance
	fed        federation                 // federated instances
	live       atomic.Pointer[liveConfig] // the settings a reload may change
	reloadMu   sync.Mutex
	loadConfig func() (*Config, error)
	refreshMu  sync.Mutex // one forced refresh at a time
	lastForced time.Time

	peerRT   http.RoundTripper // peers, possibly wrapped
	backends *http.Transport   // to services
	clock    func() time.Time

	// The keys and the transport to providers a renewal switches
	// (renew.go).
	keys        atomic.Pointer[keyring]
	keysMu      sync.Mutex                     // one switch at a time; guards retired
	batchBusy   func() bool                    // Options.BatchBusy, for keys loaded later
	batchWindow time.Duration                  // Options.BatchWindow
	peers       atomic.Pointer[http.Transport] // to provider gateways
	retired     []*http.Transport              // replaced ones, closed once idle
	peersConf   atomic.Pointer[confState]      // the domestic configuration peers follows

	// Run's goroutines (bg) are joined before Run returns, and Close
	// ends Run (life) and waits for it (running) before closing the log.
	bg       sync.WaitGroup
	handlers sync.WaitGroup // requests being handled
	running  sync.WaitGroup
	life     context.Context
	end      context.CancelFunc
	registry *prometheus.Registry
	metrics  *metrics     // nil when monitoring.metrics is off
	opmon    *opmon.Store // nil when monitoring.records is off
	opsLn    net.Listener
	conns    *peerConns // the peer side's connections

	clientLn, peerLn net.Listener
	clientTLSConf    *tls.Config // the client side's HTTPS
	warm             *warm.Pool  // runs peer requests on grown stacks
}

// Options are what the program embedding a gateway gives it besides its
// configuration: where it logs, and the seams drills and tests use. The
// zero value is the production default.
type Options struct {
	// Log receives the gateway's log lines. Default slog.Default().
	Log *slog.Logger
	// Clock is what the gateway judges the configuration's expiry by, and
	// signs and checks the times of peer requests by (a clock moved past
	// replay.max_skew from its peers' makes them refuse its requests,
	// and it theirs). Drills move it to rehearse an authority outage
	// without waiting for the configuration to expire. Default time.Now.
	Clock func() time.Time
	// PeerTransport, when set, wraps the transport requests to provider
	// gateways go through, for instrumentation and fault injection.
	PeerTransport func(http.RoundTripper) http.RoundTripper
	// LoadConfig loads the configuration again for a reload (Reload,
	// POST /config/reload): the same way as the one given to New, with
	// whatever the program put into it from elsewhere (the environment).
	// Default: the file the configuration was loaded from, if any.
	LoadConfig func() (*Config, error)
	// Metrics is the registry the gateway's metrics go in, served on its
	// operations listener. Default: one of its own (ops.NewRegistry).
	Metrics *prometheus.Registry
	// BatchBusy tells when the gateway signs its messages in batches
	// (pki.BatchSigner), each gathering for BatchWindow. Defaults: while
	// the process is busy (package busy), and 1ms.
	BatchBusy   func() bool
	BatchWindow time.Duration
}

// New opens the gateway in dir with its keys, certificates and state, and
// loads the cached shared configuration. It does not listen yet: see Run.
//
// The data directory is locked while the gateway is open (a restore
// refuses a locked one); Close releases it.
func New(ctx context.Context, c *Config, dir string, o Options) (*Gateway, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	g, err := newGateway(ctx, c, dir, o)
	if err != nil {
		lock.Release()
		return nil, err
	}
	g.lock = lock
	return g, nil
}

func newGateway(ctx context.Context, c *Config, dir string, o Options) (*Gateway, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.BatchBusy == nil {
		o.BatchBusy = busy.Busy
	}
	if o.BatchWindow == 0 {
		o.BatchWindow = defaultBatchWindow
	}
	start := time.Now()
	g := &Gateway{cfg: c, dir: dir, log: log.With("component", "gateway", "gateway", c.ID.String()),
		warm: warm.New(warmIdle), clock: o.Clock, registry: o.Metrics}
	if g.registry == nil {
		g.registry = ops.NewRegistry()
	}
	g.life, g.end = context.WithCancel(context.Background())
	pl := c.PeerLimits
	g.conns = newPeerConns(pl.ConnsPerPeer, pl.MaxConns)
	g.peerLog = slog.New(newQuietHandler(g.log.Handler(), quietBurst, quietWindow))
	g.live.Store(newLiveConfig(c))
	g.loadConfig = o.LoadConfig
	if g.loadConfig == nil && c.file != "" {
		file := c.file
		g.loadConfig = func() (*Config, error) { return LoadConfig(file) }
	}
	var err error
	if g.anchor, err = conf.ReadAnchor(c.anchorPath()); err != nil {
		return nil, err
	}
	if g.anchor.Instance != c.ID.Instance {
		return nil, fmt.Errorf("anchor is for instance %s, gateway %s is of %s", g.anchor.Instance, c.ID, c.ID.Instance)
	}
	g.sigs = pki.NewVerifyCache()
	g.batchBusy, g.batchWindow = o.BatchBusy, o.BatchWindow
	kr, err := loadKeys(dir, c.ID, o.BatchBusy, o.BatchWindow)
	if err != nil {
		return nil, err
	}
	g.keys.Store(kr)
	if g.db, err = store.Open(ctx, filepath.Join(dir, stateFile), stateMigrations); err != nil {
		return nil, err
	}
	g.sync = newConfSync(g, g.anchor, &g.conf, g.onConfChange)
	g.peers.Store(g.newPeerTransport())
	g.peerRT = attemptLimit{peerTransport{g}}
	if o.PeerTransport != nil {
		g.peerRT = o.PeerTransport(g.peerRT)
	}
	if err := g.sync.loadCached(ctx); err != nil {
		g.db.Close()
		return nil, err
	}
	dsn := c.Log.IndexDSN
	logName := c.ID.String()
	if c.Log.Node != "" {
		logName += "#" + c.Log.Node
	}
	if g.mlog, err = msglog.Open(ctx, filepath.Join(dir, logDir), logName, msglog.Options{IndexDSN: dsn, Retention: c.Log.Retention.D(), Registerer: g.registry}, g.log); err != nil {
		g.db.Close()
		return nil, err
	}
	if g.replay, err = newReplayGuard(c.Replay, g.mlog, dir, start); err != nil {
		g.mlog.Close(ctx)
		g.db.Close()
		return nil, err
	}
	if c.Monitoring.Metrics == On {
		if g.metrics, err = newMetrics(g.registry, g); err != nil {
			g.mlog.Close(ctx)
			g.db.Close()
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	if c.Monitoring.Records == On {
		g.opmon, err = opmon.Open(ctx, opmon.Options{
			SQLitePath: filepath.Join(dir, opmonFile), DSN: dsn, Retention: c.Monitoring.Retention.D(),
			Registerer: g.registry, Logger: g.log, Clock: o.Clock,
		})
		if err != nil {
			g.mlog.Close(ctx)
			g.db.Close()
			return nil, fmt.Errorf("monitoring records: %w", err)
		}
	}
	g.reconcileFederation(ctx)
	g.initStamper()
	g.backends = &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		TLSClientConfig:     c.backendTLS,
	}
	return g, nil
}

// newPeerTransport returns a transport to provider gateways, whose
// connections present the authentication certificate in use when each
// opens.
func (g *Gateway) newPeerTransport() *http.Transport {
	return &http.Transport{
		DialTLSContext:        g.dialPeer,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   maxIdlePeerConns,
		MaxConnsPerHost:       maxPeerConns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: g.cfg.PeerTimeout.D(),
		DisableCompression:    true,
	}
}

// peerTransport sends each request on the gateway's current transport
// to provider gateways, after following the domestic configuration
// (followConf).
type peerTransport struct{ g *Gateway }

func (t peerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if st := t.g.conf.Load(); st != nil && st != t.g.peersConf.Load() {
		t.g.followConf(st)
	}
	return t.g.peers.Load().RoundTrip(r)
}

// maxIdlePeerConns bounds the idle connections kept to one provider
// gateway. Over HTTP/1.1 each carries one exchange at a time: the pool
// must hold a burst's worth, or each burst pays full mutual-TLS
// handshakes again.
const maxIdlePeerConns = 256

// The peer side's log passes quietBurst lines of one message per
// quietWindow, and counts the rest.
const (
	quietBurst  = 20
	quietWindow = 10 * time.Second
)

// tracked counts h's requests in g.handlers, which Run waits for.
func (g *Gateway) tracked(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g.handlers.Add(1)
		defer g.handlers.Done()
		h.ServeHTTP(w, r)
	})
}

// shutdownGrace is how long exchanges under way may take to finish when
// the gateway stops.
const shutdownGrace = 10 * time.Second

// maxPeerConns bounds the connections to one provider gateway: past it,
// exchanges wait for one to free up rather than each opening its own.
const maxPeerConns = 512

// now is the gateway's clock (Options.Clock).
func (g *Gateway) now() time.Time { return g.clock() }

// peerConnCount reports the open peer connections.
func (g *Gateway) peerConnCount() int { return g.conns.open() }

// Registry returns the registry of the gateway's metrics.
func (g *Gateway) Registry() *prometheus.Registry { return g.registry }

// ID returns the gateway's identifier.
func (g *Gateway) ID() ident.GatewayID { return g.cfg.ID }

// AuthFingerprint returns the SHA-256 of the authentication certificate,
// as registered at the authority.
func (g *Gateway) AuthFingerprint() string { return g.keys.Load().authFP }

// Close stops Run if it is still running and waits for it, then releases
// the log, the state database and idle connections.
func (g *Gateway) Close() error {
	g.end()
	g.running.Wait()
	g.warm.Close()
	g.closeIdlePeers()
	g.backends.CloseIdleConnections()
	// The evidence log first, with its own time: the monitoring records
	// must not eat into it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := g.mlog.Close(ctx)
	if g.opmon != nil {
		octx, ocancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer ocancel()
		err = errors.Join(err, g.opmon.Close(octx))
	}
	return errors.Join(err, g.db.Close(), g.lock.Release())
}

// LogDir returns the directory of the gateway's message log.
func (g *Gateway) LogDir() string { return filepath.Join(g.dir, logDir) }

// onConfChange follows a new domestic configuration: connections made
// under the old one are dropped once idle, and federations follow.
func (g *Gateway) onConfChange() {
	g.closeIdlePeers()
	g.reconcileFederation(context.Background())
	if st := g.conf.Load(); st != nil {
		if p := g.registrationProblem(st); p != "" {
			g.log.Error("the gateway cannot serve: "+p, "serial", st.cfg.Serial)
		}
	}
}

// registrationProblem says, when the configuration st does not register
// this gateway's authentication certificate as this gateway's, what is
// wrong; "" when it does. Other gateways refuse an unregistered one.
func (g *Gateway) registrationProblem(st *confState) string {
	fp := g.keys.Load().authFP
	gw := st.cfg.GatewayByFingerprint(fp)
	switch {
	case gw == nil:
		return fmt.Sprintf("its authentication certificate (sha256 %s) is not registered in the shared configuration of %s: register it for %s at the authority", fp, st.cfg.Instance, g.cfg.ID)
	case gw.ID != g.cfg.ID:
		return fmt.Sprintf("its authentication certificate (sha256 %s) is registered to gateway %s, not to %s", fp, gw.ID, g.cfg.ID)
	}
	return ""
}

// Ready reports whether the gateway holds an unexpired configuration
// that registers it.
func (g *Gateway) Ready() bool {
	st := g.conf.Load()
	return st != nil && !st.cfg.Expired(g.now()) && g.registrationProblem(st) == ""
}

// RefreshConf downloads the configuration once, now, and then those of
// the federated instances.
func (g *Gateway) RefreshConf(ctx context.Context) error {
	if err := g.sync.fetch(ctx); err != nil {
		return err
	}
	return g.refreshForeign(ctx)
}

// Listen opens the client, peer and operations listeners, so that their
// addresses are known before Run.
func (g *Gateway) Listen() error {
	var err error
	if g.clientLn, err = net.Listen("tcp", g.cfg.ClientListen); err != nil {
		return fmt.Errorf("listen client side %s (client_listen): %w", g.cfg.ClientListen, err)
	}
	if g.peerLn, err = net.Listen("tcp", g.cfg.PeerListen); err != nil {
		g.clientLn.Close()
		return fmt.Errorf("listen peer side %s (peer_listen): %w", g.cfg.PeerListen, err)
	}
	if g.opsLn, err = net.Listen("tcp", g.cfg.OpsListen); err != nil {
		g.clientLn.Close()
		g.peerLn.Close()
		return fmt.Errorf("listen operations %s (ops_listen; every gateway on a host needs its own): %w", g.cfg.OpsListen, err)
	}
	if g.clientTLSConf, err = g.clientTLS(); err != nil {
		g.clientLn.Close()
		g.peerLn.Close()
		g.opsLn.Close()
		return err
	}
	return nil
}

// serveRefresh downloads the configurations now (POST /conf/refresh on
// the operations listener), and answers with what the gateway then
// holds, or 502 with why the download failed (the configurations held
// stay in force).
func (g *Gateway) serveRefresh(w http.ResponseWriter, r *http.Request) {
	// One at a time, and no more often than the poll's own early
	// refreshes: the authorities' are shared by every gateway.
	if !g.refreshMu.TryLock() {
		w.Header().Set("Retry-After", "5")
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": "a refresh is under way"})
		return
	}
	defer g.refreshMu.Unlock()
	if wait := minKickInterval - time.Since(g.lastForced); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		writeJSON(w, http.StatusTooManyRequests, map[string]any{"error": fmt.Sprintf("the configuration was refreshed less than %s ago", minKickInterval)})
		return
	}
	g.lastForced = time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := g.RefreshConf(ctx); err != nil {
		g.log.Warn("forced configuration refresh failed", "err", err)
		writeJSON(w, http.StatusBadGateway, map[string]any{"error": err.Error(), "configurations": g.ConfStatus()})
		return
	}
	g.log.Info("configuration refreshed on request")
	writeJSON(w, http.StatusOK, map[string]any{"configurations": g.ConfStatus()})
}

// OpsAddr returns the operations listener's address after Listen.
func (g *Gateway) OpsAddr() string { return g.opsLn.Addr().String() }

// opsServer is the operations listener's server: metrics, health, and
// the monitoring records.
func (g *Gateway) opsServer() (*ops.Server, error) {
	c := ops.Config{
		Listener: g.opsLn, Gatherer: g.registry, Log: g.log,
		Ready: func() (bool, any) {
			st := g.conf.Load()
			if st == nil {
				return false, "no shared configuration yet"
			}
			if p := g.registrationProblem(st); p != "" {
				return false, "this gateway cannot serve: " + p
			}
			return !st.cfg.Expired(g.now()), g.ConfStatus()
		},
	}
	c.Handlers = map[string]http.Handler{"POST /conf/refresh": ops.Mutating(http.HandlerFunc(g.serveRefresh))}
	c.Handlers["POST /keys/switch"] = ops.Mutating(http.HandlerFunc(g.serveSwitchKeys))
	if g.loadConfig != nil {
		c.Handlers["POST /config/reload"] = ops.Mutating(http.HandlerFunc(g.serveReload))
	}
	if g.opmon != nil {
		c.Handlers["/records"] = opmon.Handler(g.opmon)
	}
	if g.cfg.OpsTokenFile != "" {
		tok, err := ops.ReadTokenFile(g.cfg.path(g.cfg.OpsTokenFile))
		if err != nil {
			return nil, fmt.Errorf("ops_token_file: %w", err)
		}
		c.Token = tok
	}
	srv, err := ops.NewServer(c)
	if err != nil {
		return nil, err
	}
	return srv, srv.Listen()
}

// ClientAddr and PeerAddr return the listening addresses after Listen.
func (g *Gateway) ClientAddr() string { return g.clientLn.Addr().String() }

// PeerAddr returns the peer side's listening address after Listen.
func (g *Gateway) PeerAddr() string { return g.peerLn.Addr().String() }

// Run keeps the configuration current and serves both sides until ctx
// ends, then shuts down gracefully.
func (g *Gateway) Run(ctx context.Context) error {
	g.running.Add(1)
	defer g.running.Done()
	if g.life.Err() != nil {
		return errors.New("gateway closed")
	}
	if g.clientLn == nil {
		if err := g.Listen(); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.life, cancel)()
	if st := g.conf.Load(); st != nil {
		if p := g.registrationProblem(st); p != "" {
			g.log.Error("the gateway cannot serve: "+p, "serial", st.cfg.Serial)
		}
	}
	g.bg.Go(func() { g.sync.run(ctx) })
	g.startFederation(ctx)
	g.bg.Go(func() { g.runStamper(ctx) })
	g.bg.Go(func() { g.watchCerts(ctx) })
	defer func() {
		cancel()
		g.stopFederation()
		g.bg.Wait()
	}()

	// The server-wide header cap sits above the configured limit so that
	// requests just over it still reach the handler and get an r1 error.
	client := &http.Server{
		Handler:           g.tracked(g.clientHandler()),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    2 * g.cfg.Limits.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(g.log.Handler(), slog.LevelDebug),
	}
	pl := g.cfg.PeerLimits
	peer := &http.Server{
		Handler: g.tracked(g.peerHandler()),
		// The head timeout also bounds the TLS handshake.
		ReadHeaderTimeout: pl.HandshakeTimeout.D(),
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    2*g.cfg.Limits.MaxHeaderBytes + 16<<10,
		TLSConfig:         g.peerServerTLS(),
		ConnState:         g.conns.track,
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: pl.StreamsPerConn},
		ErrorLog:          slog.NewLogLogger(g.peerLog.Handler(), slog.LevelDebug),
	}
	opsSrv, err := g.opsServer()
	if err != nil {
		return err
	}
	split := newSplitListener(g.clientLn, client.ReadHeaderTimeout)
	defer split.Close()
	errc := make(chan error, 4)
	go func() { errc <- opsSrv.Serve() }()
	go func() { errc <- client.Serve(split.plain) }()
	go func() { errc <- client.Serve(tls.NewListener(split.tls, g.clientTLSConf)) }()
	go func() { errc <- peer.ServeTLS(newLimitListener(g.peerLn, pl.MaxConns), "", "") }()
	g.log.Info("gateway serving", "client", g.ClientAddr(), "peer", g.PeerAddr(), "ops", g.OpsAddr())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Exchanges under way get shutdownGrace to finish; then their
	// connections are closed, so that no handler outlives Run (and the
	// log Close closes after it).
	sctx, scancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer scancel()
	for _, srv := range []*http.Server{client, peer} {
		if srv.Shutdown(sctx) != nil {
			srv.Close()
		}
	}
	opsSrv.Shutdown(sctx)
	g.handlers.Wait()
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

// peerServerTLS accepts only TLS 1.3 clients whose certificate chains to
// the instance CA and is registered to a gateway in the configuration.
func (g *Gateway) peerServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The certificate in use when the connection opens: a renewal
		// switches it (SwitchKeys).
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &g.keys.Load().auth, nil },
		ClientAuth:     tls.RequireAnyClientCert,
		NextProtos:     []string{"h2", "http/1.1"},
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := g.checkPeer(cs, "")
			return err
		},
	}
}
