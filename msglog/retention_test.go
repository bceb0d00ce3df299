package msglog

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func openTest(t *testing.T, dir string) *Log {
	t.Helper()
	l, err := Open(t.Context(), dir, "VN/GOV/MPS/gw1", Options{CheckpointInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// storeBody writes one part through a BodyWriter in uneven pieces.
func storeBody(t *testing.T, l *Log, stem, part string, body []byte) {
	t.Helper()
	w, err := l.NewBody(stem, part)
	if err != nil {
		t.Fatal(err)
	}
	for p := body; len(p) > 0; {
		k := min(len(p), 7777)
		w.Write(p[:k])
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestBodiesEncryptedAtRest(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	defer l.Close(t.Context())
	body := bytes.Repeat([]byte("resident 079123456789 Nguyen Van A; "), 5000) // ~180 KiB: several chunks
	stem, err := l.BodyStem("0f8e0c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "provider")
	if err != nil {
		t.Fatal(err)
	}
	storeBody(t, l, stem, PartRequest, body)
	storeBody(t, l, stem, PartResponse, nil)
	p := bodyPath(dir, stem, PartRequest)
	raw, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw, []byte("Nguyen Van A")) {
		t.Fatal("body stored in clear")
	}
	for _, f := range []string{p, filepath.Join(dir, BodyKeyFile)} {
		if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", f, fi.Mode().Perm())
		}
	}
	var got bytes.Buffer
	if err := ReadBody(dir, stem, PartRequest, &got); err != nil || !bytes.Equal(got.Bytes(), body) {
		t.Fatalf("read back %d bytes, %v", got.Len(), err)
	}
	got.Reset()
	if err := ReadBody(dir, stem, PartResponse, &got); err != nil || got.Len() != 0 {
		t.Fatalf("empty body read back as %d bytes, %v", got.Len(), err)
	}
	// Any change is refused: a flipped byte, a cut, a dropped chunk.
	first := 16 + 4 + bodyChunk + 16 // header, then the first sealed chunk
	for name, edit := range map[string]func([]byte) []byte{
		"flipped byte":  func(b []byte) []byte { b[len(b)/2] ^= 1; return b },
		"cut short":     func(b []byte) []byte { return b[:len(b)-100] },
		"cut at chunk":  func(b []byte) []byte { return b[:first] },
		"chunk dropped": func(b []byte) []byte { return append(b[:16:16], b[first:]...) },
		"extra data":    func(b []byte) []byte { return append(b, 0) },
	} {
		t.Run(name, func(t *testing.T) {
			b := edit(append([]byte(nil), raw...))
			if err := os.WriteFile(p, b, 0o600); err != nil {
				t.Fatal(err)
			}
			if err := ReadBody(dir, stem, PartRequest, &bytes.Buffer{}); err == nil {
				t.Error("altered body read without error")
			} else {
				t.Log(err)
			}
		})
	}
	if _, err := l.BodyStem("../../etc/passwd", "provider"); err == nil {
		t.Error("a request id with path separators named a body file")
	}
}

func TestRetentionPurgesAndStillVerifies(t *testing.T) { withEachIndex(t, testRetention) }

func testRetention(t *testing.T, dsn string) {
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, "VN/GOV/MPS/gw1", Options{CheckpointInterval: 100 * time.Millisecond, IndexDSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-100 * 24 * time.Hour).UTC()
	var oldStem string
	// Old records among new ones, each older than the one before: the
	// purge finds them by time, and its record must still cover them in
	// leaf order, as log verify reads them.
	for i := range 30 {
		r := testRecord(i)
		if i%3 != 2 {
			r.RequestAt = old.Add(-time.Duration(i) * time.Second)
		}
		if i == 3 {
			oldStem, _ = l.BodyStem("0f8e0c1a-2b3c-4d5e-8f90-a1b2c3d4e5f6", "consumer")
			storeBody(t, l, oldStem, PartRequest, []byte("old body"))
			r.Bodies = oldStem
		}
		if err := l.Append(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1200 * time.Millisecond) // leaf indexes are recorded within a second
	n, err := l.Purge(t.Context(), time.Now().Add(-90*24*time.Hour))
	if err != nil || n != 20 {
		t.Fatalf("purged %d, %v; want 20", n, err)
	}
	if n, err := l.Purge(t.Context(), time.Now().Add(-90*24*time.Hour)); err != nil || n != 0 {
		t.Fatalf("second purge: %d, %v", n, err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bodyPath(dir, oldStem, PartRequest)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("purged body still on disk: %v", err)
	}
	var held []string
	rep, err := Verify(t.Context(), dir, dsn, func(r *Record) { held = append(held, r.XRoadID) })
	if err != nil {
		t.Fatalf("verify after purge: %v", err)
	}
	if rep.Size != 31 || rep.Purged != 20 || rep.Purges != 1 || len(held) != 10 {
		t.Fatalf("report %+v, %d records held; want tree 31, 20 purged, 1 purge, 10 held", rep, len(held))
	}
	// A purged record cannot be exported; a kept one can.
	if err := Export(t.Context(), dir, dsn, Selection{XRoadID: "id-4"}, t.TempDir()); !errors.Is(err, ErrPurged) {
		t.Errorf("export of a purged record: %v", err)
	}
	out := t.TempDir()
	if err := Export(t.Context(), dir, dsn, Selection{XRoadID: "id-26"}, out); err != nil {
		t.Fatalf("export of a kept record: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(out, bundleRecord)); err != nil || !bytes.Contains(b, []byte(`"id-26"`)) {
		t.Fatalf("bundle of a kept record: %s, %v", b, err)
	}

	// Removing one more record under cover of the purge is caught.
	db, err := OpenIndex(t.Context(), dir, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`UPDATE records SET record = NULL, purged_by = (SELECT purged_by FROM records WHERE x_road_id = 'id-0') WHERE x_road_id = 'id-29'`); err != nil {
		t.Fatal(err)
	}
	if _, err := Verify(t.Context(), dir, dsn, nil); err == nil {
		t.Error("a record removed beyond what the purge logged was not detected")
	} else {
		t.Log(err)
	}
}

// A stop between committing a row and recording its leaf leaves rows
// without leaf indexes: some whose leaves are in the tree, and some
// acknowledged records whose leaves were not appended yet. Reopening
// places the first and appends the second.
func TestReconcileAfterCrash(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 0, 50)
	db, err := OpenIndex(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	late := func(i int, id string) (*Record, []byte, [32]byte) {
		r := testRecord(i)
		r.XRoadID = id
		b, err := r.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return r, b, recordDigest(b)
	}
	late1, b, d := late(999, "late-1")
	// A record acknowledged and inserted with a predicted position, whose
	// leaf was not appended before the stop.
	late2, b2, d2 := late(998, "late-2")
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE records SET leaf_index = NULL WHERE x_road_id IN ('id-3', 'id-41')`, nil},
		{`INSERT INTO records (log, digest, x_road_id, side, kind, request_at, record) VALUES ((SELECT log FROM records LIMIT 1), ?, 'late-1', 'consumer', 'exchange', ?, ?)`, []any{d[:], late1.RequestAt.UnixMilli(), b}},
		// Predictions the tree did not follow: two rows' positions
		// swapped, one past the tree.
		{`UPDATE records SET leaf_index = (SELECT sum(leaf_index) FROM records WHERE x_road_id IN ('id-5', 'id-6')) - leaf_index WHERE x_road_id IN ('id-5', 'id-6')`, nil},
		{`UPDATE records SET leaf_index = 77 WHERE x_road_id = 'id-7'`, nil},
		{`INSERT INTO records (log, digest, leaf_index, x_road_id, side, kind, request_at, record) VALUES ((SELECT log FROM records LIMIT 1), ?, 50, 'late-2', 'consumer', 'exchange', ?, ?)`, []any{d2[:], late2.RequestAt.UnixMilli(), b2}},
		{`UPDATE log_state SET reconciled = 0`, nil},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	writeLog(t, dir, 50, 5)
	var placed, unconfirmed int
	db.QueryRow(`SELECT count(*) FROM records WHERE leaf_index IS NOT NULL`).Scan(&placed)
	db.QueryRow(`SELECT count(*) FROM records WHERE leaf_index IS NULL OR leaf_index >= (SELECT reconciled FROM log_state)`).Scan(&unconfirmed)
	db.Close()
	if placed != 57 || unconfirmed != 0 {
		t.Fatalf("%d rows placed, %d not confirmed; want 57 and 0", placed, unconfirmed)
	}
	// Every row now holds its leaf's position: Verify finds each record
	// by position alone.
	found := map[string]bool{}
	if rep, err := Verify(t.Context(), dir, "", func(r *Record) { found[r.XRoadID] = true }); err != nil || rep.Size != 57 || !found["late-1"] || !found["late-2"] {
		t.Fatalf("after reopening: %+v, late records in the tree: %v, %v", rep, found, err)
	}
}

func TestFormatOneRefused(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, TilesDir), 0o700)
	os.WriteFile(filepath.Join(dir, TilesDir, "checkpoint"), []byte("sampan-log:x\n12\nabc=\n\n— sig\n"), 0o644)
	if _, err := Open(t.Context(), dir, "x", Options{}, nil); err == nil {
		t.Fatal("a format 1 log was opened")
	}
}

// The same record appended twice (a replay, say) is one record: neither
// append fails, nor do others committed with them, and the log verifies.
func TestIdenticalRecordsAreOne(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	r := testRecord(1)
	errs := make(chan error, 3)
	// Concurrently (perhaps committed together) and one after the other.
	for _, rec := range []*Record{r, r, testRecord(2)} {
		go func() { c := *rec; errs <- l.Append(t.Context(), &c) }()
	}
	for range 3 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		c := *r
		go func() { errs <- l.Append(t.Context(), &c) }()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	l.Close(t.Context())
	// One leaf for the record appended twice, one for the other.
	if rep, err := Verify(t.Context(), dir, "", nil); err != nil || rep.Size != 2 || rep.Records != 2 || rep.Pending != 0 {
		t.Fatalf("%+v, %v", rep, err)
	}
}

// A record that is not UTF-8 text is refused before it reaches the index,
// and records appended with it are not affected; an append after Close
// fails instead of waiting for ever.
func TestBadRecordAndClosedLog(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	bad := testRecord(1)
	bad.XRoadID = "id-\xff"
	errs := make(chan error, 10)
	for i := range 10 {
		go func() {
			if i == 0 {
				errs <- l.Append(t.Context(), bad)
				return
			}
			errs <- l.Append(t.Context(), testRecord(100+i))
		}()
	}
	failed := 0
	for range 10 {
		if err := <-errs; err != nil {
			failed++
			if !strings.Contains(err.Error(), "x_road_id") {
				t.Errorf("unexpected error %v", err)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d appends failed, want only the bad one", failed)
	}
	l.Close(t.Context())
	done := make(chan error, 1)
	go func() { done <- l.Append(context.Background(), testRecord(200)) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("an append after Close succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an append after Close did not return")
	}
}

// TestPurgeReadsLiveRowsOnly: a purge finds the records it may remove
// through the index of live rows, not by walking the index in leaf
// order, purged rows included, as it once did every hour.
func TestPurgeReadsLiveRowsOnly(t *testing.T) {
	db, err := OpenIndex(t.Context(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rs, err := db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+purgeSelect, "VN/GOV/MPS/gw1", time.Now().UnixMilli(), 1000, purgeBatch)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var plan []string
	for rs.Next() {
		var id, parent, unused int
		var detail string
		if err := rs.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) != 1 || !strings.Contains(plan[0], "USING INDEX records_live (request_at<?)") {
		t.Errorf("purge query plan %q; want one search of records_live by request time", plan)
	}
}

// TestLiveRowsMatchTheMigration: the condition the purge's query names is
// the one migration 4 gave the index; were they to part, the query would
// silently fall back to reading the whole index.
func TestLiveRowsMatchTheMigration(t *testing.T) {
	for _, m := range []string{indexSQLite[3].Up, indexPG[3].Up} { // migration 4 (the fourth)
		if !strings.Contains(m, "records_live") || !strings.Contains(m, " WHERE "+liveRows+";") {
			t.Errorf("migration %q does not index the rows %q", m, liveRows)
		}
	}
	db, err := OpenIndex(t.Context(), t.TempDir(), "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var def string
	if err := db.QueryRowContext(t.Context(), `SELECT sql FROM sqlite_master WHERE name = 'records_live'`).Scan(&def); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(def, " WHERE "+liveRows) {
		t.Errorf("index made: %q; the purge names %q", def, liveRows)
	}
}
