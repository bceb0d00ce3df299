package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/store"
)

// Config is a gateway's configuration file.
type Config struct {
	// ID is the gateway's identifier, e.g. VN/GOV/MOF/gw1.
	ID ident.GatewayID `json:"id"`
	// AnchorFile is the path of the instance's anchor, relative to the
	// configuration file's directory when not absolute.
	AnchorFile string `json:"anchor_file"`
	// ClientListen is where information systems send r1 requests, over
	// HTTPS or, for subsystems whose connection type allows it, plain
	// HTTP (both on the one port). Default 127.0.0.1:8080.
	ClientListen string `json:"client_listen"`
	// ClientTLSCertFile and ClientTLSKeyFile are the certificate and key
	// the client side presents over HTTPS; by default the gateway makes a
	// self-signed one in its data directory (client-tls.crt).
	ClientTLSCertFile string `json:"client_tls_cert_file"`
	ClientTLSKeyFile  string `json:"client_tls_key_file"`
	// DefaultConnection is the connection type of client subsystems that
	// Clients does not list: "https" (default), "https-certs" or "http".
	DefaultConnection string `json:"default_connection"`
	// Clients set the connection type, and the TLS client certificates,
	// of the information systems of each client subsystem.
	Clients []ClientSystem `json:"clients"`
	// PeerListen is where other gateways connect over mutual TLS 1.3.
	// Default 127.0.0.1:8443.
	PeerListen string `json:"peer_listen"`
	// ConfRefresh is how often the shared configuration is polled.
	// Default 60s.
	ConfRefresh cfg.Duration `json:"conf_refresh"`
	// Services are the services this gateway provides.
	Services []Service `json:"services"`
	Limits   Limits    `json:"limits"`
	// PeerLimits bound what other gateways can hold at the peer side.
	PeerLimits PeerLimits `json:"peer_limits"`
	// Federation says which foreign instances this gateway exchanges
	// with; by default none.
	Federation FederationConfig `json:"federation"`
	// PeerTimeout bounds waiting for a provider gateway's response headers.
	// Default 60s.
	PeerTimeout cfg.Duration `json:"peer_timeout"`
	// PeerProtocol is what this gateway speaks to provider gateways over
	// mutual TLS: "http/1.1" (default; a pool of connections, one
	// exchange on each at a time) or "h2" (HTTP/2: exchanges multiplexed
	// on one connection). A gateway answers either.
	PeerProtocol string `json:"peer_protocol"`
	// TimestampInterval is how often the message log's checkpoint is
	// time-stamped by the authority (default 60s); TimestampGrace how long
	// the gateway serves without a fresh time-stamp (default 4h).
	TimestampInterval cfg.Duration `json:"timestamp_interval"`
	TimestampGrace    cfg.Duration `json:"timestamp_grace"`
	// Log configures the message log.
	Log LogConfig `json:"log"`
	// Replay tunes the refusal of replayed peer requests.
	Replay ReplayConfig `json:"replay"`
	// OpsListen is the operations listener (plain HTTP): /metrics,
	// /healthz, /readyz and the monitoring records under /records.
	// Default 127.0.0.1:9080; keep it on loopback or a management
	// network.
	OpsListen string `json:"ops_listen"`
	// OpsTokenFile, when set, holds a bearer token (mode 0600) that every
	// path of the operations listener but /healthz and /readyz requires.
	OpsTokenFile string `json:"ops_token_file"`
	// Monitoring configures the metrics and the operational-monitoring
	// records.
	Monitoring MonitoringConfig `json:"monitoring"`
	// SOAP configures the X-Road message protocol 4.0 front end.
	SOAP SOAPConfig `json:"soap"`
	// BackendTLS sets the client certificate and the trusted roots of
	// the gateway's HTTPS connections to its services.
	BackendTLS BackendTLS `json:"backend_tls"`

	dir     string // directory of the configuration file
	file    string // the configuration file, when loaded from one
	clients map[ident.ClientID]*ClientSystem
	// backendTLS is what BackendTLS names, loaded by Validate.
	backendTLS *tls.Config
}

