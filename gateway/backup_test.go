package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/ops"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/sandbox"
)

// confRecorder records every configuration of instance VN the watched
// gateways hold — serial and document hash, from the gateway's own
// store — and every breach of "one document per serial, never
// backwards".
type confRecorder struct {
	mu       sync.Mutex
	docs     map[uint64]string // serial → document hash, across gateways
	last     map[string]uint64 // gateway and stored/held → last serial
	breaches []string
}

func (r *confRecorder) watch(ctx context.Context, t *testing.T, w *world, ids []string) (stop func()) {
	r.docs, r.last = map[uint64]string{}, map[string]uint64{}
	dbs := map[string]*sql.DB{}
	for _, id := range ids {
		db, err := sql.Open("sqlite", "file:"+filepath.Join(w.manifestGateway(id).DataDir, "state.db")+"?mode=ro&_pragma=busy_timeout(5000)")
		if err != nil {
			t.Fatal(err)
		}
		dbs[id] = db
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			for id, db := range dbs {
				var serial uint64
				var doc []byte
				if err := db.QueryRowContext(ctx, `SELECT serial, doc FROM global_conf WHERE instance = 'VN'`).Scan(&serial, &doc); err != nil {
					continue
				}
				held := w.gw[id].ConfStatus()[0].Serial
				sum := sha256.Sum256(doc)
				r.record(id, serial, hex.EncodeToString(sum[:]), held)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return func() {
		cancel()
		<-done
		for _, db := range dbs {
			db.Close()
		}
	}
}

func (r *confRecorder) record(id string, serial uint64, hash string, held uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if h, ok := r.docs[serial]; ok && h != hash {
		r.breaches = append(r.breaches, fmt.Sprintf("serial %d: two documents (%s… and %s…)", serial, h[:12], hash[:12]))
	}
	r.docs[serial] = hash
	// The gateway stores a document before it holds it: each of the two
	// must only move forward.
	for i, s := range []uint64{serial, held} {
		k := id + []string{" stored", " held"}[i]
		if s < r.last[k] {
			r.breaches = append(r.breaches, fmt.Sprintf("%s went back from serial %d to %d", k, r.last[k], s))
		}
		r.last[k] = max(r.last[k], s)
	}
}

// TestAuthorityRestoreUnderPollingGateways: an authority backup taken
// before a revocation, a suspension and an agreement suspension is
// restored while VN's gateways poll. The plain restore refuses, listing
// the three; with re-application they are in force after the restart,
// the serial continues upward, and no gateway ever holds two documents
// for one serial or goes back.
func TestAuthorityRestoreUnderPollingGateways(t *testing.T) {
	w := startWorld(t, sandbox.Options{ConfRefresh: time.Second})
	ctx := t.Context()
	ma := w.sb.Manifest.Authorities[slices.IndexFunc(w.sb.Manifest.Authorities, func(a sandbox.ManifestAuthority) bool { return a.Instance == "VN" })]
	adir := filepath.Dir(ma.AnchorFile)
	token, err := ops.ReadTokenFile(ma.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	tlsCA, err := pki.ReadCert(ma.TLSCAFile)
	if err != nil {
		t.Fatal(err)
	}
	api := authority.NewClient(ma.URL, token, tlsCA)
	vnAuthority := func() *authority.Authority {
		for _, a := range w.sb.Authorities {
			if a != nil && a.Current().Instance == "VN" {
				return a
			}
		}
		t.Fatal("no VN authority")
		return nil
	}
	var vnGateways []string
	for _, g := range w.sb.Manifest.Gateways {
		if g.Instance == "VN" {
			vnGateways = append(vnGateways, g.ID)
		}
	}
	var rec confRecorder
	stop := rec.watch(ctx, t, w, vnGateways)
	defer stop()
	holdAll := func(serial uint64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for _, id := range vnGateways {
			for w.gw[id].ConfStatus()[0].Serial < serial {
				if time.Now().After(deadline) {
					t.Fatalf("%s holds serial %d, the authority publishes %d", id, w.gw[id].ConfStatus()[0].Serial, serial)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}

	var arch bytes.Buffer
	if _, err := authority.Backup(ctx, adir, &arch, authority.BackupOptions{Passphrase: []byte("s3cret")}); err != nil {
		t.Fatalf("hot backup: %v", err)
	}
	revoked := w.serialOf(t, "VN/GOV/MOF/gw1", "sign/*.crt")
	if err := api.Revoke(ctx, revoked); err != nil {
		t.Fatal(err)
	}
	if err := api.PutSuspension(ctx, policy.Suspension{ID: "stop-personal-out", When: policy.When{Flow: "cross-border", Flags: []string{policy.FlagPersonal}}, Reason: "incident"}); err != nil {
		t.Fatal(err)
	}
	if err := api.SetAgreementStatus(ctx, "VN-SG-SCAM-2026", authority.StatusInput{Status: policy.StatusSuspended, Reason: "audit pending"}); err != nil {
		t.Fatal(err)
	}
	published := vnAuthority().Current().Serial
	holdAll(published)
	// The operator copies the configuration a gateway holds.
	var latest []byte
	db, _ := sql.Open("sqlite", "file:"+filepath.Join(w.manifestGateway(vnGateways[0]).DataDir, "state.db")+"?mode=ro")
	err = db.QueryRowContext(ctx, `SELECT doc FROM global_conf WHERE instance = 'VN'`).Scan(&latest)
	db.Close()
	if err != nil {
		t.Fatal(err)
	}

	if err := w.sb.StopAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	o := authority.RestoreOptions{Passphrase: []byte("s3cret"), LatestConf: latest}
	_, err = authority.Restore(ctx, adir, bytes.NewReader(arch.Bytes()), o)
	if !errors.Is(err, authority.ErrWouldRewind) {
		t.Fatalf("restore: %v, want a refusal", err)
	}
	for _, want := range []string{revoked, "stop-personal-out", "VN-SG-SCAM-2026"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not list %s: %v", want, err)
		}
	}
	o.Reapply = true
	if _, err := authority.Restore(ctx, adir, bytes.NewReader(arch.Bytes()), o); err != nil {
		t.Fatalf("restore --reapply: %v", err)
	}
	if err := w.sb.RestartAuthority("VN"); err != nil {
		t.Fatal(err)
	}
	c := vnAuthority().Current()
	if c.Serial <= published {
		t.Fatalf("restored authority publishes serial %d, not above %d", c.Serial, published)
	}
	holdAll(c.Serial)
	for _, id := range vnGateways {
		if got := w.gw[id].ConfStatus()[0].Serial; got < c.Serial {
			t.Errorf("%s holds %d", id, got)
		}
	}
	if !slices.Contains(c.Revoked, revoked) || c.Policy == nil || !slices.ContainsFunc(c.Policy.Suspensions, func(s policy.Suspension) bool { return s.ID == "stop-personal-out" }) ||
		!slices.ContainsFunc(c.Policy.Agreements, func(a policy.Agreement) bool { return a.ID == "VN-SG-SCAM-2026" && a.Status == policy.StatusSuspended }) {
		t.Errorf("the re-applied changes are not in force in serial %d", c.Serial)
	}
	stop()
	if len(rec.breaches) > 0 {
		t.Errorf("gateways saw two truths:\n%s", strings.Join(rec.breaches, "\n"))
	}
	if len(rec.docs) < 3 {
		t.Errorf("recorded only %d serials", len(rec.docs))
	}
}
