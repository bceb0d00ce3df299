package gateway_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/archive"
	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/msglog"
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

// TestGatewayBackupRestore: a gateway backed up under traffic restores
// to a log that verifies and holds every record acknowledged before the
// backup began; an archive of an older log is refused over a newer one
// (saying so), a newer one restores over an older, and an archive made
// by another gateway's key is refused.
func TestGatewayBackupRestore(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	ctx := t.Context()
	const hcmc = "VN/GOV/HCMC/gw1"
	mg := w.manifestGateway(hcmc)
	var ok atomic.Int64
	call1 := func() {
		resp, _ := w.do(t, call{path: companies + "/0100109106"})
		if resp.StatusCode == 200 {
			ok.Add(1)
		}
	}
	for range 10 {
		call1()
	}
	live := filepath.Join(mg.DataDir, "log")
	head := func(dir string) uint64 {
		h, err := msglog.ReadHead(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		return h.Size
	}
	for deadline := time.Now().Add(10 * time.Second); head(live) < 10; {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint covers the first records")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Traffic while the backup runs.
	trafficCtx, stopTraffic := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for trafficCtx.Err() == nil {
				call1()
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	acked := ok.Load() // answered before the backup began: logged first
	var older bytes.Buffer
	m, err := gateway.Backup(ctx, mg.DataDir, &older, gateway.BackupOptions{ConfigFile: mg.Config, Passphrase: []byte("pw")})
	if err != nil {
		t.Fatalf("backup under traffic: %v", err)
	}
	time.Sleep(200 * time.Millisecond)
	stopTraffic()
	wg.Wait()
	if m.NodeID != hcmc {
		t.Errorf("archive of %q", m.NodeID)
	}
	cert, err := pki.ReadCert(filepath.Join(mg.DataDir, "auth.crt"))
	if err != nil {
		t.Fatal(err)
	}

	// Restored where the directory was lost, with the gateway's
	// certificate to check the archive against.
	lost := filepath.Join(t.TempDir(), "gw")
	if _, err := gateway.Restore(ctx, lost, bytes.NewReader(older.Bytes()), gateway.RestoreOptions{Passphrase: []byte("wrong"), AuthCert: cert}); !errors.Is(err, archive.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	if _, err := gateway.Restore(ctx, lost, bytes.NewReader(older.Bytes()), gateway.RestoreOptions{Passphrase: []byte("pw")}); !errors.Is(err, archive.ErrUntrusted) {
		t.Fatalf("no key to check against: %v", err)
	}
	cfgOut := filepath.Join(t.TempDir(), "gateway.json")
	if _, err := gateway.Restore(ctx, lost, bytes.NewReader(older.Bytes()), gateway.RestoreOptions{Passphrase: []byte("pw"), AuthCert: cert, ConfigOut: cfgOut}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if b, _ := os.ReadFile(cfgOut); len(b) == 0 {
		t.Error("gateway.json not restored")
	}
	rep, err := msglog.Verify(ctx, filepath.Join(lost, "log"), "", nil)
	if err != nil {
		t.Fatalf("the restored log does not verify: %v", err)
	}
	if held := rep.Records + rep.Pending + rep.Unindexed; held < uint64(acked) {
		t.Errorf("restored log holds %d records (%+v), %d were acknowledged before the backup", held, rep, acked)
	}

	// The log in place has grown: the older archive is refused over it.
	for range 10 {
		call1()
	}
	deadline := time.Now().Add(10 * time.Second)
	restoredSize := head(filepath.Join(lost, "log"))
	for head(live) <= restoredSize {
		if time.Now().After(deadline) {
			t.Fatal("the live log does not grow")
		}
		time.Sleep(50 * time.Millisecond)
	}
	var newer bytes.Buffer
	if _, err := gateway.Backup(ctx, mg.DataDir, &newer, gateway.BackupOptions{}); err != nil {
		t.Fatal(err)
	}
	newDir := filepath.Join(t.TempDir(), "gw2")
	if _, err := gateway.Restore(ctx, newDir, bytes.NewReader(newer.Bytes()), gateway.RestoreOptions{AuthCert: cert}); err != nil {
		t.Fatal(err)
	}
	before := hashTree(t, newDir)
	plan, err := gateway.Restore(ctx, newDir, bytes.NewReader(older.Bytes()), gateway.RestoreOptions{Passphrase: []byte("pw")})
	if !errors.Is(err, gateway.ErrOlderLog) || plan.LogInPlace <= plan.LogRestored {
		t.Fatalf("older log over a newer one: %v (plan %+v)", err, plan)
	}
	if hashTree(t, newDir) != before {
		t.Fatal("a refused restore changed the directory")
	}
	dry, err := gateway.Restore(ctx, newDir, bytes.NewReader(older.Bytes()), gateway.RestoreOptions{Passphrase: []byte("pw"), DryRun: true})
	if err != nil || dry.LogProblem == "" || hashTree(t, newDir) != before {
		t.Fatalf("dry run: %v, log problem %q", err, dry.LogProblem)
	}
	// The newer archive over the older restore extends it.
	if _, err := gateway.Restore(ctx, lost, bytes.NewReader(newer.Bytes()), gateway.RestoreOptions{}); err != nil {
		t.Fatalf("newer over older: %v", err)
	}
	if _, err := msglog.Verify(ctx, filepath.Join(lost, "log"), "", nil); err != nil {
		t.Fatalf("log after the second restore: %v", err)
	}
	// MOF's running gateway's directory is refused as in use; a copy of
	// its key, as a stopped MOF's directory would hold, refuses HCMC's
	// archive as another gateway's.
	mof := w.manifestGateway("VN/GOV/MOF/gw1")
	if _, err := gateway.Restore(ctx, mof.DataDir, bytes.NewReader(newer.Bytes()), gateway.RestoreOptions{DryRun: true}); err == nil || !strings.Contains(err.Error(), "in use by a running gateway") {
		t.Fatalf("restore into a running gateway's directory: %v", err)
	}
	stopped := filepath.Join(t.TempDir(), "mof")
	key, err := os.ReadFile(filepath.Join(mof.DataDir, "auth.key"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(stopped, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stopped, "auth.key"), key, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.Restore(ctx, stopped, bytes.NewReader(newer.Bytes()), gateway.RestoreOptions{DryRun: true}); !errors.Is(err, archive.ErrUntrusted) {
		t.Fatalf("another gateway's archive: %v", err)
	}
}

// hashTree hashes every path, mode and content under dir.
func hashTree(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s %v\n", p, fi.Mode())
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
