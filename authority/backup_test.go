package authority

import (
	"bytes"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/archive"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
)

// hashDir returns one hash over every file's path, mode and content
// under dir: equal before and after means nothing changed.
func hashDir(t *testing.T, dir string) string {
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
		h.Write([]byte(p + "\x00" + fi.Mode().String() + "\x00"))
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

// backupWorld is an authority with a gateway certificate, a data class
// and an active agreement: what a backup is taken of.
func backupWorld(t *testing.T, dir string) (*testAuthority, *Client, pkiFiles) {
	t.Helper()
	ta := startAuthority(t, dir, "")
	api := ta.client(adminToken)
	ctx := t.Context()
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF"}
	mps := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS"}
	for _, m := range []ident.ClientID{mof, mps} {
		if err := api.AddMember(ctx, MemberInput{ID: m, Name: m.Code}); err != nil {
			t.Fatal(err)
		}
	}
	if err := api.AddSubsystem(ctx, SubsystemInput{ID: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MPS", Subsystem: "cybercrime"}}); err != nil {
		t.Fatal(err)
	}
	scam, _ := ident.ParseService("VN/GOV/MPS/cybercrime/scam-reports")
	if err := api.PutServiceClass(ctx, policy.ServiceClass{ID: scam, Class: policy.ClassConfidential, Flags: []string{policy.FlagPersonal}}); err != nil {
		t.Fatal(err)
	}
	ag := policy.Agreement{ID: "VN-SG-SCAM-1", Consumers: []string{"SG/GOV/SPF/anti-scam"}, Services: []ident.ServiceID{scam},
		Purposes: []string{"scam-investigation"}, Destinations: []string{"SG"}, ValidFrom: time.Now().Add(-time.Hour).UTC(),
		RetentionDays: 90, QuotaPerDay: 1000, References: []policy.Reference{{Kind: policy.RefTransferAssessment, Ref: "MPS-TIA-2026-014"}}, Status: policy.StatusActive}
	if err := api.PutAgreement(ctx, ag); err != nil {
		t.Fatal(err)
	}
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	if err := api.PutGateway(ctx, GatewayInput{ID: gid, Address: "127.0.0.1:8443"}); err != nil {
		t.Fatal(err)
	}
	return ta, api, issueGateway(t, ta, api)
}

func backupTo(t *testing.T, dir string, pass []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := Backup(t.Context(), dir, &buf, BackupOptions{Passphrase: pass, Version: "test"}); err != nil {
		t.Fatalf("backup: %v", err)
	}
	return buf.Bytes()
}

// reduceTrust revokes the certificate, suspends a class of flows and
// suspends the agreement: three changes a restore must not undo.
func reduceTrust(t *testing.T, api *Client, f pkiFiles) {
	t.Helper()
	ctx := t.Context()
	if err := api.Revoke(ctx, f.serial); err != nil {
		t.Fatal(err)
	}
	if err := api.PutSuspension(ctx, policy.Suspension{ID: "stop-personal-to-SG", When: policy.When{Flow: "cross-border", Flags: []string{policy.FlagPersonal}}, Reason: "breach under investigation"}); err != nil {
		t.Fatal(err)
	}
	if err := api.SetAgreementStatus(ctx, "VN-SG-SCAM-1", StatusInput{Status: policy.StatusSuspended, Reason: "audit pending"}); err != nil {
		t.Fatal(err)
	}
}

func kinds(cs []TrustChange) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Kind+" "+c.ID)
	}
	slices.Sort(out)
	return out
}

