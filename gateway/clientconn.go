package gateway

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// How an information system may connect to the client side on behalf of
// one of its subsystems, as X-Road's connection types for information
// systems.
const (
	// ConnHTTP accepts plain HTTP (and HTTPS): only where the operator
	// chooses it, on a network where nothing else can reach the port.
	ConnHTTP = "http"
	// ConnHTTPS needs TLS, with or without a client certificate.
	ConnHTTPS = "https"
	// ConnHTTPSCerts needs TLS with one of the client certificates
	// registered for the subsystem.
	ConnHTTPSCerts = "https-certs"
)

// ClientSystem says how the information systems of one client subsystem
// connect.
type ClientSystem struct {
	// Subsystem is INSTANCE/CLASS/CODE/SUBSYSTEM, one this gateway serves.
	Subsystem string `json:"subsystem"`
	// Connection is "http", "https" or "https-certs".
	Connection string `json:"connection"`
	// Certificates are PEM files of the TLS client certificates that may
	// speak for the subsystem (with https-certs), relative to the
	// configuration file's directory when not absolute. They are pinned
	// by fingerprint: self-signed certificates are fine.
	Certificates []string `json:"certificates"`

	id  ident.ClientID
	fps map[string]bool
}

// maxClientCerts bounds the certificates registered for one subsystem.
const maxClientCerts = 32

// validateClients checks the client systems and loads their certificates.
func (c *Config) validateClients() error {
	switch c.DefaultConnection {
	case ConnHTTP, ConnHTTPS, ConnHTTPSCerts:
	default:
		return fmt.Errorf("default_connection: %q is not %q, %q or %q", c.DefaultConnection, ConnHTTP, ConnHTTPS, ConnHTTPSCerts)
	}
	if (c.ClientTLSCertFile == "") != (c.ClientTLSKeyFile == "") {
		return errors.New("client_tls_cert_file, client_tls_key_file: give both or neither")
	}
	c.clients = map[ident.ClientID]*ClientSystem{}
	for i := range c.Clients {
		cs := &c.Clients[i]
		f := fmt.Sprintf("clients[%d]", i)
		id, err := ident.ParseSubsystem(cs.Subsystem)
		if err != nil {
			return fmt.Errorf("%s.subsystem: %w", f, err)
		}
		if id.Instance != c.ID.Instance {
			return fmt.Errorf("%s.subsystem: %s is not of instance %s", f, id, c.ID.Instance)
		}
		if c.clients[id] != nil {
			return fmt.Errorf("%s.subsystem: %s configured twice", f, id)
		}
		switch cs.Connection {
		case ConnHTTP, ConnHTTPS:
			if len(cs.Certificates) > 0 {
				return fmt.Errorf("%s.certificates: only with connection %q", f, ConnHTTPSCerts)
			}
		case ConnHTTPSCerts:
			if len(cs.Certificates) == 0 {
				return fmt.Errorf("%s.certificates: connection %q needs at least one certificate", f, ConnHTTPSCerts)
			}
		default:
			return fmt.Errorf("%s.connection: %q is not %q, %q or %q", f, cs.Connection, ConnHTTP, ConnHTTPS, ConnHTTPSCerts)
		}
		if len(cs.Certificates) > maxClientCerts {
			return fmt.Errorf("%s.certificates: at most %d", f, maxClientCerts)
		}
		cs.id, cs.fps = id, map[string]bool{}
		for j, p := range cs.Certificates {
			cert, err := pki.ReadCert(c.resolve(p))
			if err != nil {
				return fmt.Errorf("%s.certificates[%d]: %w", f, j, err)
			}
			cs.fps[pki.Fingerprint(cert.Raw)] = true
		}
		c.clients[id] = cs
	}
	return nil
}

// resolve makes a path relative to the configuration file's directory.
func (c *Config) resolve(p string) string {
	if filepath.IsAbs(p) || c.dir == "" {
		return p
	}
	return filepath.Join(c.dir, p)
}

// checkConnection refuses a request that names a client subsystem over a
// connection the subsystem's connection type does not allow.
func (g *Gateway) checkConnection(r *http.Request, client ident.ClientID) *r1.Error {
	live := g.live.Load().cfg
	conn, fps := live.DefaultConnection, map[string]bool(nil)
	if cs := live.clients[client]; cs != nil {
		conn, fps = cs.Connection, cs.fps
	}
	switch conn {
	case ConnHTTP:
		return nil
	case ConnHTTPS:
		if r.TLS == nil {
			return r1.New(r1.TypeSSLAuthFailed, "client %s must connect over HTTPS", client)
		}
		return nil
	}
	if r.TLS == nil {
		return r1.New(r1.TypeSSLAuthFailed, "client %s must connect over HTTPS with one of its registered certificates", client)
	}
	if len(r.TLS.PeerCertificates) == 0 {
		return r1.New(r1.TypeSSLAuthFailed, "client %s must present one of its registered TLS certificates", client)
	}
	leaf := r.TLS.PeerCertificates[0]
	now := g.now()
	if !fps[pki.CachedFingerprint(leaf.Raw)] || now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
		return r1.New(r1.TypeSSLAuthFailed, "the TLS certificate presented is not registered for client %s, or not valid now", client)
	}
	return nil
}

