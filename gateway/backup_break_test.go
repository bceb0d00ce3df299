package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

func breakRecord(i int) *msglog.Record {
	return &msglog.Record{
		Side: "consumer", Gateway: "VN/GOV/HCMC/gw1", PeerGateway: "VN/GOV/MOF/gw1",
		XRoadID: fmt.Sprintf("id-%d", i), RequestID: fmt.Sprintf("req-%d", i),
		Client: "VN/GOV/HCMC/one-stop", Service: "VN/GOV/MOF/business-registry/companies",
		Method: "GET", Path: "/0100109106", RequestAt: time.Now().UTC(), ResponseAt: time.Now().UTC(), Status: 200,
		RequestSignature: "sig-req", ResponseSignature: "sig-resp", RequestHash: "h",
	}
}

// TestRestoreKeepsRecordsBeyondTheCheckpoint: a record is acknowledged
// once durable in a write-ahead segment, before it is in the tree. A
// gateway stopped uncleanly holds such records beyond its checkpoint; a
// restore of an archive whose log equals that checkpoint must not pass
// the "extends the log in place" check and drop them.
func TestRestoreKeepsRecordsBeyondTheCheckpoint(t *testing.T) {
	ctx := t.Context()
	base := t.TempDir()
	dir := filepath.Join(base, "gw")
	if err := os.MkdirAll(filepath.Join(dir, "log"), 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKey(filepath.Join(dir, "auth.key"), key); err != nil {
		t.Fatal(err)
	}
	const name = "VN/GOV/HCMC/gw1"
	l, err := msglog.Open(ctx, filepath.Join(dir, "log"), name, msglog.Options{CheckpointInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := l.Append(ctx, breakRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var arch bytes.Buffer
	if _, err := gateway.Backup(ctx, dir, &arch, gateway.BackupOptions{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	// Two more records acknowledged, then a crash before they reach the
	// tree: the crash image is a consistent snapshot of the running log.
	l, err = msglog.Open(ctx, filepath.Join(dir, "log"), name, msglog.Options{CheckpointInterval: 5 * time.Minute}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 3; i < 5; i++ {
		if err := l.Append(ctx, breakRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	crashed := filepath.Join(base, "crashed")
	if err := os.Mkdir(crashed, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := msglog.Snapshot(ctx, filepath.Join(dir, "log"), filepath.Join(crashed, "log")); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	l.Close(cctx) // the crash image is taken; how this copy ends does not matter
	cancel()
	b, _ := os.ReadFile(filepath.Join(dir, "auth.key"))
	if err := os.WriteFile(filepath.Join(crashed, "auth.key"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	plan, err := gateway.Restore(ctx, crashed, bytes.NewReader(arch.Bytes()), gateway.RestoreOptions{})
	if errors.Is(err, gateway.ErrOlderLog) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	// Restored: count what the replaced log held and what the restored one holds.
	size := func(d string) uint64 {
		l, err := msglog.Open(ctx, filepath.Join(d, "log"), name, msglog.Options{CheckpointInterval: 100 * time.Millisecond}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if err := l.Close(ctx); err != nil {
			t.Fatal(err)
		}
		h, err := msglog.ReadHead(ctx, filepath.Join(d, "log"))
		if err != nil {
			t.Fatal(err)
		}
		return h.Size
	}
	t.Fatalf("restore accepted (log in place %d, archive %d): the replaced log holds %d records, the restored one %d",
		plan.LogInPlace, plan.LogRestored, size(plan.Previous), size(crashed))
}

// TestRestoreKeepsNewerConfiguration: state.db holds the configuration
// the gateway last accepted, the floor conf.Accept keeps serials above.
// Restoring an older state.db must not take the gateway back to an older
// configuration (one without later revocations), nor lower that floor.
func TestRestoreKeepsNewerConfiguration(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "gw")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := pki.GenerateKey(pki.ECDSAP256)
	if err != nil {
		t.Fatal(err)
	}
	if err := pki.WriteKey(filepath.Join(dir, "auth.key"), key); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, filepath.Join(dir, "state.db"), gateway.StateMigrations())
	if err != nil {
		t.Fatal(err)
	}
	put := func(serial uint64, doc string) {
		t.Helper()
		if _, err := db.ExecContext(ctx, `INSERT INTO global_conf (instance, serial, doc, etag, fetched_at) VALUES ('VN', ?, ?, '', '')
			ON CONFLICT (instance) DO UPDATE SET serial = excluded.serial, doc = excluded.doc`, serial, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	put(5, "older")
	var arch bytes.Buffer
	if _, err := gateway.Backup(ctx, dir, &arch, gateway.BackupOptions{Version: "test"}); err != nil {
		t.Fatal(err)
	}
	put(9, "newer")
	db.Close()
	if _, err := gateway.Restore(ctx, dir, bytes.NewReader(arch.Bytes()), gateway.RestoreOptions{}); err != nil {
		t.Fatal(err)
	}
	db, err = store.Open(ctx, filepath.Join(dir, "state.db"), gateway.StateMigrations())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var serial uint64
	var doc []byte
	if err := db.QueryRowContext(ctx, `SELECT serial, doc FROM global_conf WHERE instance = 'VN'`).Scan(&serial, &doc); err != nil {
		t.Fatal(err)
	}
	if serial != 9 || string(doc) != "newer" {
		t.Fatalf("the restored gateway holds configuration serial %d (%s), older than the serial 9 it had accepted", serial, doc)
	}
}