// SOAPConfig configures the SOAP front end (docs/soap.md).
type SOAPConfig struct {
	// FaultSpelling is how fault codes are written: "camel" (default,
	// as PR-MESS documents them: Server.ClientProxy.NetworkError) or
	// "snake" (as X-Road 7.8 and later send them:
	// server.clientproxy.network_error), for clients written against
	// either.
	FaultSpelling string `json:"fault_spelling"`
}

// Fault spellings.
const (
	FaultSpellingCamel = "camel"
	FaultSpellingSnake = "snake"
)

// The protocols a gateway may speak to provider gateways (their ALPN
// names).
const (
	PeerHTTP1 = "http/1.1"
	PeerHTTP2 = "h2"
)

// Service maps a service code to a backend and says who may call it.
type Service struct {
	ID ident.ServiceID `json:"id"`
	// Backend is the base URL requests are forwarded to: the path after
	// the service identifier is appended.
	Backend string `json:"backend"`
	// Protocol is how clients call the service: "rest" (r1, the
	// default) or "soap" (X-Road message protocol 4.0: the backend takes
	// SOAP 1.1 requests, POSTed to Backend as the client sent them).
	Protocol string `json:"protocol"`
	// OpenAPIFile is a REST service's OpenAPI description, for
	// getOpenAPI.
	OpenAPIFile string `json:"openapi_file"`
	// WSDLFile is a SOAP service's WSDL, for getWsdl.
	WSDLFile string `json:"wsdl_file"`
	// Endpoints, when given, are the only method and path patterns the
	// service answers ("GET /companies/*"; * matches one path segment,
	// a final ** the rest, method * any method).
	Endpoints []string `json:"endpoints"`
	// Access lists who may call the service. Deny by default.
	Access []AccessRight `json:"access"`
	// Timeout bounds the backend's answer. Default 60s.
	Timeout cfg.Duration `json:"timeout"`

	endpoints []endpoint
	access    []access
	policy    *policy.Access // access compiled to Cedar
}

// Service protocols.
const (
	ProtocolREST = "rest"
	ProtocolSOAP = "soap"
)

// AccessRight grants a subject the whole service or one endpoint.
type AccessRight struct {
	// Subject is a subsystem (INSTANCE/CLASS/CODE/SUBSYSTEM) or a global
	// group (INSTANCE/GROUP).
	Subject string `json:"subject"`
	// Endpoint limits the right to "METHOD /path/pattern"; empty means the
	// whole service.
	Endpoint string `json:"endpoint"`
}

// MonitoringConfig configures what the gateway records of its traffic
// beyond the evidence log.
type MonitoringConfig struct {
	// Metrics is "on" (default) or "off": the exchange metrics on
	// /metrics (the process's and the log's are always there).
	Metrics string `json:"metrics"`
	// Records is "on" (default) or "off": one operational-monitoring
	// record per exchange attempt, in DATA_DIR/opmon.db (or the log
	// index's PostgreSQL database when log.index_dsn is set).
	Records string `json:"records"`
	// Retention is how long monitoring records are kept (default 168h).
	// They are not evidence: the message log keeps that.
	Retention cfg.Duration `json:"retention"`
}

// Switch values of MonitoringConfig.
const (
	On  = "on"
	Off = "off"
)

var nodeRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,32}$`)

// LogConfig configures the message log.
type LogConfig struct {
	// IndexDSN puts the record index in PostgreSQL (a postgres:// URL);
	// by default it is SQLite in DATA_DIR/log/index.db. `sampan gateway
	// run` takes the environment variable SAMPAN_LOG_INDEX_DSN, when set,
	// over this field, so that a password need not be in this file.
	IndexDSN string `json:"index_dsn"`
	// Retention is how long records and stored bodies are kept (e.g.
	// "2160h" for 90 days); zero keeps them. Purges are logged.
	Retention cfg.Duration `json:"retention"`
	// StoreBodies lists subsystems (INSTANCE/CLASS/CODE/SUBSYSTEM) of
	// this gateway whose request and response bodies are kept, encrypted
	// at rest with AES-256-GCM: as the client on the consumer side, as
	// the provider on the provider side. By default no bodies are kept.
	StoreBodies []string `json:"store_bodies"`
	// Node names this node when several nodes of one gateway share a
	// PostgreSQL record index: each keeps its own Merkle log, whose
	// origin is then "sampan-log:GATEWAY_ID#NODE". Letters, digits, '.',
	// '_' and '-'.
	Node string `json:"node"`

	storeBodies map[ident.ClientID]bool
}

