// Package sandbox brings up the sandbox world in one process, on loopback
// only: an authority, gateways for the agencies and their demo backends,
// registered and certified through the authority's management API exactly
// as operators would do it. A second start in the same directory reuses
// everything it created.
package sandbox

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ai/ocr"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
)

// Options configure a sandbox. The zero value of each field is a sensible
// default.
type Options struct {
	// Dir holds all state. Default ./sampan-sandbox.
	Dir string
	// Log receives the components' logs. Default: discard below warnings.
	Log *slog.Logger
	// ConfValidity and ConfInterval are the authority's; ConfRefresh is
	// the gateways'. Defaults 10m, 60s and 10s.
	ConfValidity, ConfInterval, ConfRefresh time.Duration
	// Limits apply to every gateway; zero fields take the gateway's
	// defaults.
	Limits gateway.Limits
	// TimestampInterval and TimestampGrace are the gateways' (defaults
	// 60s and 4h).
	TimestampInterval, TimestampGrace time.Duration
	// WrapBackends, when set, wraps the demo backends' handler, e.g. to
	// watch what reaches them.
	WrapBackends func(http.Handler) http.Handler
	// PeerTimeout is the gateways' (default 60s).
	PeerTimeout time.Duration
	// PeerLimits apply to every gateway's peer side; zero fields take the
	// gateway's defaults.
	PeerLimits gateway.PeerLimits
	// PeerProtocol is what the gateways speak to each other (default
	// http/1.1; see gateway.Config).
	PeerProtocol string
	// Monitoring applies to every gateway; zero fields take the
	// gateway's defaults.
	Monitoring gateway.MonitoringConfig
	// LogIndexDSN, when set, puts every gateway's record index in this
	// PostgreSQL database (gateway.LogConfig.IndexDSN).
	LogIndexDSN string
	// Gateway, when set, gives the options of each gateway (by its
	// identifier) as it starts or restarts; Log is filled in from the
	// sandbox's when left nil.
	Gateway func(id string) gateway.Options
}

// gatewayOptions returns the options gateway id starts with.
func (o Options) gatewayOptions(id string) gateway.Options {
	var g gateway.Options
	if o.Gateway != nil {
		g = o.Gateway(id)
	}
	if g.Log == nil {
		g.Log = o.Log
	}
	return g
}

// Manifest is DIR/sandbox.json: where everything is, for people and for
// test tools.
type Manifest struct {
	Authorities []ManifestAuthority `json:"authorities"`
	Gateways    []ManifestGateway   `json:"gateways"`
	Services    []ManifestService   `json:"services"`
	// AIServices are the AI services and how to evaluate them (ai.go).
	AIServices []ManifestAIService `json:"ai_services"`
}

// ManifestAuthority describes an instance's authority.
type ManifestAuthority struct {
	Instance   string `json:"instance"`
	URL        string `json:"url"`
	AnchorFile string `json:"anchor_file"`
	// CAFile is the instance CA, which gateways' and members'
	// certificates chain to.
	CAFile string `json:"ca_file"`
	// TLSCAFile is the CA of the authority's own TLS (the anchor's
	// tls_ca): the one to trust when talking to the authority, e.g.
	// curl --cacert.
	TLSCAFile string `json:"tls_ca_file"`
	// TokenFile holds the management API token of the admin operator.
	TokenFile string `json:"token_file"`
	// OpsURL is the operations listener: /metrics, /healthz, /readyz.
	OpsURL string `json:"ops_url"`
}

// ManifestGateway describes a gateway.
type ManifestGateway struct {
	ID       string `json:"id"`
	Instance string `json:"instance"`
	// ClientURL is where an information system of one of Clients sends
	// r1 requests.
	ClientURL string   `json:"client_url"`
	PeerAddr  string   `json:"peer_address"`
	Clients   []string `json:"clients"`
	// ClientTLSURL is the same client side over HTTPS (one port serves
	// both); ClientTLSCAFile is the certificate it presents, to trust.
	ClientTLSURL    string `json:"client_tls_url"`
	ClientTLSCAFile string `json:"client_tls_ca_file"`
	// ClientConnections say how each client subsystem's information
	// systems must connect, with the client certificate to present when
	// one is needed.
	ClientConnections []ManifestClient `json:"client_connections"`
	DataDir           string           `json:"data_dir"`
	Config            string           `json:"config_file"`
	// OpsURL is the operations listener: /metrics, /healthz, /readyz and
	// the monitoring records under /records.
	OpsURL string `json:"ops_url"`
}

