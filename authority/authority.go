// Package authority is the daemon each instance runs: the registry of
// members, subsystems, gateways and global groups, the certificate
// authority, and the publisher of the signed shared configuration, with a
// management API for operators.
package authority

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"encoding/asn1"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/internal/dirlock"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// Files in the authority's data directory.
const (
	AnchorFile   = "anchor.json"
	confSignKey  = "conf-sign.key"
	tlsKeyFile   = "tls.key"
	tlsCertFile  = "tls.crt"
	tlsCAKeyFile = "tls-ca.key"
	// TLSCAFile is the certificate of the CA of the authority's own TLS
	// (the anchor's tls_ca), for tools such as curl (--cacert).
	TLSCAFile    = "tls-ca.crt"
	registryFile = "registry.db"
)

// Authority is a running authority.
type Authority struct {
	lock *dirlock.Lock // held on the data directory while open

	// cfg is the configuration the authority started with: the fields
	// only a restart applies. Read those a reload applies (see Reload)
	// through config().
	cfg    *Config
	dir    string
	log    *slog.Logger
	db     *sql.DB
	cas    atomic.Pointer[caSet] // the instance CAs (rotation.go)
	tlsCA  *pki.CA               // issues the authority's own TLS certificate only
	signer *pki.Signer           // signs configurations with curConfKey
	kid    string
	tls    tls.Certificate
	anchor atomic.Pointer[conf.Anchor]

	// A configuration-signing key rotation (rotation.go), under pubMu;
	// rotMu serialises its steps.
	rotMu                                sync.Mutex
	curConfKey, nextConfKey, prevConfKey *confKey
	rotation                             rotationState

	pubMu   sync.Mutex // serialises every write and publication
	current atomic.Pointer[published]
	crl     atomic.Pointer[[]byte]            // the oldest listed CA's, at /crl
	crls    atomic.Pointer[map[string][]byte] // every listed CA's, by caID

	tsa       *tsa
	tsaPolicy asn1.ObjectIdentifier

	authThrottle, tsaThrottle *throttle
	refuseThrottle            *throttle // role refusals audited per address
	revokedMu                 sync.RWMutex
	revoked                   map[string]bool // operator token hashes

	reloadable

	metrics  *metrics
	opsToken string                   // from Config.OpsTokenFile
	opsAddr  atomic.Pointer[net.Addr] // set while the operations listener serves
}

type published struct {
	doc    []byte
	serial uint64
	etag   string
	cfg    *conf.Config
}

// New opens (initialising on first start) the authority in dir: CA,
// configuration-signing key, TLS certificate, anchor file and registry.
func New(ctx context.Context, c *Config, dir string, log *slog.Logger) (*Authority, error) {
	return NewWithOptions(ctx, c, dir, Options{Log: log})
}

