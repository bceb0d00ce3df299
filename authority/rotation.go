package authority

import (
	"context"
	"crypto"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
)

// Rotation of the configuration-signing key (docs/design/rotation.md):
// prepare creates the next key, which the configuration then announces
// (conf.Config.NextKeys) and the anchor file lists; activate signs with
// it and announces the old one as still accepted; retire drops the old
// one from the configuration and the anchor.

// Files of a rotation in the data directory.
const (
	confSignNextKey = "conf-sign-next.key"
	confSignPrevKey = "conf-sign-prev.key"
	rotationFile    = "rotation.json"
)

// rotationState is when each step of a rotation in progress was taken,
// kept in rotationFile beside the keys it is about.
type rotationState struct {
	ConfKeyPreparedAt  time.Time `json:"conf_key_prepared_at,omitzero"`
	ConfKeyActivatedAt time.Time `json:"conf_key_activated_at,omitzero"`
	CAPreparedAt       time.Time `json:"ca_prepared_at,omitzero"`
	CAActivatedAt      time.Time `json:"ca_activated_at,omitzero"`
}

// confKey is one configuration-signing key and its anchor entry.
type confKey struct {
	key   crypto.Signer
	entry conf.AnchorKey
}

func (a *Authority) newConfKey(key crypto.Signer) (*confKey, error) {
	ak, err := conf.NewAnchorKey("", key.Public())
	if err != nil {
		return nil, err
	}
	ak.KeyID = a.cfg.Instance + "-" + pki.Fingerprint([]byte(ak.PublicKey))[:16]
	return &confKey{key: key, entry: ak}, nil
}

// loadConfKeys reads the configuration-signing key (creating it on first
// start) and those of a rotation in progress. A previous key equal to
// the current one is what an activation interrupted between its two
// file steps leaves; it is removed.
func (a *Authority) loadConfKeys() error {
	key, err := pki.LoadOrCreateKey(filepath.Join(a.dir, confSignKey), pki.Ed25519)
	if err != nil {
		return err
	}
	if err := a.useConfKey(key); err != nil {
		return err
	}
	read := func(name string) (*confKey, error) {
		k, err := pki.ReadKey(filepath.Join(a.dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return a.newConfKey(k)
	}
	if a.nextConfKey, err = read(confSignNextKey); err != nil {
		return err
	}
	if a.prevConfKey, err = read(confSignPrevKey); err != nil {
		return err
	}
	if a.prevConfKey != nil && a.prevConfKey.entry.KeyID == a.kid {
		a.prevConfKey = nil
		if err := os.Remove(filepath.Join(a.dir, confSignPrevKey)); err != nil {
			return fmt.Errorf("finish key activation: %w", err)
		}
	}
	err = cfg.Load(filepath.Join(a.dir, rotationFile), &a.rotation)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("read rotation state: %w", err)
	}
	return nil
}

// fillRotationTimes dates a step whose time was lost (rotation.json
// missing beside its keys) to now: the waiting time then runs from this
// start, never shorter than it should.
func (a *Authority) fillRotationTimes() error {
	now, r := time.Now().UTC(), &a.rotation
	was := *r
	s := a.cas.Load()
	for _, f := range []struct {
		inStep bool
		at     *time.Time
	}{
		{a.nextConfKey != nil, &r.ConfKeyPreparedAt},
		{a.prevConfKey != nil, &r.ConfKeyActivatedAt},
		{s.next != nil, &r.CAPreparedAt},
		{s.prev != nil, &r.CAActivatedAt},
	} {
		if f.inStep && f.at.IsZero() {
			*f.at = now
		}
	}
	if *r == was {
		return nil
	}
	a.log.Warn("rotation step times missing; the waiting times run from now", "file", rotationFile)
	return a.saveRotation()
}

// useConfKey makes key the one configurations are signed with.
func (a *Authority) useConfKey(key crypto.Signer) error {
	k, err := a.newConfKey(key)
	if err != nil {
		return err
	}
	s, err := pki.NewSigner(key, k.entry.KeyID)
	if err != nil {
		return err
	}
	a.curConfKey, a.signer, a.kid = k, s, k.entry.KeyID
	return nil
}

// anchorKeys are the keys the anchor file lists: the signing key, then
// the one being introduced or retired.
func (a *Authority) anchorKeys() []conf.AnchorKey {
	return append([]conf.AnchorKey{a.curConfKey.entry}, a.announcedConfKeys()...)
}

// announcedConfKeys are the keys the configuration announces besides
// the one that signs it (conf.Config.NextKeys).
func (a *Authority) announcedConfKeys() []conf.AnchorKey {
	var out []conf.AnchorKey
	for _, k := range []*confKey{a.nextConfKey, a.prevConfKey} {
		if k != nil {
			out = append(out, k.entry)
		}
	}
	return out
}

func (a *Authority) saveRotation() error {
	path := filepath.Join(a.dir, rotationFile)
	if a.rotation == (rotationState{}) {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("write rotation state: %w", err)
		}
		return nil
	}
	tmp := path + ".tmp"
	if err := cfg.Write(tmp, a.rotation, 0o600); err != nil {
		return fmt.Errorf("write rotation state: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write rotation state: %w", err)
	}
	return nil
}