// ManifestClient is a client subsystem's connection type at its gateway.
type ManifestClient struct {
	Subsystem  string `json:"subsystem"`
	Connection string `json:"connection"`
	CertFile   string `json:"cert_file,omitempty"`
	KeyFile    string `json:"key_file,omitempty"`
}

// ManifestService describes a demo service.
type ManifestService struct {
	ID              string `json:"id"`
	ProviderGateway string `json:"provider_gateway"`
	ExamplePath     string `json:"example_path"`
	// ExampleClient is a subsystem with an access right to the example;
	// it declares ExamplePurpose (header X-Road-Purpose) when one is needed.
	ExampleClient  string   `json:"example_client"`
	ExamplePurpose string   `json:"example_purpose,omitempty"`
	DataClass      string   `json:"data_class"`
	Flags          []string `json:"flags"`
	// Protocol is how clients call the service: "rest" (r1) or "soap"
	// (X-Road message protocol 4.0).
	Protocol string `json:"protocol"`
	// The rest describe a SOAP service. ServiceVersion is the
	// serviceVersion its requests name; WSDLFile its WSDL as the
	// provider's gateway serves it, addressed to the example client's
	// gateway.
	ServiceVersion string `json:"service_version,omitempty"`
	WSDLFile       string `json:"wsdl_file,omitempty"`
	// ExampleEnvelope is a file holding a complete request envelope
	// (text/xml) from ExampleClient that the service answers.
	ExampleEnvelope string `json:"example_envelope,omitempty"`
	// ExampleMessages are all the example requests written for the
	// service: ExampleEnvelope, requests with an attachment, requests of
	// a cross-border client.
	ExampleMessages []ManifestSOAPMessage `json:"example_messages,omitempty"`
}

// ManifestSOAPMessage is an example request of a SOAP service: a file to
// POST to the client's gateway with the given Content-Type.
type ManifestSOAPMessage struct {
	Client      string `json:"client"`
	File        string `json:"file"`
	ContentType string `json:"content_type"`
	// Attachments is the number of attachments the message carries.
	Attachments int `json:"attachments"`
}

// state is DIR/state.json: the ports chosen on the first start, kept so
// that registered addresses and printed examples stay valid.
type state struct {
	Version     int                         `json:"version"`
	Authorities map[string]string           `json:"authorities_listen"`
	AuthOps     map[string]string           `json:"authorities_ops_listen"`
	Backends    string                      `json:"backends_listen"`
	Gateways    map[string]gatewayAddresses `json:"gateways"`
}

// stateVersion changes whenever the sandbox world does.
const stateVersion = 6

type gatewayAddresses struct {
	Client string `json:"client_listen"`
	Peer   string `json:"peer_listen"`
	Ops    string `json:"ops_listen"`
}

const (
	stateFile    = "state.json"
	manifestFile = "sandbox.json"
	tokenFile    = "admin.token"
)

// Sandbox is a running sandbox world.
type Sandbox struct {
	Manifest    Manifest
	Dir         string
	Authorities []*authority.Authority
	Gateways    []*gateway.Gateway

	ctx    context.Context
	cancel context.CancelFunc
	opts   Options

	compMu sync.Mutex
	comps  map[string]*component
	acfgs  map[string]*authority.Config
	state  *state // the ports chosen on the first start
	wg     sync.WaitGroup
	errMu  sync.Mutex
	err    error
	closed bool

	// ocr is tesseract when installed; ocrErr says why not.
	ocr    *ocr.Engine
	ocrErr error
}