// NewWithOptions is New with the optional settings of o. The data
// directory is locked while the authority is open (a restore refuses a
// locked one); Close releases it.
func NewWithOptions(ctx context.Context, c *Config, dir string, o Options) (*Authority, error) {
	if c.OpsTokenFile != "" { // checked before anything is created
		if _, err := ops.ReadTokenFile(c.OpsTokenFile); err != nil {
			return nil, fmt.Errorf("ops_token_file: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	lock, err := dirlock.Acquire(dir)
	if err != nil {
		return nil, err
	}
	a, err := newAuthority(ctx, c, dir, o)
	if err != nil {
		lock.Release()
		return nil, err
	}
	a.lock = lock
	return a, nil
}

func newAuthority(ctx context.Context, c *Config, dir string, o Options) (*Authority, error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	a := &Authority{cfg: c, dir: dir, log: log.With("component", "authority", "instance", c.Instance)}
	a.initReload(c, o)
	a.metrics = newMetrics(a)
	var err error
	if c.OpsTokenFile != "" {
		if a.opsToken, err = ops.ReadTokenFile(c.OpsTokenFile); err != nil {
			return nil, fmt.Errorf("ops_token_file: %w", err)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	if err := a.loadCAs(); err != nil {
		return nil, err
	}
	// The authority's TLS has a CA of its own: a certificate of the
	// instance CA, which every gateway holds, must never pass for the
	// authority (docs/design/pki.md).
	if a.tlsCA, err = pki.LoadOrCreateCAFiles(filepath.Join(dir, tlsCAKeyFile), filepath.Join(dir, TLSCAFile), c.Instance+" Sampan authority TLS CA"); err != nil {
		return nil, err
	}
	if err := a.loadConfKeys(); err != nil {
		return nil, err
	}
	if err := a.fillRotationTimes(); err != nil {
		return nil, err
	}
	if err := a.loadTLS(); err != nil {
		return nil, err
	}
	if err := a.loadTSA(); err != nil {
		return nil, err
	}
	if err := a.writeAnchor(); err != nil {
		return nil, err
	}
	if a.db, err = store.Open(ctx, filepath.Join(dir, registryFile), migrations); err != nil {
		return nil, err
	}
	if err := a.loadOperators(ctx); err != nil {
		a.db.Close()
		return nil, err
	}
	if err := a.fillKeyFingerprints(ctx); err != nil {
		a.db.Close()
		return nil, err
	}
	if err := a.Publish(ctx); err != nil {
		a.db.Close()
		return nil, err
	}
	return a, nil
}

func (a *Authority) loadTLS() error {
	keyPath, certPath := filepath.Join(a.dir, tlsKeyFile), filepath.Join(a.dir, tlsCertFile)
	key, err := pki.LoadOrCreateKey(keyPath, pki.ECDSAP256)
	if err != nil {
		return err
	}
	cert, err := pki.ReadCert(certPath)
	if err == nil && !sameHosts(cert, a.cfg.Hostnames) {
		err = os.ErrNotExist // hostnames changed: issue anew
	}
	if err == nil && time.Until(cert.NotAfter) < 30*24*time.Hour {
		err = os.ErrNotExist // close to expiry: renew
	}
	if err == nil && cert.CheckSignatureFrom(a.tlsCA.Cert) != nil {
		err = os.ErrNotExist // issued by another CA (the instance CA, before): issue anew
	}
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			return err
		}
		t := pki.Template{CommonName: a.cfg.Instance + " authority"}
		for _, h := range a.cfg.Hostnames {
			if ip := net.ParseIP(h); ip != nil {
				t.IPs = append(t.IPs, ip)
			} else {
				t.DNSNames = append(t.DNSNames, h)
			}
		}
		cert, err = a.tlsCA.Issue(key.Public(), pki.ProfileServer, t)
		a.metrics.certIssued("tls", err)
		if err != nil {
			return err
		}
		if err := pki.WriteCert(certPath, cert.Raw); err != nil {
			return err
		}
	}
	a.tls = tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
	return nil
}

func sameHosts(c *x509.Certificate, hosts []string) bool {
	n := len(c.DNSNames) + len(c.IPAddresses)
	if n != len(hosts) {
		return false
	}
	for _, h := range hosts {
		if c.VerifyHostname(h) != nil {
			return false
		}
	}
	return true
}

// writeAnchor writes the anchor file: the keys of anchorKeys.
func (a *Authority) writeAnchor() error {
	an := &conf.Anchor{
		FormatVersion: conf.FormatVersion,
		Instance:      a.cfg.Instance,
		URL:           strings.TrimSuffix(a.cfg.PublicURL, "/") + "/conf",
		Keys:          a.anchorKeys(),
		TLSCA:         string(pki.EncodeCert(a.tlsCA.Cert.Raw)),
	}
	if err := an.Validate(); err != nil {
		return fmt.Errorf("anchor: %w", err)
	}
	a.anchor.Store(an)
	path := filepath.Join(a.dir, AnchorFile)
	tmp := path + ".tmp"
	if err := cfg.Write(tmp, an, 0o644); err != nil {
		return fmt.Errorf("write anchor: %w", err)
	}
	return os.Rename(tmp, path)
}

// AnchorPath returns the path of the anchor file gateways are installed
// with.
func (a *Authority) AnchorPath() string { return filepath.Join(a.dir, AnchorFile) }

// Anchor returns the anchor of this authority's configuration.
func (a *Authority) Anchor() *conf.Anchor { return a.anchor.Load() }

// CACert returns the instance CA's certificate: gateways' and members'
// certificates chain to it.
func (a *Authority) CACert() *x509.Certificate { return a.issuingCA().Cert }

// TLSCACert returns the certificate of the CA of the authority's own TLS,
// the only one clients of the authority trust for it.
func (a *Authority) TLSCACert() *x509.Certificate { return a.tlsCA.Cert }

// TLSCAPath returns the path of the TLSCACert file, to install beside the
// anchor for tools such as curl.
func (a *Authority) TLSCAPath() string { return filepath.Join(a.dir, TLSCAFile) }

// Close releases the registry.
func (a *Authority) Close() error { return errors.Join(a.db.Close(), a.lock.Release()) }

// Publish generates, signs and publishes a new configuration with the next
// serial. It is called on every registry change and on a timer.
func (a *Authority) Publish(ctx context.Context) error {
	crlErr, err := a.commit(ctx, "", "", "", nil)
	if err == nil {
		err = crlErr
	}
	if err != nil {
		return fmt.Errorf("publish configuration: %w", err)
	}
	return nil
}

func (a *Authority) publishCRL(ctx context.Context, number int64) error {
	rows, err := a.db.QueryContext(ctx, `SELECT serial, revoked_at FROM certificates WHERE revoked_at IS NOT NULL`)
	if err != nil {
		return fmt.Errorf("publish CRL: %w", err)
	}
	defer rows.Close()
	var entries []x509.RevocationListEntry
	for rows.Next() {
		var s, at string
		if err := rows.Scan(&s, &at); err != nil {
			return fmt.Errorf("publish CRL: %w", err)
		}
		n, ok := new(big.Int).SetString(s, 16)
		if !ok {
			return fmt.Errorf("publish CRL: bad serial %q in registry", s)
		}
		t, _ := time.Parse(time.RFC3339Nano, at)
		entries = append(entries, x509.RevocationListEntry{SerialNumber: n, RevocationTime: t})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("publish CRL: %w", err)
	}
	// Each listed CA signs its own CRL; /crl serves the oldest's, for
	// certificates issued before CRLs had a path per CA.
	crls := map[string][]byte{}
	listed := a.cas.Load().listed()
	for _, ca := range listed {
		der, err := ca.CRL(number, entries, a.config().ConfValidity.D())
		if err != nil {
			return err
		}
		crls[caID(ca)] = der
	}
	oldest := listed[0]
	for _, ca := range listed[1:] {
		if ca.Cert.NotBefore.Before(oldest.Cert.NotBefore) {
			oldest = ca
		}
	}
	der := crls[caID(oldest)]
	a.crls.Store(&crls)
	a.crl.Store(&der)
	return nil
}

// Current returns the configuration being published.
func (a *Authority) Current() *conf.Config { return a.current.Load().cfg }

// IssueInput asks for a certificate.
type IssueInput struct {
	// Profile is "auth" (gateway TLS) or "sign" (member signing).
	Profile string `json:"profile"`
	// Subject is the gateway id (auth) or member id (sign).
	Subject string `json:"subject"`
	CSR     string `json:"csr"`
	// Hosts are DNS names or IP addresses for an auth certificate.
	Hosts []string `json:"hosts"`
}

// IssuedCert is the answer to IssueInput.
type IssuedCert struct {
	Certificate string `json:"certificate"`
	Serial      string `json:"serial"`
	SHA256      string `json:"sha256"`
	NotAfter    string `json:"not_after"`
}

// Issue checks a CSR and issues an authentication or signing certificate.
// An authentication certificate is issued only to a registered gateway,
// for the host of its registered address; a signing certificate only to
// the registered member named. The CSR may name nothing else, and a key
// is certified to one subject and profile only (renewals excepted).
func (a *Authority) Issue(ctx context.Context, op string, in IssueInput) (*IssuedCert, error) {
	out, err := a.issue(ctx, op, in)
	if in.Profile == "auth" || in.Profile == "sign" { // any other is refused before any work
		a.metrics.certIssued(in.Profile, err)
	}
	return out, err
}

func (a *Authority) issue(ctx context.Context, op string, in IssueInput) (*IssuedCert, error) {
	csr, err := pki.ParseCSR([]byte(in.CSR))
	if err != nil {
		return nil, fmt.Errorf("%w: csr: %w", errInvalid, err)
	}
	t := pki.Template{Validity: a.config().CertValidity.D()}
	var p pki.Profile
	var owner ident.ClientID
	var gid ident.GatewayID
	switch in.Profile {
	case "auth":
		if gid, err = ident.ParseGateway(in.Subject); err != nil {
			return nil, fmt.Errorf("%w: subject: %w", errInvalid, err)
		}
		owner = gid.Owner()
		p = pki.ProfileAuth
		t.CommonName = gid.String()
		t.URIs = []string{pki.GatewayURI(gid.String())}
	case "sign":
		mid, err := ident.ParseMember(in.Subject)
		if err != nil {
			return nil, fmt.Errorf("%w: subject: %w", errInvalid, err)
		}
		if len(in.Hosts) > 0 {
			return nil, fmt.Errorf("%w: hosts: a signing certificate names no hosts", errInvalid)
		}
		owner = mid
		p = pki.ProfileSign
		t.CommonName = mid.String()
		t.URIs = []string{pki.MemberURI(mid.String())}
	default:
		return nil, fmt.Errorf("%w: profile: %q is not auth or sign", errInvalid, in.Profile)
	}
	if err := a.checkMemberID(owner); err != nil {
		return nil, err
	}
	if err := checkCSRNames(csr, t.CommonName, t.URIs[0], in.Profile == "auth"); err != nil {
		return nil, err
	}
	keyFP := pki.KeyFingerprint(csr.RawSubjectPublicKeyInfo)
	var out *IssuedCert
	err = a.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM members WHERE id = ?`, owner.String()).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: subject: member %s is not registered", errInvalid, owner)
		}
		if p == pki.ProfileAuth {
			var addr string
			err := tx.QueryRowContext(ctx, `SELECT address FROM gateways WHERE id = ?`, gid.String()).Scan(&addr)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("%w: subject: gateway %s is not registered; register it (PUT /api/v1/gateways, without auth_cert_sha256) before asking for its certificate", errInvalid, gid)
			}
			if err != nil {
				return err
			}
			if t.DNSNames, t.IPs, err = certHosts(csr, in.Hosts, addr); err != nil {
				return err
			}
		}
		if err := checkKeyUnused(ctx, tx, keyFP, in.Profile, t.CommonName); err != nil {
			return err
		}
		cert, err := a.issuingCA().Issue(csr.PublicKey, p, t)
		if err != nil {
			return err
		}
		out = &IssuedCert{
			Certificate: string(pki.EncodeCert(cert.Raw)),
			Serial:      fmt.Sprintf("%x", cert.SerialNumber),
			SHA256:      pki.Fingerprint(cert.Raw),
			NotAfter:    cert.NotAfter.UTC().Format(time.RFC3339),
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, profile, subject, fingerprint, not_after, pem, key_fp) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			out.Serial, in.Profile, t.CommonName, out.SHA256, out.NotAfter, out.Certificate, keyFP); err != nil {
			return err
		}
		return a.audit(ctx, tx, op, "issue "+in.Profile+" certificate", t.CommonName+" "+out.Serial)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Revoke marks a certificate revoked; the next configuration and CRL name
// it.
func (a *Authority) Revoke(ctx context.Context, op, serial string) error {
	serial = strings.ToLower(serial)
	return a.change(ctx, op, "revoke certificate", serial, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ? WHERE serial = ? AND revoked_at IS NULL`, now(), serial)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: no unrevoked certificate with serial %s", errNotFound, serial)
		}
		return nil
	})
}