// RotateInput are the options of a rotation step.
type RotateInput struct {
	// Force takes the step before its waiting time has passed, or (CA
	// retirement) while certificates still chain to the old CA.
	Force bool `json:"force,omitempty"`
}

// ConfKeyStatus is where a configuration-signing key rotation stands.
type ConfKeyStatus struct {
	// Current signs the configuration; Next is prepared and announced;
	// Previous signed before the last activation and is still
	// announced as accepted.
	Current  string `json:"current"`
	Next     string `json:"next,omitempty"`
	Previous string `json:"previous,omitempty"`
	// PreparedAt and ActivatedAt are when the steps were taken;
	// ActivateAfter and RetireAfter when the next step is allowed
	// without force.
	PreparedAt    *time.Time `json:"prepared_at,omitempty"`
	ActivateAfter *time.Time `json:"activate_after,omitempty"`
	ActivatedAt   *time.Time `json:"activated_at,omitempty"`
	RetireAfter   *time.Time `json:"retire_after,omitempty"`
}

// RotationStatus is where the rotations stand.
type RotationStatus struct {
	ConfKey ConfKeyStatus `json:"conf_key"`
	CA      CAStatus      `json:"ca"`
}

// activateWait is how long a next key must have been announced before it
// signs: one configuration validity, after which every gateway that
// still serves holds a configuration announcing it. The longer of the
// validity at start and the one in force now: a reload that shortens it
// leaves configurations of the longer one out there.
func (a *Authority) activateWait() time.Duration {
	return max(a.cfg.ConfValidity.D(), a.config().ConfValidity.D())
}

// retireWait is how long the old key stays announced after activation:
// twice the configuration validity (docs/design/rotation.md).
func (a *Authority) retireWait() time.Duration { return 2 * a.activateWait() }

// Rotation reports where the rotations stand.
func (a *Authority) Rotation() RotationStatus {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	ck := ConfKeyStatus{Current: a.kid}
	at := func(t time.Time) *time.Time { return &t }
	if a.nextConfKey != nil {
		ck.Next = a.nextConfKey.entry.KeyID
		if !a.rotation.ConfKeyPreparedAt.IsZero() {
			ck.PreparedAt = at(a.rotation.ConfKeyPreparedAt)
			ck.ActivateAfter = at(a.rotation.ConfKeyPreparedAt.Add(a.activateWait()))
		}
	}
	if a.prevConfKey != nil {
		ck.Previous = a.prevConfKey.entry.KeyID
		if !a.rotation.ConfKeyActivatedAt.IsZero() {
			ck.ActivatedAt = at(a.rotation.ConfKeyActivatedAt)
			ck.RetireAfter = at(a.rotation.ConfKeyActivatedAt.Add(a.retireWait()))
		}
	}
	return RotationStatus{ConfKey: ck, CA: a.caStatus()}
}