// Start brings the world up and returns once every gateway holds a valid
// configuration. On a first start that fails, the directory is removed
// again so that nothing half-made is left behind.
func Start(ctx context.Context, o Options) (*Sandbox, error) {
	if o.Dir == "" {
		o.Dir = "sampan-sandbox"
	}
	for attempt := 1; ; attempt++ {
		sb, err := start(ctx, o)
		// A first start picks free ports; another process may take one
		// before the sandbox binds it. A failed first start leaves
		// nothing behind, so it can simply pick again.
		if err == nil || attempt == 3 || !errors.Is(err, syscall.EADDRINUSE) {
			return sb, err
		}
		if _, serr := os.Stat(filepath.Join(o.Dir, stateFile)); serr == nil {
			return sb, err // not a first start: its ports are its own
		}
	}
}

func start(ctx context.Context, o Options) (_ *Sandbox, err error) {
	if o.Dir == "" {
		o.Dir = "sampan-sandbox"
	}
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.ConfValidity == 0 {
		o.ConfValidity = 10 * time.Minute
	}
	if o.ConfInterval == 0 {
		o.ConfInterval = 60 * time.Second
	}
	if o.ConfRefresh == 0 {
		o.ConfRefresh = 10 * time.Second
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, err
	}
	st, fresh, err := loadState(dir)
	if err != nil {
		return nil, err
	}
	if fresh {
		_, statErr := os.Stat(dir)
		existed := statErr == nil
		defer func() {
			if err == nil {
				return
			}
			// Leave nothing half-made; an (empty) directory the user
			// chose stays.
			if !existed {
				os.RemoveAll(dir)
				return
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		}()
	}
	ctx, cancel := context.WithCancel(ctx)
	s := &Sandbox{Dir: dir, ctx: ctx, cancel: cancel, opts: o, comps: map[string]*component{}, acfgs: map[string]*authority.Config{}}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.start(ctx, o, st, fresh); err != nil {
		return nil, err
	}
	return s, nil
}

// loadState reads the state of an earlier start, or chooses free ports
// for a first one.
func loadState(dir string) (*state, bool, error) {
	var st state
	err := cfg.Load(filepath.Join(dir, stateFile), &st)
	if err == nil {
		if st.Version != stateVersion {
			return nil, false, fmt.Errorf("%s holds a sandbox of another version of sampan; remove it to start afresh", dir)
		}
		return &st, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("%w (remove %s to start afresh)", err, dir)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		return nil, false, fmt.Errorf("%s is not empty and holds no sandbox state; remove it or choose another --dir", dir)
	}
	st = state{Version: stateVersion, Authorities: map[string]string{}, AuthOps: map[string]string{}, Gateways: map[string]gatewayAddresses{}}
	n := 1
	for _, in := range world {
		n += 2 + 3*len(in.gateways)
	}
	ports, err := freePorts(n)
	if err != nil {
		return nil, false, err
	}
	take := func() string { p := ports[0]; ports = ports[1:]; return p }
	st.Backends = take()
	for _, in := range world {
		st.Authorities[in.code] = take()
		st.AuthOps[in.code] = take()
		for _, g := range in.gateways {
			st.Gateways[g.id] = gatewayAddresses{Client: take(), Peer: take(), Ops: take()}
		}
	}
	return &st, true, nil
}

// freePorts reserves n loopback ports by listening on port 0.
func freePorts(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	var out []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("choose a free port: %w", err)
		}
		lns = append(lns, l)
		out = append(out, l.Addr().String())
	}
	return out, nil
}

func listen(addr, what, dir string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen for %s on %s: %w (is another sandbox using %s?)", what, addr, err, dir)
	}
	return ln, nil
}

