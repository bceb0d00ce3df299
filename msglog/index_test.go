package msglog

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transparency-dev/tessera/api/layout"

	"github.com/sampan-exchange/sampan/store"
	"github.com/sampan-exchange/sampan/store/pgtest"
)

// TestIndexMigration opens an index made with the first schema (the digest
// as the key, leaf positions not indexed): its rows are kept, positions
// and purges included, and the migrated index deduplicates by time and
// digest, records leaf positions, and finds rows by position.
func TestIndexMigration(t *testing.T) {
	test := func(t *testing.T, dsn string) {
		ctx := t.Context()
		dir := t.TempDir()
		old, err := store.OpenDSN(ctx, dsn, filepath.Join(dir, IndexFile), indexSQLite[:2], indexPG[:2])
		if err != nil {
			t.Fatal(err)
		}
		recs := make([]*row, 3)
		for i := range recs {
			r := testRecord(i)
			b, err := r.marshal()
			if err != nil {
				t.Fatal(err)
			}
			recs[i] = &row{digest: recordDigest(b), rec: r, data: b}
		}
		ins := old.Q(`INSERT INTO records (log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies, purged_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', ?)`)
		// Row 0 purged (a leaf, no record), row 1 a leaf, row 2 pending.
		for i, r := range recs {
			var leaf any
			if i < 2 {
				leaf = int64(i)
			}
			data, by := any(r.data), any(nil)
			if i == 0 {
				data, by = nil, []byte("purge")
			}
			if _, err := old.ExecContext(ctx, ins, "o", r.digest[:], leaf, r.rec.XRoadID, r.rec.Side, r.rec.Kind, r.requestAt(), data, by); err != nil {
				t.Fatal(err)
			}
		}
		if dsn != "" {
			// A deployment that replicates the table (logical
			// replication) needs it to keep a primary key.
			if _, err := old.ExecContext(ctx, `CREATE PUBLICATION p FOR TABLE records`); err != nil {
				t.Fatal(err)
			}
		}
		old.Close()

		db, err := OpenIndex(ctx, dir, dsn)
		if err != nil {
			t.Fatalf("migrate: %v", err)
		}
		defer db.Close()
		var n, purged, placed int
		if err := db.QueryRowContext(ctx, `SELECT count(*), count(purged_by), count(leaf_index) FROM records`).Scan(&n, &purged, &placed); err != nil {
			t.Fatal(err)
		}
		if n != 3 || purged != 1 || placed != 2 {
			t.Fatalf("after migration: %d rows, %d purged, %d placed; want 3, 1, 2", n, purged, placed)
		}
		unplaced, err := unplacedRows(ctx, db, "o")
		if err != nil {
			t.Fatal(err)
		}
		if at, ok := unplaced[recs[2].digest]; len(unplaced) != 1 || !ok || at != recs[2].requestAt() {
			t.Fatalf("unplaced rows %v, want only row 2 at %d", unplaced, recs[2].requestAt())
		}

		// The same records again (as a replay after a crash would) are
		// not inserted twice; a new one is; positions are recorded.
		w := &indexWriter{db: db, origin: "o"}
		fresh := testRecord(3)
		fb, err := fresh.marshal()
		if err != nil {
			t.Fatal(err)
		}
		fr := &row{digest: recordDigest(fb), rec: fresh, data: fb}
		recs[2].leaf = 2
		var seq uint64
		got, err := w.commit([]*row{recs[1], recs[2], fr}, []*row{recs[2]}, 0, 0, &seq)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || !got[fr.digest] {
			t.Fatalf("inserted %d rows (new one: %v), want only the new one", len(got), got[fr.digest])
		}
		var d []byte
		if err := db.QueryRowContext(ctx, db.Q(`SELECT digest FROM records WHERE log = ? AND leaf_index = ?`), "o", 2).Scan(&d); err != nil || [32]byte(d) != recs[2].digest {
			t.Fatalf("leaf 2: %x, %v; want row 2", d, err)
		}
		w.closeStatements()
	}
	t.Run("sqlite", func(t *testing.T) { test(t, "") })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.Start(t)) })
}

// TestVerifyRunningLogPastCheckpoint: log verify on a running gateway
// whose leaf positions lag (another writer holds the index for a moment)
// while the tree has grown past the checkpoint being checked and the last
// bundle it reads is the full one (the partial file removed, as the tree's
// storage does once a bundle fills): the leaves beyond the checkpoint are
// not checked against rows younger than the check, and the report counts
// only the checkpoint's leaves.
func TestVerifyRunningLogPastCheckpoint(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close(context.Background())
	const size = 522 // bundle 2 partial: 10 of 256
	for i := range size {
		if err := l.Append(ctx, testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // a checkpoint covers them
	started, release := make(chan struct{}), make(chan struct{})
	first := true
	type result struct {
		rep *Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := Verify(ctx, dir, "", func(*Record) {
			if first { // the checkpoint is read: let the log grow
				first = false
				close(started)
				<-release
			}
		})
		done <- result{rep, err}
	}()
	<-started
	for i := range 300 {
		if err := l.Append(ctx, testRecord(1000+i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.idx.sync(ctx); err != nil {
		t.Fatal(err)
	}
	other, err := sql.Open("sqlite", "file:"+filepath.Join(dir, IndexFile)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	c, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if err := l.integ.wait(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // a newer checkpoint covers them
	if err := os.RemoveAll(filepath.Join(dir, TilesDir, layout.EntriesPath(2, 0)+".p")); err != nil {
		t.Fatal(err)
	}
	close(release)
	r := <-done
	c.ExecContext(ctx, "ROLLBACK")
	c.Close()
	if r.err != nil {
		t.Fatalf("verify of a sound, running log: %v", r.err)
	}
	if r.rep.Size != size || r.rep.Records != size {
		t.Errorf("report: checkpoint of %d leaves, %d records checked; want %d and %d", r.rep.Size, r.rep.Records, size, size)
	}
}