// rotate runs one rotation step: step changes the keys held in memory
// and on disk (under the write lock) and returns how to undo it; the
// configuration is then published and the step audited, all or nothing
// as far as gateways see. A failed publication undoes the step.
func (a *Authority) rotate(ctx context.Context, op, action string, step func() (detail string, undo func(), err error)) error {
	a.rotMu.Lock()
	defer a.rotMu.Unlock()
	var undo func()
	var detail string
	_, err := a.commit(ctx, "", "", "", func(tx *sql.Tx) error {
		var err error
		if detail, undo, err = step(); err != nil {
			return err
		}
		if err := a.writeAnchor(); err != nil {
			return err
		}
		return a.audit(ctx, tx, op, action, detail)
	})
	if err != nil && undo != nil {
		a.pubMu.Lock()
		undo()
		if werr := a.writeAnchor(); werr != nil {
			a.log.Error("restore anchor file after a failed rotation step", "err", werr)
		}
		a.pubMu.Unlock()
	}
	if errors.Is(err, errConflict) {
		return err // the API renders it as the operator's answer
	}
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	a.log.Info(action, "operator", op, "detail", detail)
	return nil
}

// PrepareConfKey creates the next configuration-signing key (mode 0600,
// in the data directory); from now on the configuration announces it and
// the anchor file lists it.
func (a *Authority) PrepareConfKey(ctx context.Context, op string) error {
	return a.rotate(ctx, op, "prepare configuration-signing key", func() (string, func(), error) {
		if a.nextConfKey != nil {
			return "", nil, fmt.Errorf("%w: key %s is already prepared; activate it first", errConflict, a.nextConfKey.entry.KeyID)
		}
		if a.prevConfKey != nil {
			return "", nil, fmt.Errorf("%w: key %s is still being retired; retire it first", errConflict, a.prevConfKey.entry.KeyID)
		}
		key, err := pki.GenerateKey(pki.Ed25519)
		if err != nil {
			return "", nil, err
		}
		k, err := a.newConfKey(key)
		if err != nil {
			return "", nil, err
		}
		path := filepath.Join(a.dir, confSignNextKey)
		if err := pki.WriteKey(path, key); err != nil {
			return "", nil, err
		}
		was := a.rotation
		a.nextConfKey = k
		a.rotation.ConfKeyPreparedAt, a.rotation.ConfKeyActivatedAt = time.Now().UTC(), time.Time{}
		undo := func() {
			a.nextConfKey, a.rotation = nil, was
			os.Remove(path)
			a.saveRotation()
		}
		if err := a.saveRotation(); err != nil {
			undo()
			return "", nil, err
		}
		return k.entry.KeyID, undo, nil
	})
}