func (s *Sandbox) start(ctx context.Context, o Options, st *state, fresh bool) error {
	s.state = st
	dir := s.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	// Demo backends.
	bln, err := listen(st.Backends, "the demo backends", dir)
	if err != nil {
		return err
	}
	bh, err := aiHandler(newBackends().handler())
	if err != nil {
		return err
	}
	s.ocr, s.ocrErr = findOCR(ctx)
	bh = ocrHandler(s.ocr, s.ocrErr, soapHandler(bh))
	if o.WrapBackends != nil {
		bh = o.WrapBackends(bh)
	}
	bsrv := &http.Server{Handler: bh, ReadHeaderTimeout: 10 * time.Second}
	s.goServe("backends", func() error { return bsrv.Serve(bln) }, func() { bsrv.Close() })

	// The authorities, one per instance.
	apis := map[string]*authority.Client{}
	auths := map[string]*authority.Authority{}
	for _, in := range world {
		a, api, err := s.startAuthority(ctx, o, in.code, st.Authorities[in.code])
		if err != nil {
			return fmt.Errorf("authority %s: %w", in.code, err)
		}
		auths[in.code], apis[in.code] = a, api
	}
	if fresh {
		for _, in := range world {
			if err := register(ctx, apis[in.code], in); err != nil {
				return fmt.Errorf("register the sandbox world of %s: %w", in.code, err)
			}
		}
		ocrVersion := ""
		if s.ocr != nil {
			ocrVersion = s.ocr.ModelVersion()
		}
		if err := registerAI(ctx, apis["VN"], ocrVersion); err != nil {
			return err
		}
		// Each instance trusts the other's anchor.
		for _, in := range world {
			for _, other := range world {
				if other.code == in.code {
					continue
				}
				if err := apis[in.code].PutFederation(ctx, authority.FederationInput{Anchor: *auths[other.code].Anchor()}); err != nil {
					return fmt.Errorf("federate %s with %s: %w", in.code, other.code, err)
				}
			}
		}
	}

	gdirOf := func(gd gatewayDef) string {
		return filepath.Join(dir, "gateway-"+strings.ReplaceAll(gd.id, "/", "_"))
	}
	if fresh {
		for _, in := range world {
			for _, gd := range in.gateways {
				if err := enrol(ctx, apis[in.code], gd, gdirOf(gd), st.Gateways[gd.id].Peer); err != nil {
					return fmt.Errorf("enrol gateway %s: %w", gd.id, err)
				}
			}
		}
	}
	// The URL of each client subsystem's gateway, for the WSDLs.
	clientURL := map[string]string{}
	for _, in := range world {
		for _, gd := range in.gateways {
			for _, c := range gd.clients {
				clientURL[c] = "http://" + st.Gateways[gd.id].Client + "/"
			}
		}
	}
	var gws []*gateway.Gateway
	for _, in := range world {
		for _, gd := range in.gateways {
			addrs := st.Gateways[gd.id]
			gdir := gdirOf(gd)
			cfgPath, err := writeGatewayConfig(gd, gdir, auths[in.code].AnchorPath(), addrs, "http://"+st.Backends, clientURL, o)
			if err != nil {
				return err
			}
			gc, err := gateway.LoadConfig(cfgPath)
			if err != nil {
				return err
			}
			g, err := gateway.New(ctx, gc, gdir, o.gatewayOptions(gd.id))
			if err != nil {
				return fmt.Errorf("gateway %s: %w", gd.id, err)
			}
			if err := g.Listen(); err != nil {
				g.Close()
				return fmt.Errorf("gateway %s: %w (is another sandbox using %s?)", gd.id, err, dir)
			}
			s.Gateways = append(s.Gateways, g)
			gws = append(gws, g)
			mg := ManifestGateway{
				ID: gd.id, Instance: in.code, ClientURL: "http://" + g.ClientAddr(), PeerAddr: g.PeerAddr(),
				Clients: gd.clients, DataDir: gdir, Config: cfgPath,
				ClientTLSURL: "https://" + g.ClientAddr(), ClientTLSCAFile: g.ClientTLSCertPath(),
				OpsURL: "http://" + g.OpsAddr(),
			}
			for _, c := range gd.clients {
				mc := ManifestClient{Subsystem: c, Connection: gateway.ConnHTTP}
				if slices.Contains(gd.certClients, c) {
					mc.Connection = gateway.ConnHTTPSCerts
					mc.CertFile, mc.KeyFile = isCertPaths(gdir, c)
				}
				mg.ClientConnections = append(mg.ClientConnections, mc)
			}
			s.Manifest.Gateways = append(s.Manifest.Gateways, mg)
			for _, sv := range gd.services {
				ms := ManifestService{
					ID: sv.id, ProviderGateway: gd.id, ExamplePath: sv.example, ExampleClient: sv.exampleClient, ExamplePurpose: sv.examplePurpose,
					DataClass: sv.dataClass, Flags: slices.Clone(sv.flags), Protocol: gateway.ProtocolREST,
				}
				if sv.protocol == gateway.ProtocolSOAP {
					if err := writeSOAPExamples(&ms, sv, dir, gdir); err != nil {
						return err
					}
				}
				s.Manifest.Services = append(s.Manifest.Services, ms)
			}
		}
	}
	// Every configuration, domestic and federated, is in place before the
	// first request.
	for _, g := range gws {
		if err := g.RefreshConf(ctx); err != nil {
			return fmt.Errorf("gateway %s: %w", g.ID(), err)
		}
		s.goRun("gateway "+g.ID().String(), g.Run)
	}
	s.Manifest.AIServices = s.aiManifest()
	if err := cfg.Write(filepath.Join(dir, manifestFile), &s.Manifest, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", manifestFile, err)
	}
	if fresh {
		if err := cfg.Write(filepath.Join(dir, stateFile), st, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", stateFile, err)
		}
	}
	return nil
}

