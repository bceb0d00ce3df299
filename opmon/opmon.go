// Package opmon keeps a gateway's operational-monitoring records: one per
// exchange and side, with the fields X-Road's operational monitoring
// (PR-OPMON) records — times in and out, identifiers, sizes, status,
// fault and the duration of each pipeline step.
//
// Monitoring records are not evidence. Add never blocks an exchange and
// never fails one: records wait in a bounded queue and one writer stores
// them in batches; when the queue is full a record is dropped and counted.
// The records live in a database of their own (SQLite, or a table of a
// PostgreSQL database) with their own retention, apart from the gateway's
// state and its message log.
package opmon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/store"
)

// Record is what a gateway knows of one exchange on one side.
type Record struct {
	// ID identifies a stored record; Query sets it, Add ignores it.
	ID          int64
	Side        string // "consumer" | "provider"
	Gateway     string // this gateway
	PeerGateway string // the other gateway, "" when never chosen
	// The times the request came in and went out and the response came
	// in and went out; zero when not reached. A record added with a zero
	// RequestInAt is stored with the time the writer took it.
	RequestInAt, RequestOutAt, ResponseInAt, ResponseOutAt time.Time
	Client, Service                                        string // "" when not parsed
	XRoadID, RequestID, UserID, Issue, RepresentedParty    string
	Protocol                                               string // "r1"
	Method, Path                                           string
	RequestBytes, ResponseBytes                            int64
	Status                                                 int // HTTP status given to the caller
	Succeeded                                              bool
	ErrorType, ErrorMessage                                string
	Traceparent                                            string
	Steps                                                  []Step // in the order run
}

// Step is one named step of an exchange's pipeline and how long it took.
// Durations are stored to the microsecond.
type Step struct {
	Name     string
	Duration time.Duration
}

// Options configure a Store. The zero value of each field but the
// database's location means its default.
type Options struct {
	// SQLitePath is the SQLite database file of the records (e.g.
	// <gateway dir>/opmon.db): a file of its own, so that its writes
	// never contend with the state database's or the message log's.
	// Used unless DSN is set.
	SQLitePath string
	// DSN, a postgres:// or postgresql:// URL, keeps the records in
	// PostgreSQL instead, in the table opmon_records.
	DSN string
	// Retention is how long a record is kept, by its request time
	// (default 7 days, at least a minute). Records cannot be kept for
	// ever: a negative value is refused.
	Retention time.Duration
	// PurgeInterval is how often records past retention are deleted
	// (default 1 hour, at least a second).
	PurgeInterval time.Duration
	// QueueSize is how many records may wait for the writer (default
	// 8192, at most 1,048,576); beyond it Add drops records.
	QueueSize int
	// Registerer, when not nil, receives the sampan_opmon_* metrics.
	Registerer prometheus.Registerer
	// Logger receives warnings of dropped records (the queue full, a
	// write failed), at most one every ten seconds; nil discards them.
	Logger *slog.Logger
	// Clock returns the current time (default time.Now); tests set it.
	Clock func() time.Time
}

// Defaults and bounds of Options.
const (
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultPurgeInterval = time.Hour
	DefaultQueueSize     = 8192
	maxQueueSize         = 1 << 20
)

