package opmon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/store/pgtest"
)

// dialects runs test on SQLite and on PostgreSQL.
func dialects(t *testing.T, test func(t *testing.T, dsn string)) {
	t.Run("sqlite", func(t *testing.T) { test(t, "") })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.Start(t)) })
}

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openStore opens a store in dir (or at dsn) with opts' other fields.
func openStore(t testing.TB, dir, dsn string, opts Options) *Store {
	t.Helper()
	opts.SQLitePath, opts.DSN = filepath.Join(dir, "opmon.db"), dsn
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	s, err := Open(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var t0 = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// fullRecord has every field set, all different from record to record.
func fullRecord(i int) *Record {
	in := t0.Add(time.Duration(i) * time.Second)
	return &Record{
		Side: "consumer", Gateway: "VN/GOV/HCMC/gw1", PeerGateway: "VN/GOV/MOF/gw1",
		RequestInAt: in, RequestOutAt: in.Add(1500 * time.Microsecond), ResponseInAt: in.Add(30 * time.Millisecond), ResponseOutAt: in.Add(31 * time.Millisecond),
		Client: "VN/GOV/HCMC/one-stop", Service: "VN/GOV/MOF/business-registry",
		XRoadID: fmt.Sprintf("xrid-%d", i), RequestID: fmt.Sprintf("req-%d", i), UserID: "EE:alice", Issue: "ticket 7", RepresentedParty: "VN/COM/123",
		Protocol: "r1", Method: "POST", Path: "/companies/0100109106?q=1",
		RequestBytes: 1<<40 + int64(i), ResponseBytes: 4096, Status: 502, Succeeded: false,
		ErrorType: "Server.ServerProxy.ServiceFailed", ErrorMessage: "backend: connection refused; \"quoted\"\nnewline",
		Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		Steps:       []Step{{"limits", 3 * time.Microsecond}, {"odd=name;100%", time.Second}, {"send", 28 * time.Millisecond}},
	}
}

// TestRoundTrip: every field of a record comes back as it went in (times
// to the microsecond, in UTC), and Close stores what was queued.
func TestRoundTrip(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		s := openStore(t, dir, dsn, Options{})
		want := []*Record{fullRecord(1), {Side: "provider", RequestInAt: t0.Add(time.Hour).In(time.FixedZone("ICT", 7*3600)), Status: 200, Succeeded: true}}
		for _, r := range want {
			s.Add(r)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, dir, dsn, Options{})
		defer s.Close(t.Context())
		p, err := s.Query(t.Context(), Filter{})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) != len(want) || p.Next != "" {
			t.Fatalf("got %d records, next %q; want %d, none", len(p.Records), p.Next, len(want))
		}
		for i, got := range p.Records {
			w := *want[i]
			w.ID = got.ID
			w.RequestInAt = w.RequestInAt.UTC()
			if got.ID < 1 {
				t.Errorf("record %d: id %d", i, got.ID)
			}
			if !reflect.DeepEqual(got, w) {
				t.Errorf("record %d:\n got %+v\nwant %+v", i, got, w)
			}
		}
	})
}