// Limits bound every client request.
type Limits struct {
	// MaxHeaderBytes bounds the request line and headers. Default 32 KiB.
	MaxHeaderBytes int `json:"max_header_bytes"`
	// MaxURILength bounds the request URI in characters. Default 2000.
	MaxURILength int `json:"max_uri_length"`
	// MaxBodyBytes bounds request bodies. Default 10 GiB; -1 for none.
	MaxBodyBytes int64 `json:"max_body_bytes"`
}

// LoadConfig reads, defaults and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	var c Config
	if err := cfg.Load(path, &c); err != nil {
		return nil, err
	}
	c.dir, c.file = filepath.Dir(path), path
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return &c, nil
}

// SetDefaults fills unset fields.
func (c *Config) SetDefaults() {
	if c.ClientListen == "" {
		c.ClientListen = "127.0.0.1:8080"
	}
	if c.PeerListen == "" {
		c.PeerListen = "127.0.0.1:8443"
	}
	if c.OpsListen == "" {
		c.OpsListen = "127.0.0.1:9080"
	}
	if c.Monitoring.Metrics == "" {
		c.Monitoring.Metrics = On
	}
	if c.Monitoring.Records == "" {
		c.Monitoring.Records = On
	}
	if c.Monitoring.Retention == 0 {
		c.Monitoring.Retention = cfg.Duration(7 * 24 * time.Hour)
	}
	if c.DefaultConnection == "" {
		c.DefaultConnection = ConnHTTPS
	}
	c.PeerLimits.setDefaults()
	if c.ConfRefresh == 0 {
		c.ConfRefresh = cfg.Duration(60 * time.Second)
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = cfg.Duration(60 * time.Second)
	}
	if c.PeerProtocol == "" {
		c.PeerProtocol = PeerHTTP1
	}
	if c.TimestampInterval == 0 {
		c.TimestampInterval = cfg.Duration(60 * time.Second)
	}
	if c.TimestampGrace == 0 {
		c.TimestampGrace = cfg.Duration(4 * time.Hour)
	}
	if c.Replay.MaxSkew == 0 {
		c.Replay.MaxSkew = cfg.Duration(2 * time.Minute)
	}
	if c.Federation.Allow == "" {
		c.Federation.Allow = FederateNone
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = 32 << 10
	}
	if c.Limits.MaxURILength == 0 {
		c.Limits.MaxURILength = 2000
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = 10 << 30
	}
	for i := range c.Services {
		if c.Services[i].Timeout == 0 {
			c.Services[i].Timeout = cfg.Duration(60 * time.Second)
		}
	}
}