// TestRestoreNeverRewindsTrust: a backup taken before a revocation, a
// suspension and an agreement suspension cannot be restored over them
// (listed with who and when from the audit log), a dry run changes
// nothing, --reapply puts them back in force, and the serial continues
// above every one published.
func TestRestoreNeverRewindsTrust(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, f := backupWorld(t, dir)
	arch := backupTo(t, dir, nil)
	reduceTrust(t, api, f)
	published := ta.a.Current().Serial
	var revokedFirst string
	if err := ta.a.db.QueryRowContext(t.Context(), `SELECT revoked_at FROM certificates WHERE serial = ?`, f.serial).Scan(&revokedFirst); err != nil {
		t.Fatal(err)
	}
	// A restore while the authority runs is refused, changing nothing.
	if _, err := Restore(t.Context(), dir, bytes.NewReader(arch), RestoreOptions{DryRun: true}); err == nil || !strings.Contains(err.Error(), "in use by a running authority") {
		t.Fatalf("restore while the authority runs: %v", err)
	}
	// A later refused attempt at the same change is not who made it.
	if _, err := ta.a.db.ExecContext(t.Context(), `INSERT INTO audit_log (at, operator, action, detail, outcome) VALUES (?, 'mallory', 'revoke certificate', ?, 'refused: role auditor')`, now(), f.serial); err != nil {
		t.Fatal(err)
	}
	ta.stop()

	before := hashDir(t, dir)
	ctx := t.Context()
	want := []string{"agreement VN-SG-SCAM-1", "revocation " + f.serial, "suspension stop-personal-to-SG"}

	plan, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{DryRun: true})
	if err != nil {
		t.Fatalf("dry run: %v", err)
	}
	if got := kinds(plan.Undone); !slices.Equal(got, want) || plan.Action != "refused" {
		t.Errorf("dry run lists %v (%s), want %v refused", got, plan.Action, want)
	}
	for _, c := range plan.Undone {
		if c.Who != "alice" || c.When == "" {
			t.Errorf("%s: who %q when %q, want alice and a time from the audit log", c.Kind, c.Who, c.When)
		}
	}
	if plan.Before["revoked"] != 1 || plan.After["revoked"] != 0 || !slices.Contains(plan.Replaced, registryFile) {
		t.Errorf("dry run counts before %v after %v, replaced %v", plan.Before, plan.After, plan.Replaced)
	}
	if h := hashDir(t, dir); h != before {
		t.Fatal("the dry run changed the data directory")
	}

	_, err = Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{})
	if !errors.Is(err, ErrWouldRewind) {
		t.Fatalf("restore over later revocations: %v, want ErrWouldRewind", err)
	}
	for _, w := range []string{f.serial, "stop-personal-to-SG", "VN-SG-SCAM-1", "alice"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("refusal does not name %q: %v", w, err)
		}
	}
	if h := hashDir(t, dir); h != before {
		t.Fatal("a refused restore changed the data directory")
	}

	plan, err = Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Reapply: true})
	if err != nil {
		t.Fatalf("restore --reapply: %v", err)
	}
	if plan.SerialFloor < published {
		t.Errorf("serial floor %d below the published %d", plan.SerialFloor, published)
	}
	// The floor is in the restored registry, whatever the clock says.
	if st, err := readTrustState(ctx, filepath.Join(dir, registryFile)); err != nil || st.serial < published {
		t.Errorf("restored registry's serial %v (%v), below the published %d", st, err, published)
	}
	ta2 := startAuthority(t, dir, "")
	c := ta2.a.Current()
	if c.Serial <= published {
		t.Errorf("restored authority publishes serial %d, not above %d", c.Serial, published)
	}
	assertInForce(t, c, f.serial)
	var revokedAt string
	if err := ta2.a.db.QueryRowContext(ctx, `SELECT revoked_at FROM certificates WHERE serial = ?`, f.serial).Scan(&revokedAt); err != nil || revokedAt != revokedFirst {
		t.Errorf("re-applied revocation dated %q (%v), first revoked at %q", revokedAt, err, revokedFirst)
	}
	rows := strings.Join(ta2.auditRows(t), "\n")
	for _, w := range []string{"restore: reapplied revocation", "restore: reapplied suspension", "restore: reapplied agreement"} {
		if !strings.Contains(rows, w) {
			t.Errorf("audit log lacks %q:\n%s", w, rows)
		}
	}
	if plan.Previous == "" {
		t.Error("the replaced directory was not kept")
	}
}

