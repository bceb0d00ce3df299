package msglog

import (
	"context"
	"encoding/binary"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// append hands a row to the writer and waits until it is durable.
func (w *walWriter) append(ctx context.Context, r *row) error {
	if err := w.enqueue(r); err != nil {
		return err
	}
	return r.wait(ctx)
}

// leaveSegments writes records to write-ahead segments in dir as a
// gateway would have acknowledged them just before a crash: durable in a
// segment, not yet in the index. It returns where the entries end in the
// last segment.
func leaveSegments(t *testing.T, dir string, base, n int) int64 {
	t.Helper()
	w := newWALWriter(dir, 0, discard(), func([]*row) {}, nil) // the index never sees them
	for i := range n {
		b, r := entry(t, base+i)
		if err := w.append(t.Context(), &row{digest: recordDigest(b), rec: r, data: b}); err != nil {
			t.Fatal(err)
		}
	}
	w.close()
	return w.off
}

// entry is record i, marshalled.
func entry(t *testing.T, i int) ([]byte, *Record) {
	t.Helper()
	r := testRecord(i)
	b, err := r.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b, r
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	wf, err := listWAL(dir)
	if err != nil {
		t.Fatal(err)
	}
	return wf.segments
}

// TestWALRecoversAcknowledgedRecords: records acknowledged (durable in a
// segment) but not yet indexed when the gateway stopped are indexed and
// become leaves at the next start, and the segments then go.
func TestWALRecoversAcknowledgedRecords(t *testing.T) {
	withEachIndex(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		writeLogDSN(t, dir, dsn, 0, 20)
		if segs := segmentFiles(t, dir); len(segs) != 0 {
			t.Errorf("segments left after a clean stop: %v", segs)
		}
		leaveSegments(t, dir, 20, 30)
		if len(segmentFiles(t, dir)) == 0 {
			t.Fatal("no segment written")
		}
		// Before the next start, verify sees them waiting.
		if rep, err := Verify(t.Context(), dir, dsn, nil); err != nil || rep.Unindexed != 30 || rep.Records != 20 {
			t.Errorf("before the restart: %+v, %v; want 20 records and 30 waiting in segments", rep, err)
		}
		// The records of the crashed run; and the next run goes on.
		writeLogDSN(t, dir, dsn, 50, 5)
		seen := map[string]bool{}
		rep, err := Verify(t.Context(), dir, dsn, func(r *Record) { seen[r.XRoadID] = true })
		if err != nil {
			t.Fatal(err)
		}
		if rep.Size != 55 || rep.Records != 55 || rep.Pending != 0 {
			t.Errorf("report %+v, want 55 records in the tree", rep)
		}
		for _, id := range []string{"id-0", "id-20", "id-49", "id-54"} {
			if !seen[id] {
				t.Errorf("record %s missing", id)
			}
		}
		if segs := segmentFiles(t, dir); len(segs) != 0 {
			t.Errorf("segments left after recovery: %v", segs)
		}
	})
}

// TestWALTornTail: an entry cut short, or not matching its digest, at the
// end of a segment was being written at a crash and never acknowledged:
// it is left out, and everything before it is kept.
func TestWALTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(whole []byte) []byte
	}{
		{"cut short", func(whole []byte) []byte { return whole[:len(whole)-7] }},
		{"not its digest", func(whole []byte) []byte {
			b := append([]byte(nil), whole...)
			b[len(b)-3] ^= 0x20
			return b
		}},
		{"only a head", func(whole []byte) []byte { return whole[:10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			end := leaveSegments(t, dir, 0, 5)
			// A sixth entry after the five, spoilt.
			b, _ := entry(t, 5)
			d := recordDigest(b)
			whole := append(binary.BigEndian.AppendUint32(nil, uint32(len(b))), d[:]...)
			whole = append(whole, b...)
			f, err := os.OpenFile(segmentFiles(t, dir)[0], os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tc.tail(whole), end); err != nil {
				t.Fatal(err)
			}
			f.Close()
			writeLog(t, dir, 100, 0)
			seen := map[string]bool{}
			rep, err := Verify(t.Context(), dir, "", func(r *Record) { seen[r.XRoadID] = true })
			if err != nil {
				t.Fatal(err)
			}
			if rep.Records != 5 || !seen["id-0"] || !seen["id-4"] || seen["id-5"] {
				t.Errorf("report %+v, records %v; want id-0…id-4 and not id-5", rep, seen)
			}
		})
	}
}