// startAuthority opens and serves an instance's authority.
func (s *Sandbox) startAuthority(ctx context.Context, o Options, instance, addr string) (*authority.Authority, *authority.Client, error) {
	adir := filepath.Join(s.Dir, "authority-"+instance)
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return nil, nil, err
	}
	token, err := loadOrCreateToken(filepath.Join(adir, tokenFile))
	if err != nil {
		return nil, nil, err
	}
	rules, _ := obligations.For(instance)
	acfg := &authority.Config{
		Instance:      instance,
		AIObligations: rules,
		Listen:        addr,
		ConfValidity:  cfg.Duration(o.ConfValidity),
		ConfInterval:  cfg.Duration(o.ConfInterval),
		Operators:     []authority.Operator{{Name: "sandbox-admin", TokenSHA256: authority.HashToken(token), Role: authority.RoleAdmin}},
	}
	acfg.SetDefaults()
	if err := acfg.Validate(); err != nil {
		return nil, nil, err
	}
	a, err := authority.New(ctx, acfg, adir, o.Log)
	if err != nil {
		return nil, nil, err
	}
	s.Authorities = append(s.Authorities, a)
	aln, err := listen(addr, "the authority of "+instance, s.Dir)
	if err != nil {
		return nil, nil, err
	}
	s.acfgs[instance] = acfg
	opsLn, err := listen(s.state.AuthOps[instance], "the operations listener of the authority of "+instance, s.Dir)
	if err != nil {
		aln.Close()
		return nil, nil, err
	}
	s.goRun("authority "+instance, func(ctx context.Context) error { return a.ServeWithOps(ctx, aln, opsLn) })
	caFile := filepath.Join(adir, "ca.pem")
	if err := pki.WriteFileAtomic(caFile, pki.EncodeCert(a.CACert().Raw), 0o644); err != nil {
		return nil, nil, err
	}
	s.Manifest.Authorities = append(s.Manifest.Authorities, ManifestAuthority{
		Instance: instance, URL: acfg.PublicURL, AnchorFile: a.AnchorPath(), CAFile: caFile, TLSCAFile: a.TLSCAPath(), TokenFile: filepath.Join(adir, tokenFile),
		OpsURL: "http://" + opsLn.Addr().String(),
	})
	return a, authority.NewClient(acfg.PublicURL, token, a.TLSCACert()), nil
}

// goServe runs a server until it stops; an unexpected stop is kept as
// the sandbox's error and stops the rest.
func (s *Sandbox) goServe(name string, serve func() error, stop func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		err := serve()
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.errMu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("%s: %w", name, err)
			}
			s.errMu.Unlock()
			s.cancel()
		}
	}()
	if stop != nil {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			<-s.ctx.Done()
			stop()
		}()
	}
}