// TestCloseFlushes: what is queued when Close is called is stored.
func TestCloseFlushes(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	s := openStore(t, dir, "", Options{Registerer: reg})
	const n = 2000
	for i := range n {
		s.Add(fullRecord(i))
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := s.stored.Load(); got != n {
		t.Fatalf("stored %d, want %d", got, n)
	}
	s.Add(fullRecord(0)) // after Close: ignored, no panic
	if len(s.queue) != 0 {
		t.Fatal("a record added after Close was queued")
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	s = openStore(t, dir, "", Options{Registerer: reg}) // the first one's metrics are gone
	defer s.Close(t.Context())
	if got := count(t, s, Filter{}); got != n {
		t.Fatalf("after reopening: %d records, want %d", got, n)
	}
}

// count pages through all records f selects.
func count(t *testing.T, s *Store, f Filter) int {
	t.Helper()
	f.Limit = MaxLimit
	n := 0
	for {
		p, err := s.Query(t.Context(), f)
		if err != nil {
			t.Fatal(err)
		}
		n += len(p.Records)
		if p.Next == "" {
			return n
		}
		f.After = p.Next
	}
}

// metric reads a sampan_opmon_* value from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			if m.Counter != nil {
				return m.Counter.GetValue()
			}
			return m.Gauge.GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestQueryFiltersAndPaging: every filter selects exactly the matching
// records, and paging through them in pages of every size gives each once,
// in (request time, id) order, ties in time included.
func TestQueryFiltersAndPaging(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		s := openStore(t, t.TempDir(), dsn, Options{})
		defer s.Close(t.Context())
		var all []*Record
		for i := range 120 {
			r := fullRecord(i / 3) // three records at each time
			r.XRoadID = fmt.Sprintf("xrid-%d", i)
			r.Client = []string{"VN/GOV/A/a", "VN/GOV/B/b"}[i%2]
			r.Service = []string{"VN/GOV/S/s1", "VN/GOV/S/s2", "VN/GOV/S/s3"}[i%3]
			r.Side = []string{"consumer", "provider"}[i/60]
			if i%4 == 0 {
				r.Status, r.Succeeded, r.ErrorType = 200, true, ""
			} else if i%4 == 1 {
				r.Status, r.ErrorType = 403, "Server.ServerProxy.AccessDenied"
			}
			all = append(all, r)
			s.Add(r)
		}
		waitStored(t, s, len(all))
		yes, no := true, false
		for _, tc := range []struct {
			name string
			f    Filter
			keep func(r *Record) bool
		}{
			{"all", Filter{}, func(*Record) bool { return true }},
			{"from", Filter{From: t0.Add(10 * time.Second)}, func(r *Record) bool { return !r.RequestInAt.Before(t0.Add(10 * time.Second)) }},
			{"to", Filter{To: t0.Add(10 * time.Second)}, func(r *Record) bool { return r.RequestInAt.Before(t0.Add(10 * time.Second)) }},
			{"client", Filter{Client: "VN/GOV/B/b"}, func(r *Record) bool { return r.Client == "VN/GOV/B/b" }},
			{"service", Filter{Service: "VN/GOV/S/s2"}, func(r *Record) bool { return r.Service == "VN/GOV/S/s2" }},
			{"side", Filter{Side: "provider"}, func(r *Record) bool { return r.Side == "provider" }},
			{"status", Filter{Status: 403}, func(r *Record) bool { return r.Status == 403 }},
			{"status ok", Filter{Status: 200}, func(r *Record) bool { return r.Status == 200 }},
			{"error type", Filter{ErrorType: "Server.ServerProxy.AccessDenied"}, func(r *Record) bool { return r.ErrorType == "Server.ServerProxy.AccessDenied" }},
			{"succeeded", Filter{Succeeded: &yes}, func(r *Record) bool { return r.Succeeded }},
			{"failed", Filter{Succeeded: &no}, func(r *Record) bool { return !r.Succeeded }},
			{"combined", Filter{From: t0.Add(5 * time.Second), To: t0.Add(35 * time.Second), Client: "VN/GOV/A/a", Succeeded: &no},
				func(r *Record) bool {
					return !r.RequestInAt.Before(t0.Add(5*time.Second)) && r.RequestInAt.Before(t0.Add(35*time.Second)) && r.Client == "VN/GOV/A/a" && !r.Succeeded
				}},
			{"none", Filter{Client: "nobody"}, func(*Record) bool { return false }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var want []string
				for _, r := range all {
					if tc.keep(r) {
						want = append(want, r.XRoadID)
					}
				}
				for _, limit := range []int{1, 7, 40, 1000} {
					f := tc.f
					f.Limit = limit
					var got []string
					var last Record
					for pages := 0; ; pages++ {
						p, err := s.Query(t.Context(), f)
						if err != nil {
							t.Fatal(err)
						}
						if len(p.Records) > limit {
							t.Fatalf("limit %d: page of %d", limit, len(p.Records))
						}
						for _, r := range p.Records {
							if last.ID != 0 && (r.RequestInAt.Before(last.RequestInAt) || r.RequestInAt.Equal(last.RequestInAt) && r.ID <= last.ID) {
								t.Fatalf("limit %d: record %d at %v after %d at %v", limit, r.ID, r.RequestInAt, last.ID, last.RequestInAt)
							}
							last = r
							got = append(got, r.XRoadID)
						}
						if p.Next == "" {
							break
						}
						if pages > len(all) {
							t.Fatal("paging does not end")
						}
						f.After = p.Next
					}
					if strings.Join(got, ",") != strings.Join(want, ",") {
						t.Fatalf("limit %d:\n got %v\nwant %v", limit, got, want)
					}
				}
			})
		}
	})
}