// TestWALNotASegment: a file in the segment directory that is not a
// segment stops the log from opening, with its name, and is left as it
// was.
func TestWALNotASegment(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 0, 3)
	bad := filepath.Join(dir, WALDir, "0000000000000007.seg")
	if err := os.WriteFile(bad, []byte("something else entirely"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(t.Context(), dir, "VN/GOV/HCMC/gw1", Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "0000000000000007.seg") {
		t.Fatalf("open: %v, want an error naming the segment", err)
	}
	if b, err := os.ReadFile(bad); err != nil || string(b) != "something else entirely" {
		t.Errorf("the file was changed: %q, %v", b, err)
	}
}

// TestIndexOutageLosesNothing: while the record index cannot be written,
// records already acknowledged wait in their segments and new ones are
// refused; once it can, every acknowledged record is indexed and a leaf.
func TestIndexOutageLosesNothing(t *testing.T) {
	// One record per segment: the segments of the records acknowledged
	// during the outage are sealed, and must stay until those records are
	// in the index.
	defer func(n int64) { walSegmentSize = n }(walSegmentSize)
	walSegmentSize = 1 << 10
	dir := t.TempDir()
	l, err := Open(t.Context(), dir, "VN/GOV/HCMC/gw1", Options{CheckpointInterval: 100 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(t.Context(), testRecord(0)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.db.Exec(`ALTER TABLE records RENAME TO records_gone`); err != nil {
		t.Fatal(err)
	}
	acked := 1
	var refused error
	deadline := time.Now().Add(10 * time.Second)
	for i := 1; refused == nil && time.Now().Before(deadline); i++ {
		if refused = l.Append(t.Context(), testRecord(i)); refused == nil {
			acked++
			time.Sleep(20 * time.Millisecond)
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), "record index") {
		t.Fatalf("appends during the outage: %v, want a refusal naming the record index", refused)
	}
	if acked < 2 {
		t.Errorf("%d records acknowledged, want the ones before the index was found broken", acked)
	}
	if n := len(segmentFiles(t, dir)); n < acked-1 {
		t.Errorf("%d segments left for %d records acknowledged during the outage: removed before their records were indexed", n, acked-1)
	}
	if _, err := l.db.Exec(`ALTER TABLE records_gone RENAME TO records`); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(10 * time.Second)
	for l.Append(t.Context(), testRecord(1000)) != nil {
		if time.Now().After(deadline) {
			t.Fatal("appends still refused after the index came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // a checkpoint over everything
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	rep, err := Verify(t.Context(), dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := uint64(acked + 1); rep.Records != want || rep.Size != want {
		t.Errorf("report %+v, want %d records (every acknowledged one)", rep, want)
	}
}

// TestWALSegmentsRotate: records spread over many segments are all
// recovered, in order, and the segments go once indexed.
func TestWALSegmentsRotate(t *testing.T) {
	dir := t.TempDir()
	leaveSegments(t, dir, 0, 600) // about 700 bytes each: several segments
	if n := len(segmentFiles(t, dir)); n < 2 {
		t.Fatalf("%d segments, want several", n)
	}
	writeLog(t, dir, 600, 10)
	seen := map[string]bool{}
	rep, err := Verify(t.Context(), dir, "", func(r *Record) { seen[r.XRoadID] = true })
	if err != nil {
		t.Fatal(err)
	}
	if rep.Records != 610 || len(seen) != 610 {
		t.Errorf("report %+v, %d distinct records; want 610", rep, len(seen))
	}
	if segs := segmentFiles(t, dir); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
}

func TestMain(m *testing.M) {
	// Small segments, so that tests rotate them and make them quickly.
	walSegmentSize = 128 << 10
	os.Exit(m.Run())
}

// TestWALDamageInTheMiddle: a damaged entry inside a segment loses only
// itself: the records after it are recovered, and the segment is kept
// for inspection.
func TestWALDamageInTheMiddle(t *testing.T) {
	dir := t.TempDir()
	leaveSegments(t, dir, 0, 5)
	seg := segmentFiles(t, dir)[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	off := len(walMagic)
	for range 2 { // to the third entry
		n, ok := entryAt(b, off)
		if !ok {
			t.Fatal("segment unreadable")
		}
		off += walEntryHead + n
	}
	b[off+walEntryHead+20] ^= 0x01
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// An empty log to verify against: the segment is read, not replayed.
	empty := t.TempDir()
	writeLog(t, empty, 0, 1)
	if err := os.MkdirAll(filepath.Join(empty, WALDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(empty, WALDir, filepath.Base(seg)), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if rep, err := Verify(t.Context(), empty, "", nil); err != nil || rep.Damaged != 1 || rep.Unindexed != 4 {
		t.Errorf("verify: %+v, %v; want one damaged segment and 4 records waiting", rep, err)
	}
	writeLog(t, dir, 100, 0)
	seen := map[string]bool{}
	if _, err := Verify(t.Context(), dir, "", func(r *Record) { seen[r.XRoadID] = true }); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 4 || seen["id-2"] || !seen["id-3"] || !seen["id-4"] {
		t.Errorf("records %v; want all but id-2", seen)
	}
	if _, err := os.Stat(seg + ".damaged"); err != nil {
		t.Errorf("the damaged segment was not kept: %v", err)
	}
	if rep, err := Verify(t.Context(), dir, "", nil); err != nil || rep.Damaged != 1 {
		t.Errorf("verify after the start: %+v, %v; want the kept segment counted", rep, err)
	}
}

// TestWALTornTailBeforeNewerSegment: bytes that do not make an entry at
// the end of a segment that a newer one followed were not a write cut
// short by a stop (that segment was complete): they are damage.
func TestWALTornTailBeforeNewerSegment(t *testing.T) {
	dir := t.TempDir()
	end := leaveSegments(t, dir, 0, 3)
	first := segmentFiles(t, dir)[0]
	f, err := os.OpenFile(first, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("\x00\x00\x01\x00garbage"), end); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// A newer segment with records of its own.
	w := newWALWriter(dir, 100, discard(), func([]*row) {}, nil)
	b, r := entry(t, 3)
	if err := w.append(t.Context(), &row{digest: recordDigest(b), rec: r, data: b}); err != nil {
		t.Fatal(err)
	}
	w.close()
	writeLog(t, dir, 100, 0)
	if rep, err := Verify(t.Context(), dir, "", nil); err != nil || rep.Records != 4 || rep.Damaged != 1 {
		t.Errorf("report %+v, %v; want 4 records and the first segment kept as damaged", rep, err)
	}
	if _, err := os.Stat(first + ".damaged"); err != nil {
		t.Errorf("not kept: %v", err)
	}
}

// TestWALUnusedFiles: a segment file of zeros (made but never begun) and a
// half-made one are not mistaken for damage, and go.
func TestWALUnusedFiles(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 0, 3)
	wal := filepath.Join(dir, WALDir)
	zeros := filepath.Join(wal, "0000000000000041.seg")
	tmp := filepath.Join(wal, "0000000000000042.seg.tmp")
	for _, p := range []string{zeros, tmp} {
		if err := os.WriteFile(p, make([]byte, 4096), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeLog(t, dir, 3, 2)
	if rep, err := Verify(t.Context(), dir, "", nil); err != nil || rep.Records != 5 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	for _, p := range []string{zeros, tmp} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("%s left", filepath.Base(p))
		}
	}
}

// TestWALRecordTooLarge: a record that cannot fit in a segment is refused,
// not retried for ever.
func TestWALRecordTooLarge(t *testing.T) {
	defer func(n int64) { walSegmentSize = n }(walSegmentSize)
	walSegmentSize = 1 << 10
	l, err := Open(t.Context(), t.TempDir(), "VN/GOV/HCMC/gw1", Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(t.Context())
	r := testRecord(1)
	r.Path = "/" + strings.Repeat("x", 2000)
	if err := l.Append(t.Context(), r); err == nil || !strings.Contains(err.Error(), "does not fit") {
		t.Errorf("append: %v, want a refusal saying it does not fit", err)
	}
	if err := l.Append(t.Context(), testRecord(2)); err != nil {
		t.Errorf("the next record: %v", err)
	}
}

// FuzzParseSegment: whatever a segment file holds, reading it neither
// panics nor returns a record that does not match its digest, and it
// accounts for every byte.
func FuzzParseSegment(f *testing.F) {
	b, err := testRecord(1).marshal()
	if err != nil {
		f.Fatal(err)
	}
	d := recordDigest(b)
	one := append(binary.BigEndian.AppendUint32([]byte(walMagic), uint32(len(b))), d[:]...)
	one = append(one, b...)
	f.Add(one)
	f.Add(append(append([]byte(nil), one...), one[len(walMagic):]...))
	f.Add(append(append([]byte(nil), one...), make([]byte, 100)...))
	f.Add([]byte(walMagic))
	f.Add(make([]byte, 64))
	f.Fuzz(func(t *testing.T, seg []byte) {
		rows, sc, err := parseSegment(seg, "fuzz.seg")
		if err != nil {
			return
		}
		used := len(walMagic)
		for _, r := range rows {
			if recordDigest(r.data) != r.digest || r.rec == nil {
				t.Fatalf("record does not match its digest")
			}
			used += walEntryHead + len(r.data)
		}
		if !sc.unused && used+sc.skipped != lastNonZero(seg) {
			t.Fatalf("%d bytes of records and %d skipped, but the segment's data ends at %d", used, sc.skipped, lastNonZero(seg))
		}
	})
}