// SetDefaults fills the fields left zero.
func (o *Options) SetDefaults() {
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.PurgeInterval == 0 {
		o.PurgeInterval = DefaultPurgeInterval
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
}

// Validate checks the options after SetDefaults, naming the field at
// fault.
func (o *Options) Validate() error {
	switch {
	case o.DSN == "" && o.SQLitePath == "":
		return errors.New("opmon: sqlite_path or dsn is required")
	case o.DSN != "" && !store.IsPostgres(o.DSN):
		return errors.New("opmon: dsn must be a postgres:// or postgresql:// URL")
	case o.Retention < 0:
		return errors.New("opmon: retention must be positive: monitoring records are not kept for ever")
	case o.Retention < time.Minute:
		return fmt.Errorf("opmon: retention %v is under a minute", o.Retention)
	case o.PurgeInterval < time.Second:
		return fmt.Errorf("opmon: purge_interval %v is under a second", o.PurgeInterval)
	case o.QueueSize < 1 || o.QueueSize > maxQueueSize:
		return fmt.Errorf("opmon: queue_size %d is outside 1..%d", o.QueueSize, maxQueueSize)
	}
	return nil
}

// Store keeps operational-monitoring records. Its methods are safe for
// concurrent use.
type Store struct {
	db    *store.DB
	opts  Options
	log   *slog.Logger
	now   func() time.Time
	queue chan *Record
	kick  chan struct{} // a batch's worth waits: write it now
	stop  chan struct{}

	// ctx ends the writer's and the purger's database calls when Close
	// runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed atomic.Bool

	w writer

	// started is when Open ran: X-Road's monitoring startup time.
	started time.Time

	stored, dropped, purged atomic.Uint64
	lastWarn                atomic.Int64 // Unix ns of the last drop warning
	metrics                 []prometheus.Collector
	reg                     prometheus.Registerer
}

// Open opens (creating when needed) the record store and starts its
// writer and its purger; Close stops them.
func Open(ctx context.Context, opts Options) (*Store, error) {
	opts.SetDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	db, err := store.OpenDSNNamed(ctx, SchemaName, opts.DSN, filepath.Clean(opts.SQLitePath), sqliteSchema, pgSchema,
		// Not evidence: a crash may lose the last commits, never
		// corrupt the database, and commits need not wait for the disk.
		// 16 KiB pages: a commit writes a quarter of the pages, each a
		// system call, to the WAL and again at the checkpoint. A 4 MiB
		// cache a connection: the writes append, and a 16 MiB one cost
		// the gateway as much resident memory for little.
		"synchronous(NORMAL)", "cache_size(-4096)", "page_size(16384)")
	if err != nil {
		return nil, fmt.Errorf("open monitoring records: %w", err)
	}
	s := &Store{db: db, opts: opts, log: opts.Logger, now: opts.Clock, started: opts.Clock(),
		queue: make(chan *Record, opts.QueueSize), kick: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := s.register(opts.Registerer); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.w.prepare(ctx, db); err != nil {
		s.unregister()
		db.Close()
		return nil, fmt.Errorf("open monitoring records: %w", err)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(2)
	go s.write()
	go s.purgeEvery()
	return s, nil
}

// Started returns when the store was opened: the monitoring startup
// time of X-Road's health data.
func (s *Store) Started() time.Time { return s.started }

// Add hands a record to the writer and returns at once; the caller must
// not change the record afterwards. When the queue is full the record is
// dropped, counted in sampan_opmon_dropped_total, and a warning logged (at
// most every dropWarnEvery). Add after Close does nothing.
func (s *Store) Add(r *Record) {
	if r == nil || s.closed.Load() {
		return
	}
	select {
	case s.queue <- r:
		// The writer sleeps between batches rather than waking for each
		// record: it is woken early only once a batch's worth waits.
		if len(s.queue) >= maxBatch {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	default:
		s.drop(1, "monitoring queue full")
	}
}

// dropWarnEvery bounds how often dropped records are logged, whether the
// queue was full or a write failed.
const dropWarnEvery = 10 * time.Second

func (s *Store) drop(n int, why string) {
	total := s.dropped.Add(uint64(n))
	now := s.now().UnixNano()
	last := s.lastWarn.Load()
	if now-last < int64(dropWarnEvery) || !s.lastWarn.CompareAndSwap(last, now) {
		return
	}
	s.log.Warn("monitoring records dropped", "reason", why, "dropped_total", total)
}

// Close stores what is queued, stops the writer and the purger and closes
// the database. When ctx ends first, what is still queued is lost.
// Add after Close does nothing; Close twice returns nil.
func (s *Store) Close(ctx context.Context) error {
	if !s.closed.CompareAndSwap(false, true) {
		return nil
	}
	close(s.stop)
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		s.cancel() // ends the writer's and the purger's database calls
		<-done
		err = fmt.Errorf("close monitoring records: %w", ctx.Err())
	}
	s.cancel()
	s.w.close()
	s.unregister()
	if cerr := s.db.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close monitoring records: %w", cerr)
	}
	return err
}

// register adds the metrics to reg (none when nil).
func (s *Store) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	counter := func(name, help string, v *atomic.Uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 { return float64(v.Load()) })
	}
	cs := []prometheus.Collector{
		counter("sampan_opmon_records_total", "Operational-monitoring records stored.", &s.stored),
		counter("sampan_opmon_dropped_total", "Operational-monitoring records dropped: the queue was full, or their write failed.", &s.dropped),
		counter("sampan_opmon_purged_total", "Operational-monitoring records deleted past retention.", &s.purged),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "sampan_opmon_queue_depth", Help: "Operational-monitoring records waiting for the writer."},
			func() float64 { return float64(len(s.queue)) }),
	}
	for i, c := range cs {
		if err := reg.Register(c); err != nil {
			for _, d := range cs[:i] {
				reg.Unregister(d)
			}
			return fmt.Errorf("register monitoring metrics: %w", err)
		}
	}
	s.reg, s.metrics = reg, cs
	return nil
}

func (s *Store) unregister() {
	for _, c := range s.metrics {
		s.reg.Unregister(c)
	}
	s.metrics = nil
}