// waitStored waits until the writer has stored n records.
func waitStored(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.stored.Load() < uint64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("stored %d of %d after 10s", s.stored.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestBadFilters(t *testing.T) {
	s := openStore(t, t.TempDir(), "", Options{})
	defer s.Close(t.Context())
	for _, tc := range []struct {
		f    Filter
		want string
	}{
		{Filter{Limit: MaxLimit + 1}, "limit"},
		{Filter{Limit: -1}, "limit"},
		{Filter{Side: "both"}, "side"},
		{Filter{Status: 42}, "status"},
		{Filter{From: t0, To: t0.Add(-time.Second)}, "to is before from"},
		{Filter{After: "not-a-cursor"}, "after"},
		{Filter{After: cursor{at: 1, id: 0}.String()}, "after"},
		{Filter{Client: strings.Repeat("x", maxValue+1)}, "client"},
		{Filter{Provider: "VN/GOV/MOF"}, "provider: not a subsystem"},
		{Filter{Provider: "VN/GOV/MOF/a/b"}, "provider: not a subsystem"},
		{Filter{Party: "VN/GOV"}, "party: not a member or subsystem"},
		{Filter{Party: "VN/GOV/M%F"}, "party: not a member or subsystem"},
	} {
		_, err := s.Query(t.Context(), tc.f)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), ErrBadFilter.Error()) {
			t.Errorf("%+v: err %v, want a bad filter naming %q", tc.f, err, tc.want)
		}
	}
}

// TestRetention: Purge deletes the records older than its bound and keeps
// the rest; the purger does so at the start, with the retention and clock
// of the options.
func TestRetention(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		dir := t.TempDir()
		reg := prometheus.NewRegistry()
		s := openStore(t, dir, dsn, Options{Registerer: reg})
		for i := range 10 {
			s.Add(fullRecord(i * 60)) // one a minute from t0
		}
		waitStored(t, s, 10)
		n, err := s.Purge(t.Context(), t0.Add(3*time.Minute))
		if err != nil || n != 3 {
			t.Fatalf("purge: %d, %v; want 3", n, err)
		}
		if got := metric(t, reg, "sampan_opmon_purged_total"); got != 3 {
			t.Fatalf("purged_total %v", got)
		}
		p, err := s.Query(t.Context(), Filter{})
		if err != nil || len(p.Records) != 7 || !p.Records[0].RequestInAt.Equal(t0.Add(3*time.Minute)) {
			t.Fatalf("after purge: %d records, %v", len(p.Records), err)
		}
		if err := s.Close(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Retention one hour, at t0+1h5m: the records of the first five
		// minutes go at the start.
		s = openStore(t, dir, dsn, Options{Retention: time.Hour, Clock: func() time.Time { return t0.Add(65 * time.Minute) }})
		defer s.Close(t.Context())
		deadline := time.Now().Add(10 * time.Second)
		for count(t, s, Filter{}) != 5 {
			if time.Now().After(deadline) {
				t.Fatalf("%d records after the start's purge, want 5", count(t, s, Filter{}))
			}
			time.Sleep(20 * time.Millisecond)
		}
		if got := count(t, s, Filter{To: t0.Add(5 * time.Minute)}); got != 0 {
			t.Fatalf("%d records before the retention bound kept", got)
		}
	})
}