// ActivateConfKey signs the configuration with the prepared key from now
// on; the old key stays announced as accepted until RetireConfKey. It
// refuses before the prepared key has been announced for one
// configuration validity, unless forced.
func (a *Authority) ActivateConfKey(ctx context.Context, op string, in RotateInput) error {
	return a.rotate(ctx, op, "activate configuration-signing key", func() (string, func(), error) {
		next := a.nextConfKey
		if next == nil {
			return "", nil, fmt.Errorf("%w: no configuration-signing key is prepared; prepare one first", errConflict)
		}
		if ready := a.rotation.ConfKeyPreparedAt.Add(a.activateWait()); !in.Force && time.Now().Before(ready) {
			return "", nil, fmt.Errorf("%w: key %s has been announced since %s; a gateway may still hold a configuration from before that, which does not announce it, until %s (one configuration validity); activating now would make such gateways refuse every new configuration (force to do it anyway)",
				errConflict, next.entry.KeyID, a.rotation.ConfKeyPreparedAt.Format(time.RFC3339), ready.Format(time.RFC3339))
		}
		cur := a.curConfKey
		curPath, nextPath, prevPath := filepath.Join(a.dir, confSignKey), filepath.Join(a.dir, confSignNextKey), filepath.Join(a.dir, confSignPrevKey)
		// Two steps, each atomic, a restart finishing or ignoring an
		// interrupted one (loadConfKeys): the current key also becomes
		// the previous, then the next replaces the current.
		os.Remove(prevPath)
		if err := os.Link(curPath, prevPath); err != nil {
			return "", nil, fmt.Errorf("keep the old key: %w", err)
		}
		if err := os.Rename(nextPath, curPath); err != nil {
			os.Remove(prevPath)
			return "", nil, fmt.Errorf("install the new key: %w", err)
		}
		was := a.rotation
		if err := a.useConfKey(next.key); err != nil {
			return "", nil, err
		}
		a.nextConfKey, a.prevConfKey = nil, cur
		a.rotation.ConfKeyActivatedAt = time.Now().UTC()
		undo := func() {
			os.Rename(curPath, nextPath)
			os.Rename(prevPath, curPath)
			a.useConfKey(cur.key)
			a.nextConfKey, a.prevConfKey, a.rotation = next, nil, was
			a.saveRotation()
		}
		if err := a.saveRotation(); err != nil {
			undo()
			return "", nil, err
		}
		return next.entry.KeyID + " signs; " + cur.entry.KeyID + " still accepted", undo, nil
	})
}

// RetireConfKey stops announcing the key used before the last
// activation: gateways stop trusting it with the configuration that no
// longer lists it, and the anchor file drops it. It refuses before twice
// the configuration validity has passed since activation, unless forced.
func (a *Authority) RetireConfKey(ctx context.Context, op string, in RotateInput) error {
	var retired *confKey
	err := a.rotate(ctx, op, "retire configuration-signing key", func() (string, func(), error) {
		prev := a.prevConfKey
		if prev == nil {
			return "", nil, fmt.Errorf("%w: no configuration-signing key is being retired; prepare and activate a new one first", errConflict)
		}
		if ready := a.rotation.ConfKeyActivatedAt.Add(a.retireWait()); !in.Force && time.Now().Before(ready) {
			return "", nil, fmt.Errorf("%w: key %s stopped signing at %s; it stays accepted until %s (twice the configuration validity), so that every gateway, here and at federated instances, has moved to configurations signed by %s before it goes (force to retire it anyway)",
				errConflict, prev.entry.KeyID, a.rotation.ConfKeyActivatedAt.Format(time.RFC3339), ready.Format(time.RFC3339), a.kid)
		}
		was := a.rotation
		a.prevConfKey = nil
		a.rotation.ConfKeyActivatedAt = time.Time{}
		retired = prev
		return prev.entry.KeyID, func() { a.prevConfKey, a.rotation, retired = prev, was, nil }, nil
	})
	if err != nil {
		return err
	}
	// Published without it: its private key goes.
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	if err := os.Remove(filepath.Join(a.dir, confSignPrevKey)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the retired key %s: %w", retired.entry.KeyID, err)
	}
	return a.saveRotation()
}

// Rotation of the instance CA: prepare creates the next CA, which
// ca_certs then lists; activate makes it issue, the old one staying
// listed; retire drops the old one once no certificate that matters
// chains to it.

// Files of the instance CA's rotation in the data directory (the current
// CA is ca.key, ca.crt).
const (
	caNextKey, caNextCert = "ca-next.key", "ca-next.crt"
	caPrevKey, caPrevCert = "ca-prev.key", "ca-prev.crt"
	caKey, caCert         = "ca.key", "ca.crt"
)

// caSet is the instance CAs: cur issues; next is prepared; prev issued
// before the last activation and is listed until retired.
type caSet struct{ cur, next, prev *pki.CA }