// Run serves the public and management API on Config.Listen and the
// operations listener (metrics, health, readiness) on Config.OpsListen
// until ctx ends, re-publishing the configuration every ConfInterval (as
// a reload last set it).
func (a *Authority) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen %s: %w", a.cfg.Listen, err)
	}
	opsLn, err := net.Listen("tcp", a.cfg.OpsListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("listen %s (ops_listen): %w", a.cfg.OpsListen, err)
	}
	return a.ServeWithOps(ctx, ln, opsLn)
}

// Serve is Run on a listener the caller opened for the API, without the
// operations listener.
func (a *Authority) Serve(ctx context.Context, ln net.Listener) error {
	return a.serve(ctx, ln, nil)
}

// ServeWithOps is Run on listeners the caller opened: ln for the API,
// opsLn for the operations listener.
func (a *Authority) ServeWithOps(ctx context.Context, ln, opsLn net.Listener) error {
	if opsLn == nil {
		ln.Close()
		return errors.New("serve: no operations listener")
	}
	return a.serve(ctx, ln, opsLn)
}

// OpsAddr returns the address of the operations listener while it
// serves, or "".
func (a *Authority) OpsAddr() string {
	if p := a.opsAddr.Load(); p != nil {
		return (*p).String()
	}
	return ""
}