// component is a daemon of the sandbox that can be restarted alone.
type component struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// goRun runs a daemon under its own context, a child of the sandbox's; a
// failure it did not ask for is kept as the sandbox's error and stops the
// rest.
func (s *Sandbox) goRun(name string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(s.ctx)
	c := &component{cancel: cancel, done: make(chan struct{})}
	s.compMu.Lock()
	s.comps[name] = c
	s.compMu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(c.done)
		err := run(ctx)
		if err != nil && !errors.Is(err, http.ErrServerClosed) && ctx.Err() == nil {
			s.errMu.Lock()
			if s.err == nil {
				s.err = fmt.Errorf("%s: %w", name, err)
			}
			s.errMu.Unlock()
			s.cancel()
		}
	}()
}

// stopComponent stops one daemon and waits for it.
func (s *Sandbox) stopComponent(name string) error {
	s.compMu.Lock()
	c := s.comps[name]
	s.compMu.Unlock()
	if c == nil {
		return fmt.Errorf("no %s in this sandbox", name)
	}
	c.cancel()
	<-c.done
	return nil
}

// RestartGateway stops a gateway, as an operator or a crash would, and
// starts it again from its data directory. Requests in flight at that
// gateway are allowed to finish first (graceful shutdown).
func (s *Sandbox) RestartGateway(id string) error {
	i := slices.IndexFunc(s.Manifest.Gateways, func(g ManifestGateway) bool { return g.ID == id })
	if i < 0 {
		return fmt.Errorf("no gateway %s in this sandbox", id)
	}
	mg := s.Manifest.Gateways[i]
	if err := s.stopComponent("gateway " + id); err != nil {
		return err
	}
	s.Gateways[i].Close()
	c, err := gateway.LoadConfig(mg.Config)
	if err != nil {
		return err
	}
	g, err := gateway.New(s.ctx, c, mg.DataDir, s.opts.gatewayOptions(id))
	if err != nil {
		return err
	}
	if err := g.Listen(); err != nil {
		g.Close()
		return err
	}
	s.Gateways[i] = g
	s.goRun("gateway "+id, g.Run)
	return nil
}

// StopAuthority stops an instance's authority, as an outage would, until
// RestartAuthority.
func (s *Sandbox) StopAuthority(instance string) error {
	i := slices.IndexFunc(s.Manifest.Authorities, func(a ManifestAuthority) bool { return a.Instance == instance })
	if i < 0 {
		return fmt.Errorf("no authority %s in this sandbox", instance)
	}
	if err := s.stopComponent("authority " + instance); err != nil {
		return err
	}
	s.compMu.Lock()
	defer s.compMu.Unlock()
	if s.Authorities[i] != nil {
		s.Authorities[i].Close()
		s.Authorities[i] = nil
	}
	return nil
}

// RestartAuthority stops an instance's authority (if it runs) and starts
// it again from its data directory.
func (s *Sandbox) RestartAuthority(instance string) error {
	i := slices.IndexFunc(s.Manifest.Authorities, func(a ManifestAuthority) bool { return a.Instance == instance })
	if err := s.StopAuthority(instance); err != nil {
		return err
	}
	acfg := s.acfgs[instance]
	a, err := authority.New(s.ctx, acfg, filepath.Dir(s.Manifest.Authorities[i].AnchorFile), s.opts.Log)
	if err != nil {
		return err
	}
	s.Authorities[i] = a
	ln, err := listen(acfg.Listen, "the authority of "+instance, s.Dir)
	if err != nil {
		return err
	}
	opsLn, err := listen(s.state.AuthOps[instance], "the operations listener of the authority of "+instance, s.Dir)
	if err != nil {
		ln.Close()
		return err
	}
	s.goRun("authority "+instance, func(ctx context.Context) error { return a.ServeWithOps(ctx, ln, opsLn) })
	return nil
}

// Wait blocks until ctx ends or a component fails, and returns the
// failure.
func (s *Sandbox) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

// Close stops everything and waits for it.
func (s *Sandbox) Close() error {
	s.errMu.Lock()
	if s.closed {
		s.errMu.Unlock()
		return s.err
	}
	s.closed = true
	s.errMu.Unlock()
	s.cancel()
	s.wg.Wait()
	for _, g := range s.Gateways {
		g.Close()
	}
	for _, a := range s.Authorities {
		if a != nil {
			a.Close()
		}
	}
	s.errMu.Lock()
	defer s.errMu.Unlock()
	return s.err
}