// TestFullQueueDrops: while the writer is held up (another connection
// holds SQLite's write lock), Add neither blocks nor fails: what does not
// fit the queue is dropped, counted and warned about once; the rest is
// stored when the writer can go on.
func TestFullQueueDrops(t *testing.T) {
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	var warnings atomic.Int32
	log := slog.New(countHandler{&warnings})
	s := openStore(t, dir, "", Options{Registerer: reg, QueueSize: 16, Logger: log})
	lock, err := s.db.Conn(t.Context()) // a connection of the pool, not the writer's
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lock.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	// The writer takes a first record and waits for the lock in its flush.
	s.Add(fullRecord(0))
	time.Sleep(2 * flushEvery)
	const n = 5000
	start := time.Now()
	for i := range n {
		s.Add(fullRecord(i))
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%d Adds with a full queue took %v", n, d)
	}
	dropped := metric(t, reg, "sampan_opmon_dropped_total")
	if dropped < n-16 || dropped > n {
		t.Fatalf("dropped %v of %d with a queue of 16", dropped, n)
	}
	if got := metric(t, reg, "sampan_opmon_queue_depth"); got != 16 {
		t.Fatalf("queue depth %v, want 16", got)
	}
	if w := warnings.Load(); w != 1 {
		t.Fatalf("%d warnings for one burst of drops, want 1", w)
	}
	if _, err := lock.ExecContext(t.Context(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	lock.Close()
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if stored := s.stored.Load(); stored+uint64(dropped) != n+1 {
		t.Fatalf("stored %d + dropped %v, want %d", stored, dropped, n+1)
	}
}

// countHandler counts warnings.
type countHandler struct{ n *atomic.Int32 }

func (h countHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Level == slog.LevelWarn {
		h.n.Add(1)
	}
	return nil
}
func (h countHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countHandler) WithGroup(string) slog.Handler      { return h }

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{}, "sqlite_path or dsn"},
		{Options{SQLitePath: "x", Retention: -1}, "retention must be positive"},
		{Options{SQLitePath: "x", Retention: time.Second}, "retention"},
		{Options{SQLitePath: "x", QueueSize: -1}, "queue_size"},
		{Options{SQLitePath: "x", PurgeInterval: time.Millisecond}, "purge_interval"},
		{Options{DSN: "mysql://x"}, "dsn"},
	} {
		_, err := Open(t.Context(), tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err %v, want one naming %s", tc.o, err, tc.want)
		}
	}
}

// TestDetail: the packed fields survive storing, times before the request
// time and odd step names included, and a damaged detail is refused.
func TestDetail(t *testing.T) {
	r := fullRecord(3)
	r.RequestOutAt = r.RequestInAt.Add(-time.Hour)
	r.Steps = append(r.Steps, Step{"", 0})
	in := r.RequestInAt.UnixMicro()
	b := appendDetail(nil, r, in)
	var got Record
	if err := readDetail(&got, b, in); err != nil {
		t.Fatal(err)
	}
	got.RequestInAt, got.Side, got.Client, got.Service, got.Status, got.Succeeded, got.ErrorType = r.RequestInAt, r.Side, r.Client, r.Service, r.Status, r.Succeeded, r.ErrorType
	if !reflect.DeepEqual(&got, r) {
		t.Fatalf("\n got %+v\nwant %+v", got, *r)
	}
	for _, bad := range [][]byte{nil, b[:len(b)-1], append(b[:len(b):len(b)], 0), append([]byte{2}, b[1:]...)} {
		if err := readDetail(&Record{}, bad, in); err == nil {
			t.Errorf("damaged detail %x read", bad)
		}
	}
	if got := string(appendSteps(nil, []Step{{"a=b;c%", time.Millisecond}, {"send", 5 * time.Microsecond}})); got != "a%3Db%3Bc%25=1000;send=5" {
		t.Errorf("steps text %q", got)
	}
}