func assertInForce(t *testing.T, c *conf.Config, serial string) {
	t.Helper()
	if !slices.Contains(c.Revoked, serial) {
		t.Errorf("certificate %s not revoked after restore: %v", serial, c.Revoked)
	}
	if c.Policy == nil || len(c.Policy.Suspensions) != 1 || c.Policy.Suspensions[0].ID != "stop-personal-to-SG" {
		t.Errorf("suspension not in force after restore: %+v", c.Policy)
	}
	for _, ag := range c.Policy.Agreements {
		if ag.ID == "VN-SG-SCAM-1" && ag.Status != policy.StatusSuspended {
			t.Errorf("agreement %s after restore", ag.Status)
		}
	}
}

// TestRestoreLostDirectory: with the data directory gone, the changes
// made after the backup are known from a signed configuration a gateway
// kept, checked against the anchor; the restore refuses, then re-applies
// them, and continues above that configuration's serial.
func TestRestoreLostDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, f := backupWorld(t, dir)
	arch := backupTo(t, dir, []byte("pass phrase"))
	reduceTrust(t, api, f)
	latest := ta.a.current.Load().doc
	published := ta.a.Current().Serial
	anchor := ta.a.Anchor()
	ta.stop()
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	o := RestoreOptions{Passphrase: []byte("pass phrase")}
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), o); !errors.Is(err, archive.ErrUntrusted) {
		t.Fatalf("restore with neither directory nor anchor: %v, want ErrUntrusted", err)
	}
	o.Anchor = anchor
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Passphrase: []byte("wrong"), Anchor: anchor}); !errors.Is(err, archive.ErrPassphrase) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	// A configuration altered after signing is refused.
	bad := bytes.Clone(latest)
	bad[len(bad)/2] ^= 1
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Passphrase: o.Passphrase, Anchor: anchor, LatestConf: bad}); err == nil {
		t.Fatal("accepted an altered configuration")
	}
	// Without a later configuration nothing says what the backup would
	// undo: refused unless forced.
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), o); err == nil || !strings.Contains(err.Error(), "--latest-conf") {
		t.Fatalf("restore of a lost directory without a later configuration: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a refused restore created the data directory")
	}
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Passphrase: o.Passphrase, Anchor: anchor, DryRun: true, Force: true}); err != nil {
		t.Fatalf("forced dry run: %v", err)
	}
	o.LatestConf = latest
	_, err := Restore(ctx, dir, bytes.NewReader(arch), o)
	if !errors.Is(err, ErrWouldRewind) || !strings.Contains(err.Error(), "configuration serial") {
		t.Fatalf("restore over a later configuration: %v", err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a refused restore created the data directory")
	}
	o.Reapply = true
	plan, err := Restore(ctx, dir, bytes.NewReader(arch), o)
	if err != nil {
		t.Fatalf("restore --reapply: %v", err)
	}
	if plan.SerialFloor != published {
		t.Errorf("serial floor %d, want the latest configuration's %d", plan.SerialFloor, published)
	}
	ta2 := startAuthority(t, dir, "")
	if c := ta2.a.Current(); c.Serial <= published {
		t.Errorf("serial %d not above %d", c.Serial, published)
	} else {
		assertInForce(t, c, f.serial)
	}
}

// TestRestoreDiscard: --discard restores the backup as it was and
// records each dropped change in the audit log.
func TestRestoreDiscard(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, f := backupWorld(t, dir)
	arch := backupTo(t, dir, nil)
	reduceTrust(t, api, f)
	ta.stop()
	if _, err := Restore(t.Context(), dir, bytes.NewReader(arch), RestoreOptions{Discard: true}); err != nil {
		t.Fatal(err)
	}
	ta2 := startAuthority(t, dir, "")
	if c := ta2.a.Current(); len(c.Revoked) != 0 || c.Policy.Suspensions != nil {
		t.Errorf("discarded changes in force: revoked %v, suspensions %v", c.Revoked, c.Policy.Suspensions)
	}
	rows := strings.Join(ta2.auditRows(t), "\n")
	if n := strings.Count(rows, "restore: discarded"); n != 3 {
		t.Errorf("%d discards audited, want 3:\n%s", n, rows)
	}
}

