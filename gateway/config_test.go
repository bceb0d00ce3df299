package gateway

import (
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
)

// The message-log settings, and the protocol spoken to other gateways,
// are checked when the configuration loads, and a bad one names its
// field.
func TestLogConfigValidated(t *testing.T) {
	base := func() *Config {
		id, _ := ident.ParseGateway("VN/GOV/MPS/gw1")
		c := &Config{ID: id, AnchorFile: "anchor.json"}
		c.SetDefaults()
		return c
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("base configuration: %v", err)
	}
	if got := base().DefaultConnection; got != ConnHTTPS {
		t.Errorf("default connection type %q, want %q: plain HTTP only where the operator chooses it", got, ConnHTTPS)
	}
	for _, c := range []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.Log.IndexDSN = "mysql://x" }, "log.index_dsn"},
		{func(c *Config) { c.Log.Retention = cfg.Duration(-1) }, "log.retention"},
		{func(c *Config) { c.Log.StoreBodies = []string{"VN/GOV/MPS"} }, "log.store_bodies[0]"},
		{func(c *Config) { c.Log.StoreBodies = []string{"SG/GOV/SPF/anti-scam"} }, "not of instance VN"},
		{func(c *Config) { c.Log.Node = "node 2" }, "log.node"},
		{func(c *Config) { c.PeerProtocol = "h3" }, "peer_protocol"},
		{func(c *Config) { c.DefaultConnection = "tls" }, "default_connection"},
		{func(c *Config) {
			c.Clients = []ClientSystem{{Subsystem: "VN/GOV/MPS/residents", Connection: "https-certs"}}
		}, "clients[0].certificates"},
		{func(c *Config) {
			c.Clients = []ClientSystem{{Subsystem: "VN/GOV/MPS/residents", Connection: "http", Certificates: []string{"x.pem"}}}
		}, "clients[0].certificates"},
		{func(c *Config) { c.Clients = []ClientSystem{{Subsystem: "VN/GOV/MPS", Connection: "https"}} }, "clients[0].subsystem"},
		{func(c *Config) { c.Clients = []ClientSystem{{Subsystem: "SG/GOV/SPF/anti-scam", Connection: "https"}} }, "not of instance VN"},
		{func(c *Config) {
			c.Clients = []ClientSystem{{Subsystem: "VN/GOV/MPS/residents", Connection: "https"}, {Subsystem: "VN/GOV/MPS/residents", Connection: "http"}}
		}, "clients[1].subsystem"},
		{func(c *Config) {
			c.Clients = []ClientSystem{{Subsystem: "VN/GOV/MPS/residents", Connection: "https-certs", Certificates: []string{"/nonexistent.pem"}}}
		}, "clients[0].certificates[0]"},
		{func(c *Config) { c.ClientTLSCertFile = "c.pem" }, "client_tls_key_file"},
		{func(c *Config) { c.PeerProtocol = "HTTP/1.1" }, "peer_protocol"},
		{func(c *Config) {
			c.Services = []Service{{Backend: "http://x", Access: []AccessRight{{Subject: "VN/GOV/HCMC/one-stop", Endpoint: "get /x"}}}}
			c.Services[0].ID, _ = ident.ParseService("VN/GOV/MPS/residents/persons")
		}, "services[0].access[0]"},
	} {
		cf := base()
		c.edit(cf)
		if err := cf.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %v, want one naming %q", err, c.want)
		}
	}
	if c := base(); c.PeerProtocol != PeerHTTP1 {
		t.Errorf("default peer_protocol %q, want %q", c.PeerProtocol, PeerHTTP1)
	}
	ok := base()
	ok.PeerProtocol = PeerHTTP2
	ok.Log = LogConfig{IndexDSN: "postgres://sampan@db/sampan", Node: "node-2", StoreBodies: []string{"VN/GOV/MPS/cybercrime"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid log settings refused: %v", err)
	}
}
