package gateway

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// Renewal in place (docs/design/pki.md, "Renewal"): the next keys are
// made beside the current ones, the authority certifies them against
// the gateway's registration and publishes the next authentication
// certificate beside the current one, and the running gateway switches
// to them (SwitchKeys) once the configuration it holds lists the new
// certificate as its own. The data directory and the message log stay;
// replaced certificates are kept under old/ and sign/old/.

// Files of a renewal in a gateway's data directory.
const (
	authNextKeyFile  = "auth.next.key"
	authNextCSRFile  = "auth.next.csr"
	authNextCertFile = "auth.next.crt"
	signNextDir      = "sign/next"
	authOldDir       = "old"
	signOldDir       = "sign/old"
)

// ErrNoRenewal is returned by SwitchKeys when no renewed certificate is
// installed: run the renewal (or its install step) first.
var ErrNoRenewal = errors.New("no renewed certificate is installed")

// ErrNotListed is returned by SwitchKeys while the configuration the
// gateway holds does not list the renewed authentication certificate as
// the gateway's: peers would refuse it. Retry after the next
// configuration refresh.
var ErrNotListed = errors.New("the shared configuration held does not list the renewed authentication certificate yet")

// PrepareRenewal creates, beside the current keys in dir, the gateway's
// next authentication key and a next signing key for every member it
// holds a signing certificate of, each with a CSR to hand to the
// authority. Next keys already present are kept. It returns their
// paths; Paths.AuthCert and Paths.Sign[m][2] are where the renewed
// certificates go (InstallRenewal).
func PrepareRenewal(dir string, id ident.GatewayID) (*Paths, error) {
	if _, err := pki.ReadCert(filepath.Join(dir, authCertFile)); err != nil {
		return nil, fmt.Errorf("prepare renewal: the gateway holds no authentication certificate (run 'sampan gateway init' and install it first): %w", err)
	}
	p := &Paths{
		AuthKey:  filepath.Join(dir, authNextKeyFile),
		AuthCSR:  filepath.Join(dir, authNextCSRFile),
		AuthCert: filepath.Join(dir, authNextCertFile),
		Sign:     map[ident.ClientID][3]string{},
	}
	k, err := pki.LoadOrCreateKey(p.AuthKey, pki.ECDSAP256)
	if err != nil {
		return nil, fmt.Errorf("prepare renewal: %w", err)
	}
	csr, err := pki.NewCSR(k, id.String())
	if err != nil {
		return nil, fmt.Errorf("prepare renewal: %w", err)
	}
	if err := pki.WriteFileAtomic(p.AuthCSR, csr, 0o644); err != nil {
		return nil, fmt.Errorf("prepare renewal: %w", err)
	}
	members, err := signingMembers(dir)
	if err != nil {
		return nil, fmt.Errorf("prepare renewal: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(dir, signNextDir), 0o700); err != nil {
		return nil, fmt.Errorf("prepare renewal: %w", err)
	}
	for _, m := range members {
		base := filepath.Join(dir, signNextDir, memberFile(m))
		paths := [3]string{base + ".key", base + ".csr", base + ".crt"}
		k, err := pki.LoadOrCreateKey(paths[0], pki.Ed25519)
		if err != nil {
			return nil, fmt.Errorf("prepare renewal: %w", err)
		}
		csr, err := pki.NewCSR(k, m.String())
		if err != nil {
			return nil, fmt.Errorf("prepare renewal: %w", err)
		}
		if err := pki.WriteFileAtomic(paths[1], csr, 0o644); err != nil {
			return nil, fmt.Errorf("prepare renewal: %w", err)
		}
		p.Sign[m] = paths
	}
	return p, nil
}

// signingMembers lists the members the gateway holds a signing
// certificate of.
func signingMembers(dir string) ([]ident.ClientID, error) {
	certs, _ := filepath.Glob(filepath.Join(dir, signDir, "*.crt"))
	sort.Strings(certs)
	var out []ident.ClientID
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
		out = append(out, m)
	}
	return out, nil
}