// Validate checks the configuration and compiles endpoint patterns and
// access rights. Errors name the field.
func (c *Config) Validate() error {
	if err := c.ID.Validate(); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if c.AnchorFile == "" {
		return errors.New("anchor_file: required")
	}
	for name, v := range map[string]string{"monitoring.metrics": c.Monitoring.Metrics, "monitoring.records": c.Monitoring.Records} {
		if v != On && v != Off {
			return fmt.Errorf("%s: %q is neither %q nor %q", name, v, On, Off)
		}
	}
	if err := ops.CheckExposure(c.OpsListen, c.OpsTokenFile); err != nil {
		return fmt.Errorf("ops_listen: %w", err)
	}
	if c.Monitoring.Retention < 0 {
		return errors.New("monitoring.retention: must not be negative")
	}
	for name, addr := range map[string]string{"client_listen": c.ClientListen, "peer_listen": c.PeerListen, "ops_listen": c.OpsListen} {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	if c.ConfRefresh.D() < time.Second {
		return errors.New("conf_refresh: must be at least 1s")
	}
	if c.PeerTimeout.D() <= 0 {
		return errors.New("peer_timeout: must be positive")
	}
	if c.PeerProtocol != PeerHTTP1 && c.PeerProtocol != PeerHTTP2 {
		return fmt.Errorf("peer_protocol: %q is neither %q nor %q", c.PeerProtocol, PeerHTTP1, PeerHTTP2)
	}
	if c.TimestampInterval.D() < 100*time.Millisecond {
		return errors.New("timestamp_interval: must be at least 100ms")
	}
	if c.TimestampGrace.D() < c.TimestampInterval.D() {
		return errors.New("timestamp_grace: must be at least timestamp_interval")
	}
	if d := c.Replay.MaxSkew.D(); d < time.Second || d > time.Hour {
		return errors.New("replay.max_skew: must be between 1s and 1h")
	}
	if c.Limits.MaxHeaderBytes < 1024 {
		return errors.New("limits.max_header_bytes: must be at least 1024")
	}
	if c.Limits.MaxURILength < 64 {
		return errors.New("limits.max_uri_length: must be at least 64")
	}
	if c.Limits.MaxBodyBytes < -1 {
		return errors.New("limits.max_body_bytes: must be -1 (no limit) or positive")
	}
	if err := c.Federation.validate(); err != nil {
		return err
	}
	tc, err := c.loadBackendTLS()
	if err != nil {
		return err
	}
	c.backendTLS = tc
	if err := c.validateClients(); err != nil {
		return err
	}
	if err := c.PeerLimits.validate(); err != nil {
		return err
	}
	if c.Log.IndexDSN != "" && !store.IsPostgres(c.Log.IndexDSN) {
		return errors.New("log.index_dsn: must be a postgres:// or postgresql:// URL")
	}
	if c.Log.Node != "" && !nodeRE.MatchString(c.Log.Node) {
		return fmt.Errorf("log.node: %q must be 1-32 letters, digits, '.', '_' or '-'", c.Log.Node)
	}
	if c.Log.Retention < 0 {
		return errors.New("log.retention: must not be negative")
	}
	c.Log.storeBodies = map[ident.ClientID]bool{}
	for i, s := range c.Log.StoreBodies {
		id, err := ident.ParseSubsystem(s)
		if err != nil {
			return fmt.Errorf("log.store_bodies[%d]: %w", i, err)
		}
		if id.Instance != c.ID.Instance {
			return fmt.Errorf("log.store_bodies[%d]: %s is not of instance %s", i, id, c.ID.Instance)
		}
		c.Log.storeBodies[id] = true
	}
	switch c.SOAP.FaultSpelling {
	case "":
		c.SOAP.FaultSpelling = FaultSpellingCamel
	case FaultSpellingCamel, FaultSpellingSnake:
	default:
		return fmt.Errorf("soap.fault_spelling: %q is not camel or snake", c.SOAP.FaultSpelling)
	}
	seen := map[ident.ServiceID]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		f := fmt.Sprintf("services[%d]", i)
		if err := s.ID.Validate(); err != nil {
			return fmt.Errorf("%s.id: %w", f, err)
		}
		if s.ID.Provider.Instance != c.ID.Instance {
			return fmt.Errorf("%s.id: provider %s is not of instance %s", f, s.ID.Provider, c.ID.Instance)
		}
		if s.ID.Version != "" {
			return fmt.Errorf("%s.id: REST services have no version", f)
		}
		if seen[s.ID] {
			return fmt.Errorf("%s.id: %s configured twice", f, s.ID)
		}
		seen[s.ID] = true
		u, err := url.Parse(s.Backend)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("%s.backend: %q must be an http or https URL", f, s.Backend)
		}
		switch s.Protocol {
		case "", ProtocolREST:
			s.Protocol = ProtocolREST
			if s.WSDLFile != "" {
				return fmt.Errorf("%s.wsdl_file: a REST service has no WSDL (protocol \"soap\" for a SOAP service)", f)
			}
		case ProtocolSOAP:
			if s.OpenAPIFile != "" {
				return fmt.Errorf("%s.openapi_file: a SOAP service is described by wsdl_file", f)
			}
		default:
			return fmt.Errorf("%s.protocol: %q is not rest or soap", f, s.Protocol)
		}
		for _, d := range []struct {
			name string
			path *string
		}{{"openapi_file", &s.OpenAPIFile}, {"wsdl_file", &s.WSDLFile}} {
			if *d.path == "" {
				continue
			}
			if !filepath.IsAbs(*d.path) {
				*d.path = filepath.Join(c.dir, *d.path)
			}
			if _, err := os.Stat(*d.path); err != nil {
				return fmt.Errorf("%s.%s: %w", f, d.name, err)
			}
		}
		s.endpoints = nil
		for j, e := range s.Endpoints {
			ep, err := parseEndpoint(e)
			if err != nil {
				return fmt.Errorf("%s.endpoints[%d]: %w", f, j, err)
			}
			s.endpoints = append(s.endpoints, ep)
		}
		s.access = nil
		var grants []policy.Grant
		for j, a := range s.Access {
			ac, err := parseAccess(a)
			if err != nil {
				return fmt.Errorf("%s.access[%d].%w", f, j, err)
			}
			s.access = append(s.access, ac)
			gr := policy.Grant{}
			if ac.isGroup {
				gr.Group = &ac.group
			} else {
				gr.Subsystem = &ac.subsystem
			}
			if ac.endpoint != nil {
				gr.Endpoint = ac.endpoint.raw
			}
			grants = append(grants, gr)
		}
		if s.policy, err = policy.CompileAccess(s.ID, grants); err != nil {
			return fmt.Errorf("%s.access: %w", f, err)
		}
		if s.Timeout.D() <= 0 {
			return fmt.Errorf("%s.timeout: must be positive", f)
		}
	}
	return nil
}