// BenchmarkAdd is the cost of a record: Add and its share of the writer's
// batch, on SQLite.
func BenchmarkAdd(b *testing.B) {
	s := openStore(b, b.TempDir(), "", Options{QueueSize: maxQueueSize})
	rec := fullRecord(1)
	rec.ErrorType, rec.ErrorMessage, rec.Status, rec.Succeeded = "", "", 200, true
	b.ReportAllocs()
	cpu0 := cpuTime(b)
	b.ResetTimer()
	for i := range b.N { // not b.Loop: Close's flush is part of the cost
		s.Add(rec)
		if i%1024 == 0 {
			for len(s.queue) > maxQueueSize/2 {
				time.Sleep(time.Millisecond)
			}
		}
	}
	if err := s.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	// The machine's other work does not count in the process's CPU time,
	// as it does in the wall time of ns/op.
	b.ReportMetric(float64(cpuTime(b)-cpu0)/float64(b.N), "cpu-ns/op")
	if d := s.dropped.Load(); d != 0 {
		b.Fatalf("%d dropped", d)
	}
}

// cpuTime is the process's CPU time so far (user and system).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestSQLiteSettings: the records' database does not wait for the disk at
// each commit (synchronous NORMAL under WAL) and has 16 KiB pages.
func TestSQLiteSettings(t *testing.T) {
	s := openStore(t, t.TempDir(), "", Options{})
	defer s.Close(t.Context())
	var sync, page int
	var mode string
	if err := s.db.QueryRowContext(t.Context(), "PRAGMA synchronous").Scan(&sync); err != nil {
		t.Fatal(err)
	}
	s.db.QueryRowContext(t.Context(), "PRAGMA page_size").Scan(&page)
	s.db.QueryRowContext(t.Context(), "PRAGMA journal_mode").Scan(&mode)
	if sync != 1 || page != 16384 || mode != "wal" {
		t.Fatalf("synchronous %d, page_size %d, journal_mode %s; want 1, 16384, wal", sync, page, mode)
	}
}

// TestQueryPlans: each filter is served by its index, in page order with
// no sort, the failures-only indexes included (a query names their
// condition).
func TestQueryPlans(t *testing.T) {
	s := openStore(t, t.TempDir(), "", Options{})
	defer s.Close(t.Context())
	for _, tc := range []struct {
		f     Filter
		index string
	}{
		{Filter{}, "opmon_records_at"},
		{Filter{From: t0, To: t0.Add(time.Hour)}, "opmon_records_at"},
		{Filter{Client: "c"}, "opmon_records_client"},
		{Filter{Service: "s"}, "opmon_records_service"},
		{Filter{Status: 403}, "opmon_records_status"},
		{Filter{ErrorType: "e"}, "opmon_records_error"},
		// PR-OPMON's selections: an interval of seconds, then a provider
		// or a party, filtered over the time index's rows.
		{Filter{From: t0, To: t0.Add(time.Hour), Provider: "VN/GOV/MOF/registry"}, "opmon_records_at"},
		{Filter{From: t0, To: t0.Add(time.Hour), Party: "VN/GOV/MOF/registry"}, "opmon_records_at"},
	} {
		tc.f.Limit = 10
		q, args, err := query(tc.f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := s.db.QueryContext(t.Context(), "EXPLAIN QUERY PLAN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			rows.Scan(&id, &parent, &unused, &detail)
			plan = append(plan, detail)
		}
		rows.Close()
		p := strings.Join(plan, "; ") + " "
		if !strings.Contains(p, "INDEX "+tc.index+" ") || strings.Contains(p, "TEMP B-TREE") {
			t.Errorf("%+v: plan %q, want %s and no sort", tc.f, p, tc.index)
		}
	}
}

// TestCloseGivesUp: when the database stays locked, Close returns once its
// context ends, having stopped the writer.
func TestCloseGivesUp(t *testing.T) {
	s := openStore(t, t.TempDir(), "", Options{})
	lock, err := s.db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(t.Context(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	defer lock.ExecContext(context.Background(), "ROLLBACK")
	for i := range 100 {
		s.Add(fullRecord(i))
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = s.Close(ctx)
	if err == nil || !strings.Contains(err.Error(), "deadline") {
		t.Fatalf("Close on a locked database: %v", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("Close took %v", d)
	}
	if s.stored.Load() != 0 || s.dropped.Load() != 100 {
		t.Fatalf("stored %d, dropped %d; want 0, 100", s.stored.Load(), s.dropped.Load())
	}
}