// Files of the client side's own TLS certificate, made at the first start
// when the configuration names none.
const (
	clientTLSKeyFile  = "client-tls.key"
	clientTLSCertFile = "client-tls.crt"
)

// ClientTLSCertPath returns the path of the certificate the client side
// presents over HTTPS, for information systems to trust.
func (g *Gateway) ClientTLSCertPath() string {
	if g.cfg.ClientTLSCertFile != "" {
		return g.cfg.resolve(g.cfg.ClientTLSCertFile)
	}
	return filepath.Join(g.dir, clientTLSCertFile)
}

// clientTLS loads the client side's certificate, or makes a self-signed
// one for the client listener's host (and localhost) on first use.
func (g *Gateway) clientTLS() (*tls.Config, error) {
	certPath, keyPath := g.ClientTLSCertPath(), filepath.Join(g.dir, clientTLSKeyFile)
	if g.cfg.ClientTLSKeyFile != "" {
		keyPath = g.cfg.resolve(g.cfg.ClientTLSKeyFile)
	} else if _, err := os.Stat(certPath); errors.Is(err, os.ErrNotExist) {
		if err := makeClientTLSCert(certPath, keyPath, g.cfg.ID.String(), g.cfg.ClientListen); err != nil {
			return nil, fmt.Errorf("make the client side's TLS certificate: %w", err)
		}
	}
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("load the client side's TLS certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		CipherSuites: aeadSuites,
		Certificates: []tls.Certificate{cert},
		// Certificates are pinned per subsystem (checkConnection), so
		// any presented certificate is taken to the handler to judge.
		ClientAuth: tls.RequestClientCert,
		NextProtos: []string{"h2", "http/1.1"},
	}, nil
}

// aeadSuites are the TLS 1.2 suites offered to information systems: ECDHE
// with AEAD only (TLS 1.3's are always AEAD).
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// makeClientTLSCert writes a self-signed certificate for listen's host.
func makeClientTLSCert(certPath, keyPath, name, listen string) error {
	now := time.Now()
	tpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name + " client side"},
		NotBefore:   now.Add(-time.Minute),
		NotAfter:    now.AddDate(2, 0, 0),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    []string{"localhost"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip != nil {
			if !ip.IsUnspecified() && !ip.IsLoopback() {
				tpl.IPAddresses = append(tpl.IPAddresses, ip)
			}
		} else if host != "localhost" {
			tpl.DNSNames = append(tpl.DNSNames, host)
		}
	}
	return pki.WriteSelfSigned(certPath, keyPath, tpl)
}

// splitListener serves plain HTTP and HTTPS on one port: each connection
// is taken by its first byte, a TLS handshake record (0x16) or not.
type splitListener struct {
	net.Listener
	plain, tls *chanListener
	timeout    time.Duration
	wg         sync.WaitGroup

	mu      sync.Mutex
	sorting map[net.Conn]bool // closed by Close
}

// maxSortWait bounds how long a connection may stay silent before its
// first byte.
const maxSortWait = 10 * time.Second

// newSplitListener starts sorting ln's connections; Close stops it.
func newSplitListener(ln net.Listener, timeout time.Duration) *splitListener {
	s := &splitListener{Listener: ln, timeout: min(timeout, maxSortWait), sorting: map[net.Conn]bool{}}
	s.plain, s.tls = newChanListener(ln.Addr()), newChanListener(ln.Addr())
	s.wg.Add(1)
	go s.run()
	return s
}

func (s *splitListener) run() {
	defer s.wg.Done()
	defer s.plain.Close()
	defer s.tls.Close()
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		s.mu.Lock()
		s.sorting[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.sort(c)
			s.mu.Lock()
			delete(s.sorting, c)
			s.mu.Unlock()
		}()
	}
}

// sort reads the connection's first byte (within the timeout, so that a
// silent connection holds nothing for long) and hands it on.
func (s *splitListener) sort(c net.Conn) {
	c.SetReadDeadline(time.Now().Add(s.timeout))
	br := bufio.NewReaderSize(c, 16)
	b, err := br.Peek(1)
	if err != nil {
		c.Close()
		return
	}
	c.SetReadDeadline(time.Time{})
	pc := &peekedConn{Conn: c, r: br}
	to := s.plain
	if b[0] == 0x16 {
		to = s.tls
	}
	if !to.put(pc) {
		c.Close()
	}
}

// Close stops accepting, closes the connections still being sorted and
// waits for their sorters.
func (s *splitListener) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	for c := range s.sorting {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

// peekedConn is a connection whose first bytes were read ahead.
type peekedConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *peekedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// chanListener is a listener fed connections by splitListener.
type chanListener struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *chanListener) put(c net.Conn) bool {
	select {
	case l.ch <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }
