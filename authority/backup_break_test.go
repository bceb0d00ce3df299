package authority

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
)

// TestRestoreKeepsFederationRemoval: removing a federation partner stops
// trusting a foreign instance; a backup taken before the removal must
// not silently trust it again (listed, refused unless re-applied or
// discarded, as a revocation is).
func TestRestoreKeepsFederationRemoval(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, _ := backupWorld(t, dir)
	ctx := t.Context()
	an := *ta.a.Anchor()
	an.Instance = "SG"
	if err := api.PutFederation(ctx, FederationInput{Anchor: an, InboundClients: []ident.ClientID{{Instance: "SG", Class: "GOV", Code: "ACRA"}}}); err != nil {
		t.Fatal(err)
	}
	arch := backupTo(t, dir, nil)
	if err := api.RemoveFederation(ctx, "SG"); err != nil {
		t.Fatal(err)
	}
	latest := ta.a.current.Load().doc
	ta.stop()
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{}); !errors.Is(err, ErrWouldRewind) {
		t.Fatalf("restore over a federation removal: %v, want ErrWouldRewind", err)
	}
	// The same when the removal is known only from a configuration.
	lost := filepath.Join(t.TempDir(), "lost")
	if _, err := Restore(ctx, lost, bytes.NewReader(arch), RestoreOptions{Anchor: ta.a.Anchor(), LatestConf: latest}); !errors.Is(err, ErrWouldRewind) {
		t.Fatalf("restore of a lost directory over a federation removal: %v, want ErrWouldRewind", err)
	}
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Reapply: true}); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".current-*")); len(m) > 0 {
		t.Errorf("the restore left its scratch copies in the data directory: %v", m)
	}
	ta2 := startAuthority(t, dir, "")
	if f := ta2.a.Current().Federated("SG"); f != nil {
		t.Fatalf("the restored authority trusts SG again: %+v", f)
	}
}

// TestRestoreAfterInterruptedRestore: a restore stopped between its two
// renames leaves DIR absent and the replaced directory beside it; a second
// restore must not take the directory for lost and skip comparing the
// archive with what the replaced registry holds.
func TestRestoreAfterInterruptedRestore(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, f := backupWorld(t, dir)
	arch := backupTo(t, dir, nil)
	reduceTrust(t, api, f)
	anchor := ta.a.Anchor()
	ta.stop()
	// The state the first rename of archive.Replace leaves.
	if err := os.Rename(dir, dir+".before-restore-20261207T230000.000Z"); err != nil {
		t.Fatal(err)
	}
	plan, err := Restore(t.Context(), dir, bytes.NewReader(arch), RestoreOptions{Anchor: anchor})
	if err == nil {
		t.Fatalf("restored over an interrupted restore, undoing %d unlisted changes", 3-len(plan.Undone))
	}
}

// TestRestoreKeepsWidenedSuspension: a suspension widened in place after
// the backup (same id, more flows stopped) must not be narrowed back
// silently by a restore.
func TestRestoreKeepsWidenedSuspension(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "authority")
	ta, api, _ := backupWorld(t, dir)
	ctx := t.Context()
	sp := policy.Suspension{ID: "stop-to-SG", When: policy.When{Flow: "cross-border", Flags: []string{policy.FlagPersonal}}, Reason: "breach"}
	if err := api.PutSuspension(ctx, sp); err != nil {
		t.Fatal(err)
	}
	arch := backupTo(t, dir, nil)
	sp.When.Flow, sp.Reason = "any", "breach wider than thought"
	if err := api.PutSuspension(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ta.stop()
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{}); !errors.Is(err, ErrWouldRewind) {
		t.Fatalf("restore over a widened suspension: %v, want ErrWouldRewind", err)
	}
	if _, err := Restore(ctx, dir, bytes.NewReader(arch), RestoreOptions{Reapply: true}); err != nil {
		t.Fatal(err)
	}
	ta2 := startAuthority(t, dir, "")
	if s := ta2.a.Current().Policy.Suspensions; len(s) != 1 || s[0].When.Flow != "any" {
		t.Fatalf("suspensions in force after --reapply: %+v", s)
	}
}