// listed returns the CAs the configuration lists, the issuing one first.
func (s *caSet) listed() []*pki.CA {
	out := []*pki.CA{s.cur}
	for _, ca := range []*pki.CA{s.next, s.prev} {
		if ca != nil {
			out = append(out, ca)
		}
	}
	return out
}

// caID names a CA in URLs: the first 16 hex digits of the SHA-256 of its
// certificate.
func caID(ca *pki.CA) string { return pki.Fingerprint(ca.Cert.Raw)[:16] }

// issuingCA returns the CA that issues certificates now.
func (a *Authority) issuingCA() *pki.CA { return a.cas.Load().cur }

// loadCAs reads the instance CA (creating it on first start) and those of
// a rotation in progress, finishing an activation a stop interrupted:
// the certificate is renamed before the key, so a next key without its
// certificate has its certificate in place already.
func (a *Authority) loadCAs() error {
	path := func(n string) string { return filepath.Join(a.dir, n) }
	_, kerr := os.Stat(path(caNextKey))
	_, cerr := os.Stat(path(caNextCert))
	if kerr == nil && errors.Is(cerr, os.ErrNotExist) {
		if err := os.Rename(path(caNextKey), path(caKey)); err != nil {
			return fmt.Errorf("finish CA activation: %w", err)
		}
	}
	cur, err := pki.LoadOrCreateCAFiles(path(caKey), path(caCert), a.cfg.Instance+" Sampan CA")
	if err != nil {
		return err
	}
	set := &caSet{cur: cur}
	read := func(keyName, certName string) (*pki.CA, error) {
		key, err := pki.ReadKey(path(keyName))
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		cert, err := pki.ReadCert(path(certName))
		if err != nil {
			return nil, err
		}
		return &pki.CA{Cert: cert, Key: key}, nil
	}
	if set.next, err = read(caNextKey, caNextCert); err != nil {
		return err
	}
	if set.prev, err = read(caPrevKey, caPrevCert); err != nil {
		return err
	}
	if set.prev != nil && set.prev.Cert.Equal(cur.Cert) {
		set.prev = nil
		if err := errors.Join(os.Remove(path(caPrevKey)), os.Remove(path(caPrevCert))); err != nil {
			return fmt.Errorf("finish CA activation: %w", err)
		}
	}
	for _, ca := range set.listed() {
		a.setCAURLs(ca)
	}
	a.cas.Store(set)
	return nil
}

// setCAURLs puts the revocation URLs into what ca issues: its own CRL
// and the OCSP responder.
func (a *Authority) setCAURLs(ca *pki.CA) {
	base := strings.TrimSuffix(a.cfg.PublicURL, "/")
	ca.CRLURL, ca.OCSPURL = base+"/crl/"+caID(ca), base+"/ocsp"
}

// CAStatus is where an instance CA rotation stands; CAs are named by
// caID and their subject.
type CAStatus struct {
	Current       string     `json:"current"`
	Next          string     `json:"next,omitempty"`
	Previous      string     `json:"previous,omitempty"`
	PreparedAt    *time.Time `json:"prepared_at,omitempty"`
	ActivateAfter *time.Time `json:"activate_after,omitempty"`
	ActivatedAt   *time.Time `json:"activated_at,omitempty"`
}

func caName(ca *pki.CA) string { return caID(ca) + " (" + ca.Cert.Subject.CommonName + ")" }

func (a *Authority) caStatus() CAStatus {
	s := a.cas.Load()
	st := CAStatus{Current: caName(s.cur)}
	at := func(t time.Time) *time.Time { return &t }
	if s.next != nil {
		st.Next = caName(s.next)
		if !a.rotation.CAPreparedAt.IsZero() {
			st.PreparedAt = at(a.rotation.CAPreparedAt)
			st.ActivateAfter = at(a.rotation.CAPreparedAt.Add(a.activateWait()))
		}
	}
	if s.prev != nil {
		st.Previous = caName(s.prev)
		if !a.rotation.CAActivatedAt.IsZero() {
			st.ActivatedAt = at(a.rotation.CAActivatedAt)
		}
	}
	return st
}