// InstallRenewal checks the renewed certificates against the next keys
// PrepareRenewal made (the key, and the gateway or member each names)
// and writes them beside those keys. auth may be nil when only signing
// certificates were renewed. The running gateway uses them once
// switched (SwitchKeys).
func InstallRenewal(dir string, id ident.GatewayID, auth []byte, sign map[ident.ClientID][]byte) error {
	if auth != nil {
		c, err := pki.ParseCertPEM(auth)
		if err != nil {
			return fmt.Errorf("install renewed authentication certificate: %w", err)
		}
		if err := checkCertKey(c, filepath.Join(dir, authNextKeyFile), id.String(), true); err != nil {
			return fmt.Errorf("install renewed authentication certificate: %w", err)
		}
		if err := pki.WriteFileAtomic(filepath.Join(dir, authNextCertFile), auth, 0o644); err != nil {
			return fmt.Errorf("install renewed authentication certificate: %w", err)
		}
	}
	for m, pemBytes := range sign {
		c, err := pki.ParseCertPEM(pemBytes)
		if err != nil {
			return fmt.Errorf("install renewed signing certificate of %s: %w", m, err)
		}
		base := filepath.Join(dir, signNextDir, memberFile(m))
		if err := checkCertKey(c, base+".key", m.String(), false); err != nil {
			return fmt.Errorf("install renewed signing certificate of %s: %w", m, err)
		}
		if err := pki.WriteFileAtomic(base+".crt", pemBytes, 0o644); err != nil {
			return fmt.Errorf("install renewed signing certificate of %s: %w", m, err)
		}
	}
	return nil
}

// checkCertKey checks that c certifies the key in keyPath and names
// subject: a gateway (auth) or a member.
func checkCertKey(c *x509.Certificate, keyPath, subject string, auth bool) error {
	k, err := pki.ReadKey(keyPath)
	if err != nil {
		return fmt.Errorf("next key (run the renewal's prepare step first): %w", err)
	}
	if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(k.Public()) {
		return fmt.Errorf("the certificate is not of the next key %s", filepath.Base(keyPath))
	}
	named, ok := pki.MemberOf(c)
	if auth {
		named, ok = pki.GatewayOf(c)
	}
	if !ok || named != subject {
		return fmt.Errorf("the certificate names %q, not %s", named, subject)
	}
	return nil
}

// finishSwitch completes a key switch that stopped between moving a
// next key into place and its certificate (the key moves first): a next
// certificate whose key is gone is the current one's.
func finishSwitch(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, authNextKeyFile)); errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(filepath.Join(dir, authNextCertFile)); err == nil {
			if err := os.Rename(filepath.Join(dir, authNextCertFile), filepath.Join(dir, authCertFile)); err != nil {
				return fmt.Errorf("finish key switch: %w", err)
			}
		}
	}
	certs, _ := filepath.Glob(filepath.Join(dir, signNextDir, "*.crt"))
	for _, cp := range certs {
		if _, err := os.Stat(strings.TrimSuffix(cp, ".crt") + ".key"); errors.Is(err, os.ErrNotExist) {
			if err := os.Rename(cp, filepath.Join(dir, signDir, filepath.Base(cp))); err != nil {
				return fmt.Errorf("finish key switch: %w", err)
			}
		}
	}
	return nil
}

// KeySwitch says what SwitchKeys changed.
type KeySwitch struct {
	// AuthFP is the authentication certificate in use after the switch;
	// PreviousAuthFP the one before (equal when only signing
	// certificates were renewed).
	AuthFP         string `json:"auth_cert_sha256"`
	PreviousAuthFP string `json:"previous_auth_cert_sha256"`
	// Sign lists the members whose signing certificate was switched.
	Sign []string `json:"sign,omitempty"`
}

