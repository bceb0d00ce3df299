package gateway

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// Files in a gateway's data directory.
const (
	authKeyFile  = "auth.key"
	authCSRFile  = "auth.csr"
	authCertFile = "auth.crt"
	signDir      = "sign"
	stateFile    = "state.db"
	opmonFile    = "opmon.db"
	logDir       = "log"
)

// memberFile turns a member id into a file name.
func memberFile(m ident.ClientID) string {
	return strings.NewReplacer("/", "_").Replace(m.Escaped())
}

// Paths says where Init put a gateway's keys, CSRs and expected
// certificates.
type Paths struct {
	AuthKey, AuthCSR, AuthCert string
	// Sign maps a member id to its signing key, CSR and certificate paths.
	Sign map[ident.ClientID][3]string
}

// Init creates, in dir, the gateway's authentication key and one signing
// key per member (the owner when none are given), each with a CSR to hand
// to the authority. Keys already present are kept. It returns the paths.
func Init(dir string, id ident.GatewayID, members ...ident.ClientID) (*Paths, error) {
	if err := os.MkdirAll(filepath.Join(dir, signDir), 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	p := &Paths{
		AuthKey:  filepath.Join(dir, authKeyFile),
		AuthCSR:  filepath.Join(dir, authCSRFile),
		AuthCert: filepath.Join(dir, authCertFile),
		Sign:     map[ident.ClientID][3]string{},
	}
	k, err := pki.LoadOrCreateKey(p.AuthKey, pki.ECDSAP256)
	if err != nil {
		return nil, err
	}
	csr, err := pki.NewCSR(k, id.String())
	if err != nil {
		return nil, err
	}
	if err := pki.WriteFileAtomic(p.AuthCSR, csr, 0o644); err != nil {
		return nil, err
	}
	if len(members) == 0 {
		members = []ident.ClientID{id.Owner()}
	}
	for _, m := range members {
		if m.IsSubsystem() || m.Validate() != nil {
			return nil, fmt.Errorf("signing key: %q is not a member", m)
		}
		base := filepath.Join(dir, signDir, memberFile(m))
		paths := [3]string{base + ".key", base + ".csr", base + ".crt"}
		k, err := pki.LoadOrCreateKey(paths[0], pki.Ed25519)
		if err != nil {
			return nil, err
		}
		csr, err := pki.NewCSR(k, m.String())
		if err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(paths[1], csr, 0o644); err != nil {
			return nil, err
		}
		p.Sign[m] = paths
	}
	return p, nil
}

// defaultBatchWindow is how long a batch of signatures gathers while the
// process is busy (Options.BatchBusy).
const defaultBatchWindow = time.Millisecond

// memberKey is a member's signing key with its certificate.
type memberKey struct {
	signer  *pki.Signer
	batch   *pki.BatchSigner // signs with signer, in batches while busy
	der     []byte
	certB64 string // base64 DER, sent in the Sampan-Signer-Cert header
	fp      string
}

type keyring struct {
	auth   tls.Certificate
	authFP string
	sign   map[ident.ClientID]*memberKey
}

// loadKeys reads the authentication key and certificate and every signing
// key with a certificate from dir, after finishing a key switch a stop
// cut short.
func loadKeys(dir string, id ident.GatewayID, batchBusy func() bool, batchWindow time.Duration) (*keyring, error) {
	if err := finishSwitch(dir); err != nil {
		return nil, err
	}
	key, err := pki.ReadKey(filepath.Join(dir, authKeyFile))
	if err != nil {
		return nil, fmt.Errorf("authentication key (run 'sampan gateway init' first): %w", err)
	}
	cert, err := pki.ReadCert(filepath.Join(dir, authCertFile))
	if err != nil {
		return nil, fmt.Errorf("authentication certificate (install the certificate the authority issued for %s): %w", authCSRFile, err)
	}
	if gid, ok := pki.GatewayOf(cert); !ok || gid != id.String() {
		return nil, fmt.Errorf("authentication certificate was issued to %q, not %s", gid, id)
	}
	if !cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(key.Public()) {
		return nil, errors.New("authentication certificate does not match auth.key")
	}
	kr := &keyring{
		auth:   tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert},
		authFP: pki.Fingerprint(cert.Raw),
		sign:   map[ident.ClientID]*memberKey{},
	}
	certs, _ := filepath.Glob(filepath.Join(dir, signDir, "*.crt"))
	for _, cp := range certs {
		c, err := pki.ReadCert(cp)
		if err != nil {
			return nil, err
		}
		mid, ok := pki.MemberOf(c)
		if !ok {
			return nil, fmt.Errorf("%s is not a member signing certificate", cp)
		}
		m, err := ident.ParseMember(mid)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", cp, err)
		}
		k, err := pki.ReadKey(strings.TrimSuffix(cp, ".crt") + ".key")
		if err != nil {
			return nil, err
		}
		if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
			return nil, fmt.Errorf("%s does not match its key", cp)
		}
		s, err := pki.NewSigner(k, "")
		if err != nil {
			return nil, err
		}
		b := pki.NewBatchSigner(s)
		b.Busy, b.Window = batchBusy, batchWindow
		kr.sign[m] = &memberKey{signer: s, batch: b, der: c.Raw, certB64: base64.StdEncoding.EncodeToString(c.Raw), fp: pki.Fingerprint(c.Raw)}
	}
	return kr, nil
}

// heldCert is a certificate the gateway holds, for the expiry metric and
// warnings.
type heldCert struct {
	use      string // "auth" or "sign"
	member   string // the signing certificate's member; "" for auth
	notAfter time.Time
}

// held lists the certificates of the keyring.
func (k *keyring) held() []heldCert {
	var out []heldCert
	if k.auth.Leaf != nil {
		out = append(out, heldCert{use: "auth", notAfter: k.auth.Leaf.NotAfter})
	}
	for m, mk := range k.sign {
		if c, err := x509.ParseCertificate(mk.der); err == nil {
			out = append(out, heldCert{use: "sign", member: m.String(), notAfter: c.NotAfter})
		}
	}
	return out
}

// certWarnings are how long before a certificate expires the gateway
// starts warning, each once.
var certWarnings = [...]time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}

// watchCerts logs a warning when a certificate the gateway holds comes
// within 30, 7 and 1 days of its expiry (and at start when already
// within one), checking hourly until ctx ends.
func (g *Gateway) watchCerts(ctx context.Context) {
	warned := map[heldCert]int{} // how many thresholds have been passed
	for {
		now := g.now()
		for _, c := range g.keys.Load().held() {
			left := c.notAfter.Sub(now)
			n := 0
			for _, w := range certWarnings {
				if left < w {
					n++
				}
			}
			if n > warned[c] {
				warned[c] = n
				g.log.Warn("certificate expires soon: renew it", "use", c.use, "member", c.member,
					"not_after", c.notAfter.UTC().Format(time.RFC3339), "days_left", int(left.Hours()/24))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Hour):
		}
	}
}