// PrepareCA creates the next instance CA; from now on the configuration
// lists it in ca_certs, so gateways accept its certificates before it
// issues any.
func (a *Authority) PrepareCA(ctx context.Context, op string) error {
	return a.rotate(ctx, op, "prepare instance CA", func() (string, func(), error) {
		s := a.cas.Load()
		if s.next != nil {
			return "", nil, fmt.Errorf("%w: CA %s is already prepared; activate it first", errConflict, caName(s.next))
		}
		if s.prev != nil {
			return "", nil, fmt.Errorf("%w: CA %s is still being retired; retire it first", errConflict, caName(s.prev))
		}
		ca, err := pki.NewCA(a.cfg.Instance + " Sampan CA " + time.Now().UTC().Format("2006-01-02"))
		if err != nil {
			return "", nil, err
		}
		keyPath, certPath := filepath.Join(a.dir, caNextKey), filepath.Join(a.dir, caNextCert)
		if err := pki.WriteKey(keyPath, ca.Key); err != nil {
			return "", nil, err
		}
		if err := pki.WriteCert(certPath, ca.Cert.Raw); err != nil {
			os.Remove(keyPath)
			return "", nil, err
		}
		a.setCAURLs(ca)
		was := a.rotation
		a.cas.Store(&caSet{cur: s.cur, next: ca})
		a.rotation.CAPreparedAt, a.rotation.CAActivatedAt = time.Now().UTC(), time.Time{}
		undo := func() {
			a.cas.Store(s)
			a.rotation = was
			os.Remove(keyPath)
			os.Remove(certPath)
			a.saveRotation()
		}
		if err := a.saveRotation(); err != nil {
			undo()
			return "", nil, err
		}
		return caName(ca), undo, nil
	})
}

// ActivateCA makes the prepared CA issue every new certificate; the old
// one stays listed, its certificates valid, until RetireCA. It refuses
// before the prepared CA has been listed for one configuration validity,
// unless forced.
func (a *Authority) ActivateCA(ctx context.Context, op string, in RotateInput) error {
	return a.rotate(ctx, op, "activate instance CA", func() (string, func(), error) {
		s := a.cas.Load()
		if s.next == nil {
			return "", nil, fmt.Errorf("%w: no CA is prepared; prepare one first", errConflict)
		}
		if ready := a.rotation.CAPreparedAt.Add(a.activateWait()); !in.Force && time.Now().Before(ready) {
			return "", nil, fmt.Errorf("%w: CA %s has been listed since %s; a gateway may still hold a configuration from before that, which does not list it, and refuse its certificates until %s (one configuration validity) (force to activate it anyway)",
				errConflict, caName(s.next), a.rotation.CAPreparedAt.Format(time.RFC3339), ready.Format(time.RFC3339))
		}
		path := func(n string) string { return filepath.Join(a.dir, n) }
		for _, n := range [][2]string{{caKey, caPrevKey}, {caCert, caPrevCert}} {
			os.Remove(path(n[1]))
			if err := os.Link(path(n[0]), path(n[1])); err != nil {
				os.Remove(path(caPrevKey))
				return "", nil, fmt.Errorf("keep the old CA: %w", err)
			}
		}
		// The certificate first: see loadCAs.
		if err := os.Rename(path(caNextCert), path(caCert)); err != nil {
			os.Remove(path(caPrevKey))
			os.Remove(path(caPrevCert))
			return "", nil, fmt.Errorf("install the new CA: %w", err)
		}
		if err := os.Rename(path(caNextKey), path(caKey)); err != nil {
			return "", nil, fmt.Errorf("install the new CA (restart the authority to finish): %w", err)
		}
		was := a.rotation
		a.cas.Store(&caSet{cur: s.next, prev: s.cur})
		a.rotation.CAActivatedAt = time.Now().UTC()
		undo := func() {
			os.Rename(path(caKey), path(caNextKey))
			os.Rename(path(caCert), path(caNextCert))
			os.Rename(path(caPrevKey), path(caKey))
			os.Rename(path(caPrevCert), path(caCert))
			a.cas.Store(s)
			a.rotation = was
			a.saveRotation()
		}
		if err := a.saveRotation(); err != nil {
			undo()
			return "", nil, err
		}
		return caName(s.next) + " issues; " + caName(s.cur) + " still listed", undo, nil
	})
}