// File returns the file the configuration was loaded from ("" when it
// was not).
func (c *Config) File() string { return c.file }

// path resolves a file named in the configuration against its directory.
func (c *Config) path(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

func (c *Config) anchorPath() string {
	if filepath.IsAbs(c.AnchorFile) || c.dir == "" {
		return c.AnchorFile
	}
	return filepath.Join(c.dir, c.AnchorFile)
}

// endpoint is a compiled "METHOD /path/pattern".
type endpoint struct {
	method string // "*" for any
	segs   []string
	raw    string
}

func parseEndpoint(s string) (endpoint, error) {
	method, path, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || method == "" || !strings.HasPrefix(path, "/") {
		return endpoint{}, fmt.Errorf("%q must be \"METHOD /path\"", s)
	}
	if method != "*" && (strings.ToUpper(method) != method || !validMethod(method)) {
		return endpoint{}, fmt.Errorf("%q: method must be an upper-case HTTP method or *", s)
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, sg := range segs {
		if sg == "**" && i != len(segs)-1 {
			return endpoint{}, fmt.Errorf("%q: ** may only end a pattern", s)
		}
	}
	return endpoint{method: method, segs: segs, raw: method + " " + path}, nil
}

func validMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return true
	}
	return false
}

// match reports whether method and the (escaped) path match.
func (e endpoint) match(method, path string) bool {
	if e.method != "*" && e.method != method {
		return false
	}
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, p := range e.segs {
		if p == "**" {
			return true
		}
		if i >= len(segs) {
			return false
		}
		if p == "*" && segs[i] == "" || p != "*" && p != segs[i] {
			return false
		}
	}
	return len(segs) == len(e.segs)
}

type access struct {
	subsystem ident.ClientID
	group     ident.GroupID
	isGroup   bool
	endpoint  *endpoint
}

func parseAccess(a AccessRight) (access, error) {
	var ac access
	switch strings.Count(a.Subject, "/") {
	case 1:
		g, err := ident.ParseGroup(a.Subject)
		if err != nil {
			return ac, fmt.Errorf("subject: %w", err)
		}
		ac.group, ac.isGroup = g, true
	case 3:
		s, err := ident.ParseSubsystem(a.Subject)
		if err != nil {
			return ac, fmt.Errorf("subject: %w", err)
		}
		ac.subsystem = s
	default:
		return ac, fmt.Errorf("subject: %q must be a subsystem (INSTANCE/CLASS/CODE/SUBSYSTEM) or a global group (INSTANCE/GROUP)", a.Subject)
	}
	if a.Endpoint != "" {
		ep, err := parseEndpoint(a.Endpoint)
		if err != nil {
			return ac, fmt.Errorf("endpoint: %w", err)
		}
		ac.endpoint = &ep
	}
	return ac, nil
}