func loadOrCreateToken(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	var b [24]byte
	rand.Read(b[:])
	tok := hex.EncodeToString(b[:])
	if err := pki.WriteFileAtomic(path, []byte(tok+"\n"), 0o600); err != nil {
		return "", err
	}
	return tok, nil
}

// register puts members, subsystems and global groups in the registry.
func register(ctx context.Context, api *authority.Client, in instanceDef) error {
	for _, m := range in.members {
		id, err := ident.ParseMember(m.id)
		if err != nil {
			return err
		}
		if err := api.AddMember(ctx, authority.MemberInput{ID: id, Name: m.name}); err != nil {
			return err
		}
		for _, sub := range m.subsystems {
			sid := id
			sid.Subsystem = sub
			if err := api.AddSubsystem(ctx, authority.SubsystemInput{ID: sid}); err != nil {
				return err
			}
		}
	}
	for _, gr := range in.groups {
		in := authority.GroupInput{Description: gr.description}
		var err error
		if in.ID, err = ident.ParseGroup(gr.id); err != nil {
			return err
		}
		for _, m := range gr.members {
			c, err := ident.ParseSubsystem(m)
			if err != nil {
				return err
			}
			in.Members = append(in.Members, c)
		}
		if err := api.PutGroup(ctx, in); err != nil {
			return err
		}
	}
	// The sovereignty policy: national rules, the services' data
	// classes, the agreements.
	rules, err := policy.National(in.code)
	if err != nil {
		return err
	}
	if err := api.PutRules(ctx, rules); err != nil {
		return fmt.Errorf("national rules: %w", err)
	}
	for _, gd := range in.gateways {
		for _, sv := range gd.services {
			id, err := ident.ParseService(sv.id)
			if err != nil {
				return err
			}
			if err := api.PutServiceClass(ctx, policy.ServiceClass{ID: id, Class: sv.dataClass, Flags: sv.flags}); err != nil {
				return fmt.Errorf("data class of %s: %w", sv.id, err)
			}
		}
	}
	for _, a := range in.agreements {
		if err := api.PutAgreement(ctx, a); err != nil {
			return fmt.Errorf("agreement %s: %w", a.ID, err)
		}
	}
	return nil
}

// enrol creates a gateway's keys, registers the gateway, has the
// authority certify its keys and binds its authentication certificate
// to the registration.
func enrol(ctx context.Context, api *authority.Client, gd gatewayDef, dir, peerAddr string) error {
	id, err := ident.ParseGateway(gd.id)
	if err != nil {
		return err
	}
	paths, err := gateway.Init(dir, id, id.Owner())
	if err != nil {
		return err
	}
	in := authority.GatewayInput{ID: id, Address: peerAddr}
	for _, c := range gd.clients {
		cid, err := ident.ParseSubsystem(c)
		if err != nil {
			return err
		}
		in.Clients = append(in.Clients, cid)
	}
	// Registered first: the certificate names the registered host only.
	if err := api.PutGateway(ctx, in); err != nil {
		return err
	}
	csr, err := os.ReadFile(paths.AuthCSR)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(peerAddr)
	auth, err := api.Issue(ctx, authority.IssueInput{Profile: "auth", Subject: gd.id, CSR: string(csr), Hosts: []string{host}})
	if err != nil {
		return err
	}
	if err := pki.WriteFileAtomic(paths.AuthCert, []byte(auth.Certificate), 0o644); err != nil {
		return err
	}
	for m, p := range paths.Sign {
		csr, err := os.ReadFile(p[1])
		if err != nil {
			return err
		}
		sc, err := api.Issue(ctx, authority.IssueInput{Profile: "sign", Subject: m.String(), CSR: string(csr)})
		if err != nil {
			return err
		}
		if err := pki.WriteFileAtomic(p[2], []byte(sc.Certificate), 0o644); err != nil {
			return err
		}
	}
	in.AuthFP = auth.SHA256
	return api.PutGateway(ctx, in)
}