// SwitchKeys puts the installed renewed keys and certificates in place
// of the current ones, on disk and in the running gateway, without a
// restart: connections and exchanges that opened before finish with the
// old ones, all that open after use the new ones. A renewed
// authentication certificate is switched to only once the configuration
// the gateway holds lists it as this gateway's (ErrNotListed otherwise),
// so that peers holding it accept it. Replaced certificates are kept
// under old/ and sign/old/ (the message log keeps its own copy of every
// signing certificate its records name); replaced keys are removed.
func (g *Gateway) SwitchKeys() (KeySwitch, error) {
	g.keysMu.Lock()
	defer g.keysMu.Unlock()
	cur := g.keys.Load()
	res := KeySwitch{AuthFP: cur.authFP, PreviousAuthFP: cur.authFP}
	var auth *x509.Certificate
	if b, err := os.ReadFile(filepath.Join(g.dir, authNextCertFile)); err == nil {
		if auth, err = pki.ParseCertPEM(b); err != nil {
			return res, fmt.Errorf("switch keys: %s: %w", authNextCertFile, err)
		}
		if err := checkCertKey(auth, filepath.Join(g.dir, authNextKeyFile), g.cfg.ID.String(), true); err != nil {
			return res, fmt.Errorf("switch keys: %s: %w", authNextCertFile, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return res, fmt.Errorf("switch keys: %w", err)
	}
	signs, _ := filepath.Glob(filepath.Join(g.dir, signNextDir, "*.crt"))
	sort.Strings(signs)
	if auth == nil && len(signs) == 0 {
		return res, fmt.Errorf("switch keys: %w (%s, %s/)", ErrNoRenewal, authNextCertFile, signNextDir)
	}
	st := g.conf.Load()
	if st == nil {
		return res, fmt.Errorf("switch keys: %w: the gateway holds no configuration", ErrNotListed)
	}
	for _, cp := range signs {
		c, err := pki.ReadCert(cp)
		if err != nil {
			return res, fmt.Errorf("switch keys: %w", err)
		}
		m, _ := pki.MemberOf(c)
		if err := checkCertKey(c, strings.TrimSuffix(cp, ".crt")+".key", m, false); err != nil {
			return res, fmt.Errorf("switch keys: %s: %w", cp, err)
		}
		if _, err := c.Verify(x509.VerifyOptions{Roots: st.cfg.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return res, fmt.Errorf("switch keys: %s does not chain to the instance CA: %w", cp, err)
		}
		if st.cfg.IsRevoked(c) {
			return res, fmt.Errorf("switch keys: %s is revoked (serial %x): renew again", cp, c.SerialNumber)
		}
		res.Sign = append(res.Sign, m)
	}
	if auth != nil {
		fp := pki.Fingerprint(auth.Raw)
		if st.cfg.IsRevoked(auth) {
			return res, fmt.Errorf("switch keys: %s is revoked (serial %x): renew again", authNextCertFile, auth.SerialNumber)
		}
		if gw := st.cfg.GatewayByFingerprint(fp); gw == nil || gw.ID != g.cfg.ID {
			return res, fmt.Errorf("switch keys: %w (serial %d has no %s… for %s); refresh the configuration and switch again", ErrNotListed, st.cfg.Serial, fp[:16], g.cfg.ID)
		}
		res.AuthFP = fp
	}
	if err := g.moveRenewed(cur, auth != nil, signs); err != nil {
		return res, fmt.Errorf("switch keys: %w", err)
	}
	kr, err := loadKeys(g.dir, g.cfg.ID, g.batchBusy, g.batchWindow)
	if err != nil {
		return res, fmt.Errorf("switch keys: load the renewed keys: %w", err)
	}
	g.keys.Store(kr)
	if auth != nil {
		// New connections to providers open with the new certificate;
		// those of the old transport finish what they carry, unused after.
		g.retirePeers()
	}
	g.log.Info("keys switched to the renewed certificates", "auth_cert_sha256", res.AuthFP, "previous_auth_cert_sha256", res.PreviousAuthFP, "sign", strings.Join(res.Sign, ","))
	return res, nil
}

// moveRenewed keeps the replaced certificates under old/ and sign/old/
// and moves each next key, then its certificate, into place (see
// finishSwitch for a switch cut short).
func (g *Gateway) moveRenewed(cur *keyring, auth bool, signs []string) error {
	for _, d := range []string{authOldDir, signOldDir} {
		if err := os.MkdirAll(filepath.Join(g.dir, d), 0o700); err != nil {
			return err
		}
	}
	if auth {
		old := cur.auth.Leaf
		if err := pki.WriteCert(filepath.Join(g.dir, authOldDir, fmt.Sprintf("auth-%x.crt", old.SerialNumber)), old.Raw); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(g.dir, authNextKeyFile), filepath.Join(g.dir, authKeyFile)); err != nil {
			return err
		}
		if err := os.Rename(filepath.Join(g.dir, authNextCertFile), filepath.Join(g.dir, authCertFile)); err != nil {
			return err
		}
		os.Remove(filepath.Join(g.dir, authNextCSRFile))
	}
	for _, cp := range signs {
		base := strings.TrimSuffix(filepath.Base(cp), ".crt")
		if c, err := pki.ReadCert(filepath.Join(g.dir, signDir, base+".crt")); err == nil {
			if err := pki.WriteCert(filepath.Join(g.dir, signOldDir, fmt.Sprintf("%s-%x.crt", base, c.SerialNumber)), c.Raw); err != nil {
				return err
			}
		}
		if err := os.Rename(strings.TrimSuffix(cp, ".crt")+".key", filepath.Join(g.dir, signDir, base+".key")); err != nil {
			return err
		}
		if err := os.Rename(cp, filepath.Join(g.dir, signDir, base+".crt")); err != nil {
			return err
		}
		os.Remove(strings.TrimSuffix(cp, ".crt") + ".csr")
	}
	return nil
}

// serveSwitchKeys switches to the installed renewed keys (POST
// /keys/switch on the operations listener): 200 with what changed, 409
// with why nothing did.
func (g *Gateway) serveSwitchKeys(w http.ResponseWriter, r *http.Request) {
	res, err := g.SwitchKeys()
	if err != nil {
		g.log.Warn("keys not switched", "err", err)
		writeJSON(w, http.StatusConflict, map[string]any{"error": err.Error(), "not_listed": errors.Is(err, ErrNotListed)})
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// followConf replaces the transport to provider gateways when the
// domestic configuration st no longer lists an authentication
// certificate the one before listed (a renewal completed, a
// certificate was revoked): connections opened to a provider under its
// old certificate are then never used again, and no answer is refused
// for coming over one. A request checks this before it is sent, so it
// never leaves on a connection older than the configuration it was
// routed by.
func (g *Gateway) followConf(st *confState) {
	g.keysMu.Lock()
	defer g.keysMu.Unlock()
	prev := g.peersConf.Load()
	if prev != nil && st.cfg.Serial <= prev.cfg.Serial {
		return
	}
	g.peersConf.Store(st)
	if prev == nil || !droppedAuthFP(prev.cfg, st.cfg) {
		return
	}
	g.retirePeers()
}

// maxRetired bounds the replaced transports kept for closing: one older
// than that has closed its connections by itself (IdleConnTimeout).
const maxRetired = 8

// retirePeers replaces the transport to provider gateways (keysMu held):
// requests under way finish on the old one, all others go to the new.
func (g *Gateway) retirePeers() {
	old := g.peers.Swap(g.newPeerTransport())
	if len(g.retired) >= maxRetired {
		g.retired = g.retired[1:]
	}
	g.retired = append(g.retired, old)
	old.CloseIdleConnections()
}

// droppedAuthFP reports whether a lists an authentication certificate
// that b does not.
func droppedAuthFP(a, b *conf.Config) bool {
	for i := range a.Gateways {
		for _, fp := range []string{a.Gateways[i].AuthFP, a.Gateways[i].NextAuthFP} {
			if fp != "" && b.GatewayByFingerprint(fp) == nil {
				return true
			}
		}
	}
	return false
}
