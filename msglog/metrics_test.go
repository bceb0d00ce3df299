package msglog

import (
	"crypto"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"math/big"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/digitorus/timestamp"
	"github.com/prometheus/client_golang/prometheus"
)

// logMetrics are the names SPEC-20 fixes for the message log.
var logMetrics = []string{
	"sampan_msglog_failures_total",
	"sampan_msglog_index_lag_records",
	"sampan_msglog_queue_depth",
	"sampan_msglog_records_total",
	"sampan_msglog_segment_sync_seconds",
	"sampan_msglog_segment_syncs_total",
	"sampan_msglog_tree_lag_records",
}

// scrape gathers reg: each metric's value (a histogram's sample count).
func scrape(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if len(mf.GetMetric()) != 1 {
			t.Fatalf("%s has %d series, want 1", mf.GetName(), len(mf.GetMetric()))
		}
		m := mf.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[mf.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got[mf.GetName()] = m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			got[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
		}
	}
	return got
}

func openMetered(t *testing.T, dir, dsn string, reg prometheus.Registerer) *Log {
	t.Helper()
	l, err := Open(t.Context(), dir, "VN/GOV/HCMC/gw1", Options{CheckpointInterval: 100 * time.Millisecond, IndexDSN: dsn, Registerer: reg}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// appendN appends n records from as many goroutines and waits until
// each is acknowledged.
func appendN(t *testing.T, l *Log, base, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			if err := l.Append(t.Context(), testRecord(base+i)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func TestMetrics(t *testing.T) { withEachIndex(t, testMetrics) }

// testMetrics: a log's metrics count its durable records, its syncs and
// their latencies, its failures; its queue and lags return to zero; they
// still read after Close.
func testMetrics(t *testing.T, dsn string) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	l := openMetered(t, dir, dsn, reg)
	got := scrape(t, reg)
	var names []string
	for n, v := range got {
		names = append(names, n)
		if v != 0 {
			t.Errorf("%s = %v on a new log, want 0", n, v)
		}
	}
	slices.Sort(names)
	if !slices.Equal(names, logMetrics) {
		t.Errorf("metrics %v, want %v", names, logMetrics)
	}

	const n = 200
	appendN(t, l, 0, n)
	got = scrape(t, reg)
	if got["sampan_msglog_records_total"] != n {
		t.Errorf("records_total %v after %d appends, want %d", got["sampan_msglog_records_total"], n, n)
	}
	if s := got["sampan_msglog_segment_syncs_total"]; s < 1 || s > n {
		t.Errorf("segment_syncs_total %v for %d records, want 1 to %d", s, n, n)
	}
	if h := got["sampan_msglog_segment_sync_seconds"]; h != got["sampan_msglog_segment_syncs_total"] {
		t.Errorf("segment_sync_seconds holds %v samples, want one per sync (%v)", h, got["sampan_msglog_segment_syncs_total"])
	}
	if q := got["sampan_msglog_queue_depth"]; q != 0 {
		t.Errorf("queue_depth %v once every append returned, want 0", q)
	}
	if f := got["sampan_msglog_failures_total"]; f != 0 {
		t.Errorf("failures_total %v, want 0", f)
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	got = scrape(t, reg)
	for _, m := range []string{"sampan_msglog_index_lag_records", "sampan_msglog_tree_lag_records"} {
		if got[m] != 0 {
			t.Errorf("%s %v after Sync, want 0", m, got[m])
		}
	}

	// Refused by Begin (an invalid record), and accepted then failed by
	// the disk: two failures, no record.
	bad := testRecord(n)
	bad.Side = "elsewhere"
	if _, err := l.Begin(bad); err == nil {
		t.Fatal("an invalid record was accepted")
	}
	errDisk := errors.New("disk on fire")
	restore := FailWrites(dir, errDisk)
	if err := l.Append(t.Context(), testRecord(n+1)); !errors.Is(err, errDisk) {
		t.Fatalf("append on a failing disk: %v, want %v", err, errDisk)
	}
	restore()
	got = scrape(t, reg)
	if f := got["sampan_msglog_failures_total"]; f != 2 {
		t.Errorf("failures_total %v, want 2", f)
	}
	if r := got["sampan_msglog_records_total"]; r != n {
		t.Errorf("records_total %v after two failures, want %d", r, n)
	}
	if q := got["sampan_msglog_queue_depth"]; q != 0 {
		t.Errorf("queue_depth %v after a failed write, want 0", q)
	}

	time.Sleep(300 * time.Millisecond) // a checkpoint over everything
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	// The registry outlives the log in a stopped gateway: scrapes still
	// work and show what the log stopped with.
	got = scrape(t, reg)
	if r := got["sampan_msglog_records_total"]; r != n {
		t.Errorf("records_total %v after Close, want %d", r, n)
	}
	if rep, err := Verify(t.Context(), dir, dsn, nil); err != nil || rep.Records != n {
		t.Errorf("verify: %+v, %v; want %d records", rep, err, n)
	}
}

// TestMetricsLag: while the record index cannot be written, the
// acknowledged records show as index and tree lag; once it can, both
// return to zero.
func TestMetricsLag(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	l := openMetered(t, dir, "", reg)
	defer l.Close(t.Context())
	appendN(t, l, 0, 5)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := l.db.Exec(`ALTER TABLE records RENAME TO records_gone`); err != nil {
		t.Fatal(err)
	}
	// Handed over at once: the writer finds the index broken at its next
	// commit (every 50ms), and refuses records from then on.
	var pending []*Pending
	for i := range 10 {
		p, err := l.Begin(testRecord(5 + i))
		if err != nil {
			break
		}
		pending = append(pending, p)
	}
	for _, p := range pending {
		if err := p.Wait(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	acked := float64(len(pending))
	if acked == 0 {
		t.Fatal("no record acknowledged before the index was found broken")
	}
	// The writer retries a second after a failure: the lag stays at the
	// acknowledged records meanwhile.
	time.Sleep(200 * time.Millisecond)
	got := scrape(t, reg)
	if lag := got["sampan_msglog_index_lag_records"]; lag != acked {
		t.Errorf("index_lag_records %v during the outage, want the %v records acknowledged", lag, acked)
	}
	if lag := got["sampan_msglog_tree_lag_records"]; lag != acked {
		t.Errorf("tree_lag_records %v during the outage, want the %v records acknowledged", lag, acked)
	}
	// Refused while the index is broken: a failure.
	failures := got["sampan_msglog_failures_total"]
	if err := l.Append(t.Context(), testRecord(100)); err == nil {
		t.Fatal("a record was accepted while the index is broken")
	}
	if f := scrape(t, reg)["sampan_msglog_failures_total"]; f != failures+1 {
		t.Errorf("failures_total %v after a refusal, want %v", f, failures+1)
	}
	if _, err := l.db.Exec(`ALTER TABLE records_gone RENAME TO records`); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got = scrape(t, reg)
		if got["sampan_msglog_index_lag_records"] == 0 && got["sampan_msglog_tree_lag_records"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lags %v and %v 10s after the index came back, want 0",
				got["sampan_msglog_index_lag_records"], got["sampan_msglog_tree_lag_records"])
		}
		time.Sleep(20 * time.Millisecond)
	}
	if r := got["sampan_msglog_records_total"]; r != 5+acked {
		t.Errorf("records_total %v, want %v", r, 5+acked)
	}
}

// TestMetricsPerLog: two logs of one process count into their own
// registries; a second log's metrics in a registry holding a first's
// fail its Open, which leaves its directory usable.
func TestMetricsPerLog(t *testing.T) {
	regA, regB := prometheus.NewRegistry(), prometheus.NewRegistry()
	dirA, dirB := t.TempDir(), t.TempDir()
	a := openMetered(t, dirA, "", regA)
	defer a.Close(t.Context())
	b := openMetered(t, dirB, "", regB)
	appendN(t, a, 0, 3)
	appendN(t, b, 0, 7)
	if got := scrape(t, regA)["sampan_msglog_records_total"]; got != 3 {
		t.Errorf("first log's records_total %v, want 3", got)
	}
	if got := scrape(t, regB)["sampan_msglog_records_total"]; got != 7 {
		t.Errorf("second log's records_total %v, want 7", got)
	}
	if err := b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}

	if l, err := Open(t.Context(), dirB, "VN/GOV/HCMC/gw1", Options{Registerer: regA}, nil); err == nil {
		l.Close(t.Context())
		t.Fatal("a second log registered into a registry holding a first's metrics")
	}
	if got := scrape(t, regA)["sampan_msglog_records_total"]; got != 3 {
		t.Errorf("first log's records_total %v after the refused registration, want 3", got)
	}
	b = openMetered(t, dirB, "", nil) // nil: no metrics
	defer b.Close(t.Context())
	if err := b.Append(t.Context(), testRecord(100)); err != nil {
		t.Fatalf("the log whose registration failed, reopened without metrics: %v", err)
	}
}

// TestLastTimestamp: the log knows the time of its newest time-stamp,
// from the tokens it stores and, at the next start, from its directory.
func TestLastTimestamp(t *testing.T) {
	cert, key := testTSA(t)
	token := func(cp []byte, at time.Time) []byte {
		sum := sha256.Sum256(cp)
		resp, err := (&timestamp.Timestamp{
			HashAlgorithm: crypto.SHA256, HashedMessage: sum[:], Time: at,
			SerialNumber: big.NewInt(1), Policy: asn1.ObjectIdentifier{2, 25, 1}, AddTSACertificate: true,
		}).CreateResponseWithOpts(cert, key, crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		ts, err := ParseTokenResponse(resp)
		if err != nil {
			t.Fatal(err)
		}
		return ts.RawToken
	}
	dir := t.TempDir()
	l := openTest(t, dir)
	if at := l.LastTimestamp(); !at.IsZero() {
		t.Errorf("a new log's last time-stamp %v, want none", at)
	}
	older := time.Now().Add(-time.Hour).Truncate(time.Second).UTC()
	newer := older.Add(40 * time.Minute)
	for _, s := range []struct {
		size uint64
		at   time.Time
	}{{5, older}, {9, newer}} {
		cp := []byte("checkpoint " + s.at.String())
		if err := l.StoreTimestamp(s.size, cp, token(cp, s.at), cert); err != nil {
			t.Fatal(err)
		}
	}
	if at := l.LastTimestamp(); !at.Equal(newer) {
		t.Errorf("last time-stamp %v, want the newer token's %v", at, newer)
	}
	if err := l.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	l = openTest(t, dir)
	defer l.Close(t.Context())
	if at := l.LastTimestamp(); !at.Equal(newer) {
		t.Errorf("last time-stamp %v after a restart, want %v", at, newer)
	}
}