// writeGatewayConfig writes the gateway's configuration file, with its
// services pointing at the demo backends.
// A SOAP service's WSDL is addressed to the gateway of its example
// client (clientURL maps client subsystems to their gateway's URL).
func writeGatewayConfig(gd gatewayDef, dir, anchor string, addrs gatewayAddresses, backends string, clientURL map[string]string, o Options) (string, error) {
	id, err := ident.ParseGateway(gd.id)
	if err != nil {
		return "", err
	}
	c := gateway.Config{
		ID:                id,
		AnchorFile:        anchor,
		ClientListen:      addrs.Client,
		PeerListen:        addrs.Peer,
		OpsListen:         addrs.Ops,
		Monitoring:        o.Monitoring,
		ConfRefresh:       cfg.Duration(o.ConfRefresh),
		Limits:            o.Limits,
		PeerLimits:        o.PeerLimits,
		Federation:        gateway.FederationConfig{Allow: gateway.FederateAll},
		TimestampInterval: cfg.Duration(o.TimestampInterval),
		TimestampGrace:    cfg.Duration(o.TimestampGrace),
		PeerTimeout:       cfg.Duration(o.PeerTimeout),
		PeerProtocol:      o.PeerProtocol,
		Log:               gateway.LogConfig{StoreBodies: gd.storeBodies, Retention: cfg.Duration(gd.retention), IndexDSN: o.LogIndexDSN},
		// Loopback only: the demo's information systems may use plain
		// HTTP, but for the subsystems in certClients.
		DefaultConnection: gateway.ConnHTTP,
	}
	for _, cl := range gd.certClients {
		crt, key := isCertPaths(dir, cl)
		if err := makeISCert(crt, key, cl); err != nil {
			return "", fmt.Errorf("client certificate of %s: %w", cl, err)
		}
		c.Clients = append(c.Clients, gateway.ClientSystem{Subsystem: cl, Connection: gateway.ConnHTTPSCerts, Certificates: []string{crt}})
	}
	for _, sv := range gd.services {
		sid, err := ident.ParseService(sv.id)
		if err != nil {
			return "", err
		}
		if sv.protocol == gateway.ProtocolSOAP {
			wsdl, err := wsdlFor(sv.wsdl, clientURL[sv.exampleClient])
			if err != nil {
				return "", err
			}
			path := filepath.Join(dir, wsdlFileName(sid))
			if err := pki.WriteFileAtomic(path, wsdl, 0o644); err != nil {
				return "", err
			}
			c.Services = append(c.Services, gateway.Service{
				ID:       sid,
				Backend:  backends + sv.backendPath,
				Protocol: gateway.ProtocolSOAP,
				WSDLFile: filepath.Base(path),
				Access:   sv.access,
			})
			continue
		}
		spec := filepath.Join(dir, sid.Code+".openapi.json")
		if err := pki.WriteFileAtomic(spec, []byte(openAPI(sv.title, sv.openAPIPath, sv.title)), 0o644); err != nil {
			return "", err
		}
		c.Services = append(c.Services, gateway.Service{
			ID:          sid,
			Backend:     backends + sv.backendPath,
			OpenAPIFile: filepath.Base(spec),
			Endpoints:   sv.endpoints,
			Access:      sv.access,
		})
	}
	path := filepath.Join(dir, "gateway.json")
	if err := cfg.Write(path, &c, 0o644); err != nil {
		return "", err
	}
	return path, nil
}

// isCertPaths are where the sandbox keeps the TLS client certificate and
// key of a client subsystem's information system, in its gateway's
// directory.
func isCertPaths(gdir, subsystem string) (cert, key string) {
	base := filepath.Join(gdir, "information-systems", strings.ReplaceAll(subsystem, "/", "_"))
	return base + ".crt", base + ".key"
}

// makeISCert makes, once, a self-signed TLS client certificate for a
// subsystem's information system: the gateway pins it by fingerprint.
func makeISCert(certPath, keyPath, subsystem string) error {
	if _, err := os.Stat(certPath); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(certPath), 0o700); err != nil {
		return err
	}
	now := time.Now()
	return pki.WriteSelfSigned(certPath, keyPath, &x509.Certificate{
		Subject:     pkix.Name{CommonName: subsystem},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.AddDate(2, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}