// RetireCA stops listing the CA that issued before the last activation:
// gateways refuse its certificates from the next configuration on. It
// refuses, naming them, while unrevoked and unexpired certificates that
// still matter chain to it — the authentication certificates of
// registered gateways and member signing certificates — unless forced.
func (a *Authority) RetireCA(ctx context.Context, op string, in RotateInput) error {
	var retired *pki.CA
	err := a.rotate(ctx, op, "retire instance CA", func() (string, func(), error) {
		s := a.cas.Load()
		if s.prev == nil {
			return "", nil, fmt.Errorf("%w: no CA is being retired; prepare and activate a new one first", errConflict)
		}
		if !in.Force {
			left, err := a.chainingTo(ctx, s.prev)
			if err != nil {
				return "", nil, err
			}
			if len(left) > 0 {
				return "", nil, fmt.Errorf("%w: %d certificates in use still chain to CA %s; re-issue them under the new CA (or revoke them) first, or force: %s",
					errConflict, len(left), caName(s.prev), strings.Join(left, "; "))
			}
		}
		was := a.rotation
		a.cas.Store(&caSet{cur: s.cur})
		a.rotation.CAActivatedAt, a.rotation.CAPreparedAt = time.Time{}, time.Time{}
		retired = s.prev
		return caName(s.prev), func() { a.cas.Store(s); a.rotation, retired = was, nil }, nil
	})
	if err != nil {
		return err
	}
	// Published without it: its key goes, its certificate is kept for
	// checking old evidence.
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	keep := filepath.Join(a.dir, "ca-retired-"+caID(retired)+".crt")
	if err := os.Rename(filepath.Join(a.dir, caPrevCert), keep); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("keep the retired CA certificate: %w", err)
	}
	if err := os.Remove(filepath.Join(a.dir, caPrevKey)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the retired CA key: %w", err)
	}
	return a.saveRotation()
}

// chainingTo lists the unrevoked, unexpired certificates that still
// matter and were issued by ca: authentication certificates registered
// for a gateway, and signing certificates.
func (a *Authority) chainingTo(ctx context.Context, ca *pki.CA) ([]string, error) {
	rows, err := a.db.QueryContext(ctx, `SELECT c.serial, c.profile, c.subject, c.not_after, c.pem FROM certificates c
		WHERE c.revoked_at IS NULL AND (c.profile = 'sign' OR c.fingerprint IN (SELECT auth_fp FROM gateways))
		ORDER BY c.subject, c.serial`)
	if err != nil {
		return nil, fmt.Errorf("list certificates: %w", err)
	}
	defer rows.Close()
	var out []string
	now := time.Now()
	for rows.Next() {
		var serial, profile, subject, notAfter, pemText string
		if err := rows.Scan(&serial, &profile, &subject, &notAfter, &pemText); err != nil {
			return nil, fmt.Errorf("list certificates: %w", err)
		}
		cert, err := pki.ParseCertPEM([]byte(pemText))
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", serial, err)
		}
		if !now.Before(cert.NotAfter) || cert.CheckSignatureFrom(ca.Cert) != nil {
			continue
		}
		out = append(out, fmt.Sprintf("%s %s serial %s until %s", profile, subject, serial, notAfter))
	}
	return out, rows.Err()
}