// TestRestoreRefusesForeignOrDamagedArchive: an archive of another
// authority, a tampered one and a truncated one are refused and leave
// the directory as it was.
func TestRestoreRefusesForeignOrDamagedArchive(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, _, _ := backupWorld(t, dir)
	own := backupTo(t, dir, nil)
	otherDir := filepath.Join(t.TempDir(), "other")
	other := startAuthority(t, otherDir, "")
	foreign := backupTo(t, otherDir, nil)
	other.stop()
	ta.stop()
	before := hashDir(t, dir)
	tampered := bytes.Clone(own)
	i := bytes.Index(tampered, []byte("BEGIN CERTIFICATE"))
	tampered[i+40] ^= 1
	for _, tc := range []struct {
		name string
		b    []byte
		is   error
	}{
		{"another authority's archive", foreign, archive.ErrUntrusted},
		{"tampered", tampered, nil},
		{"truncated", own[:len(own)*2/3], nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Restore(t.Context(), dir, bytes.NewReader(tc.b), RestoreOptions{Reapply: true})
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) {
				t.Fatalf("restore: %v", err)
			}
			if hashDir(t, dir) != before {
				t.Fatal("a refused restore changed the directory")
			}
			if left, _ := filepath.Glob(dir + ".restore-*"); len(left) != 0 {
				t.Errorf("left behind %v", left)
			}
		})
	}
	// Forced, another authority's archive is accepted: said in the plan.
	plan, err := Restore(t.Context(), dir, bytes.NewReader(foreign), RestoreOptions{DryRun: true, Force: true})
	if err != nil || plan.Signed != "untrusted" {
		t.Fatalf("forced dry run: %v, %+v", err, plan)
	}
}

// TestBackupUnderWrites: a backup taken while members are being added
// holds a registry that is whole (SQLite's integrity check passes) and
// a state between the one before and the one after.
func TestBackupUnderWrites(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta := startAuthority(t, dir, "")
	api := ta.client(adminToken)
	stop := make(chan struct{})
	done := make(chan int)
	go func() {
		n := 0
		for {
			select {
			case <-stop:
				done <- n
				return
			default:
			}
			if api.AddMember(t.Context(), MemberInput{ID: ident.ClientID{Instance: "VN", Class: "GOV", Code: "M" + strconv.Itoa(n)}, Name: "m"}) == nil {
				n++
			}
		}
	}()
	time.Sleep(100 * time.Millisecond)
	arch := backupTo(t, dir, nil)
	close(stop)
	added := <-done
	out := filepath.Join(t.TempDir(), "x")
	if _, err := archive.Extract(bytes.NewReader(arch), out, archive.ReadOptions{}); err != nil {
		t.Fatal(err)
	}
	st, err := readTrustState(t.Context(), filepath.Join(out, registryFile))
	if err != nil {
		t.Fatal(err)
	}
	if n := st.counts["members"]; n == 0 || n > added {
		t.Errorf("backup holds %d members; %d were added, some before the backup", n, added)
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(out, registryFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRow(`PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Errorf("integrity check: %q %v", check, err)
	}
}

// TestRestoreRefusesBeforeKeyRotation: an archive made before a
// configuration-signing key was rotated in is refused, naming the key:
// gateways may already trust that key alone.
func TestRestoreRefusesBeforeKeyRotation(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, _, _ := backupWorld(t, dir)
	arch := backupTo(t, dir, nil)
	if err := ta.a.PrepareConfKey(t.Context(), "alice"); err != nil {
		t.Fatal(err)
	}
	ta.stop()
	before := hashDir(t, dir)
	_, err := Restore(t.Context(), dir, bytes.NewReader(arch), RestoreOptions{DryRun: true})
	if err == nil || !strings.Contains(err.Error(), "was rotated in after this backup") {
		t.Fatalf("restore from before a key rotation: %v", err)
	}
	if h := hashDir(t, dir); h != before {
		t.Fatal("a refused restore changed the data directory")
	}
	if _, err := Restore(t.Context(), dir, bytes.NewReader(arch), RestoreOptions{DryRun: true, Force: true}); err != nil {
		t.Fatalf("forced: %v", err)
	}
}