// serve runs the API, the re-publication timer and, when opsLn is set,
// the operations listener; the first to fail stops the others, and serve
// returns once all have stopped.
func (a *Authority) serve(ctx context.Context, ln, opsLn net.Listener) error {
	var opsSrv *ops.Server
	if opsLn != nil {
		var err error
		opsSrv, err = ops.NewServer(ops.Config{Listener: opsLn, Gatherer: a.metrics.reg, Ready: a.ready, Token: a.opsToken, Log: a.log, Handlers: a.opsHandlers()})
		if err != nil {
			ln.Close()
			opsLn.Close()
			return err
		}
	}
	srv := &http.Server{
		Handler:           a.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		TLSConfig:         a.publicTLS(),
		ErrorLog:          slog.NewLogLogger(a.log.Handler(), slog.LevelDebug),
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	opsDone := make(chan error, 1)
	if opsSrv != nil {
		addr := opsLn.Addr()
		a.opsAddr.Store(&addr)
		defer a.opsAddr.Store(nil)
		go func() {
			err := opsSrv.Run(ctx)
			cancel() // a failed operations listener stops the authority
			opsDone <- err
		}()
	} else {
		opsDone <- nil
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.config().ConfInterval.D())
		defer t.Stop()
		for {
			select {
			case <-a.intervalChanged:
				t.Reset(a.config().ConfInterval.D())
			case <-ctx.Done():
				sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				srv.Shutdown(sctx)
				cancel()
				return
			case <-t.C:
				if err := a.Publish(ctx); err != nil && ctx.Err() == nil {
					a.log.Error("re-publish configuration", "err", err)
				}
			}
		}
	}()
	a.log.Info("authority serving", "addr", ln.Addr().String(), "url", a.cfg.PublicURL)
	err := srv.ServeTLS(ln, "", "")
	cancel()
	<-done
	opsErr := <-opsDone
	if !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return opsErr
}
