// Package msglog is the gateways' message log: one record per exchange,
// kept in a record index (SQLite or PostgreSQL), whose SHA-256 digest is
// a leaf of an append-only Merkle log in the C2SP tlog-tiles layout
// (transparency-dev/tessera, POSIX storage), with checkpoints signed by
// the gateway as C2SP signed notes. A record is durable (in a write-ahead
// segment) before the exchange it describes is answered; its row and leaf
// follow within the merge delay; the log can be checked offline.
// Records past their retention are purged, the purge itself logged, while
// their leaves stay so that proofs of what remains still verify.
package msglog

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/store"
)

// Files in the log directory.
const (
	// TilesDir holds the tlog-tiles tree: checkpoint, tile/, tile/entries/.
	TilesDir = "tiles"
	// SignerKeyFile is the checkpoint-signing key (a note signer key, 0600).
	SignerKeyFile = "checkpoint.key"
	// VerifierKeyFile is its public half, for offline verification.
	VerifierKeyFile = "checkpoint.pub"
)

// RecordVersion is the version of the record format written. Version 3
// adds what rebuilds the signed request head (RequestHeadVersion) from
// the record: purpose, legal basis, represented party, signed time,
// nonce, the other headers' digest and the signed header names. Version
// 2 records (whose request signatures used the version 1 head) still
// load, and `sampan log verify-bundle` fails them; version 1 logs
// (records as leaves) are not read.
const RecordVersion = 3

// minRecordVersion is the oldest record version read.
const minRecordVersion = 2

// Record kinds.
const (
	KindExchange = "exchange"
	KindPurge    = "purge"
	// KindDenial records a request the policy refused: no data was
	// exchanged, so it carries no response and perhaps no signature.
	KindDenial = "denial"
)

// MaxRecordSize bounds one record in bytes.
const MaxRecordSize = 64 << 10

// Record is what the log keeps of one exchange at one gateway.
type Record struct {
	Version int `json:"v"`
	// Kind is "exchange", or "purge" for the record of a purge.
	Kind string `json:"kind"`
	// Side is "consumer" (the client's gateway) or "provider".
	Side        string `json:"side"`
	Gateway     string `json:"gateway"`
	PeerGateway string `json:"peer_gateway"`
	XRoadID     string `json:"x_road_id"`
	RequestID   string `json:"request_id"`
	Client      string `json:"client"`
	Service     string `json:"service"`
	UserID      string `json:"user_id,omitempty"`
	Issue       string `json:"issue,omitempty"`
	Method      string `json:"method"`
	Path        string `json:"path"`
	Query       string `json:"query,omitempty"`
	// Purpose, LegalBasis and RepresentedParty are the request's
	// X-Road-Purpose, X-Road-Legal-Basis and X-Road-Represented-Party
	// headers as signed (empty when absent).
	Purpose          string `json:"purpose,omitempty"`
	LegalBasis       string `json:"legal_basis,omitempty"`
	RepresentedParty string `json:"represented_party,omitempty"`
	// RequestAt is when the gateway received the request; ResponseAt when
	// it had the whole response.
	RequestAt  time.Time `json:"request_at"`
	ResponseAt time.Time `json:"response_at"`
	Status     int       `json:"status"`
	// Digests (hex SHA-256) of the canonical signed heads and the bodies.
	RequestHeadSHA256  string `json:"request_head_sha256"`
	RequestBodySHA256  string `json:"request_body_sha256"`
	RequestBytes       int64  `json:"request_bytes"`
	ResponseHeadSHA256 string `json:"response_head_sha256"`
	ResponseBodySHA256 string `json:"response_body_sha256"`
	ResponseBytes      int64  `json:"response_bytes"`
	RequestHash        string `json:"request_hash"`
	RequestSignature   string `json:"request_signature"`
	RequestSignerCert  string `json:"request_signer_sha256"`
	ResponseSignature  string `json:"response_signature"`
	ResponseSignerCert string `json:"response_signer_sha256"`
	// RequestSignedAt and RequestNonce are the time and nonce the
	// consumer's gateway signed the request with, as sent; the provider's
	// gateway refuses a request outside its clock-skew tolerance or with
	// a nonce it has seen.
	RequestSignedAt string `json:"request_signed_at,omitempty"`
	RequestNonce    string `json:"request_nonce,omitempty"`
	// RequestHeadersSHA256 is the hex SHA-256 of the canonical block of
	// the signed request headers other than RequiredSignedHeaders.
	RequestHeadersSHA256 string `json:"request_headers_sha256,omitempty"`
	// RequestSignedHeaders and ResponseSignedHeaders are the lower-case
	// names each signature covers, sorted.
	RequestSignedHeaders  []string `json:"request_signed_headers,omitempty"`
	ResponseSignedHeaders []string `json:"response_signed_headers,omitempty"`
	// Decision is the policy decision, once policies are decided per
	// request; null until then.
	Decision *Decision `json:"decision"`
	// Bodies names the encrypted body files, when this gateway keeps the
	// bodies of the exchange (see StoreBodies).
	Bodies string `json:"bodies,omitempty"`

	// A purge record says which records were purged: those logged before
	// PurgedBefore, PurgedCount of them, whose digests (in leaf order)
	// hash to PurgedDigestsSHA256.
	PurgedBefore        *time.Time `json:"purged_before,omitempty"`
	PurgedCount         int        `json:"purged_count,omitempty"`
	PurgedDigestsSHA256 string     `json:"purged_digests_sha256,omitempty"`
}

// Decision is a policy decision as the log keeps it, with what it was
// made on: the data class and flags of the service, where the data went,
// the declared purpose and legal basis.
type Decision struct {
	Allow         bool     `json:"allow"`
	Rules         []string `json:"rules"`
	Agreement     string   `json:"agreement,omitempty"`
	PolicyVersion string   `json:"policy_version"`
	DataClass     string   `json:"data_class,omitempty"`
	Flags         []string `json:"flags,omitempty"`
	CrossBorder   bool     `json:"cross_border"`
	Destination   string   `json:"destination,omitempty"`
	Purpose       string   `json:"purpose,omitempty"`
	LegalBasis    string   `json:"legal_basis,omitempty"`
	Message       string   `json:"message,omitempty"`
	// References are the agreement's references ("kind: reference") and
	// RetentionDays its retention duty, as they stood when it was decided.
	References    []string `json:"references,omitempty"`
	RetentionDays int      `json:"retention_days,omitempty"`
}

// maxField bounds each text field of a record.
const maxField = 8 << 10

// checkText refuses fields that are not valid UTF-8 or too long: a
// database would refuse them, and with them every record committed in
// the same transaction.
func (r *Record) checkText() error {
	for _, f := range [...]struct{ name, v string }{
		{"x_road_id", r.XRoadID}, {"request_id", r.RequestID}, {"client", r.Client}, {"service", r.Service},
		{"user_id", r.UserID}, {"issue", r.Issue}, {"method", r.Method}, {"path", r.Path}, {"query", r.Query},
		{"purpose", r.Purpose}, {"legal_basis", r.LegalBasis}, {"represented_party", r.RepresentedParty},
		{"request_signed_at", r.RequestSignedAt}, {"request_nonce", r.RequestNonce},
		{"gateway", r.Gateway}, {"peer_gateway", r.PeerGateway}, {"side", r.Side}, {"bodies", r.Bodies},
	} {
		if len(f.v) > maxField || !utf8.ValidString(f.v) || strings.IndexByte(f.v, 0) >= 0 {
			return fmt.Errorf("record field %s is not UTF-8 text of at most %d bytes", f.name, maxField)
		}
	}
	return nil
}

// Validate checks the fields every record must have.
func (r *Record) Validate() error {
	if err := r.checkText(); err != nil {
		return err
	}
	if r.Version < minRecordVersion || r.Version > RecordVersion {
		return fmt.Errorf("record version %d, want %d to %d", r.Version, minRecordVersion, RecordVersion)
	}
	if r.Kind == KindPurge {
		if r.PurgedBefore == nil || r.PurgedCount <= 0 || len(r.PurgedDigestsSHA256) != 64 || r.Gateway == "" {
			return errors.New("purge record lacks its period, count, digest or gateway")
		}
		return nil
	}
	if r.Kind == KindDenial {
		if r.XRoadID == "" || r.Client == "" || r.Service == "" || r.Gateway == "" || r.Decision == nil || r.Decision.Allow {
			return errors.New("denial record lacks an id, client, service, gateway or its refusing decision")
		}
		return nil
	}
	switch {
	case r.Kind != KindExchange:
		return fmt.Errorf("record kind %q", r.Kind)
	case r.Side != "consumer" && r.Side != "provider":
		return fmt.Errorf("record side %q", r.Side)
	case r.XRoadID == "" || r.Client == "" || r.Service == "" || r.Gateway == "":
		return errors.New("record lacks an id, client, service or gateway")
	case r.RequestSignature == "" || r.ResponseSignature == "":
		return errors.New("record lacks a signature")
	}
	return nil
}

// ParseRecord decodes a log entry strictly.
func ParseRecord(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("record of %d bytes exceeds %d", len(b), MaxRecordSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("decode record: trailing data")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Options tune the log. Zero values take the defaults.
type Options struct {
	// BatchMaxAge is how long a leaf may wait for others to be written
	// with it (default 100ms); BatchMaxSize caps a batch (default 4096).
	// Leaves are not on the path of an exchange: its record is durable in
	// a write-ahead segment before it is acknowledged, its row in the
	// index and then its leaf follow.
	BatchMaxAge  time.Duration
	BatchMaxSize uint
	// MaxMergeDelay is how far the index or the tree may fall behind the
	// acknowledged records before new records are refused (default 10s).
	MaxMergeDelay time.Duration
	// CheckpointInterval is how often a signed checkpoint is published
	// (default 1s).
	CheckpointInterval time.Duration
	// IndexDSN selects a PostgreSQL record index (postgres:// URL);
	// empty means SQLite in the log directory.
	IndexDSN string
	// Retention is how long records and bodies are kept; zero keeps them
	// for ever. PurgeInterval is how often old ones are purged (default
	// 1h).
	Retention     time.Duration
	PurgeInterval time.Duration
	// Registerer, when not nil, receives the log's metrics
	// (sampan_msglog_*); nil keeps none. Each log needs its own: Open
	// fails when the metrics are registered there already.
	Registerer prometheus.Registerer
}

// ErrLogging is wrapped by every failure to log an exchange; the exchange
// must then fail (fail closed).
var ErrLogging = errors.New("message log")

// Log is an open message log.
type Log struct {
	dir         string
	add         tessera.AddFn
	reader      tessera.LogReader
	shutdown    func(context.Context) error
	cancel      context.CancelFunc
	origin      string
	name        string
	db          *store.DB
	idx         *indexWriter
	wal         *walWriter
	log         *slog.Logger
	bodyKey     []byte
	purgeMu     sync.Mutex
	noncePurged atomic.Int64 // unix ms of the last purge of expired nonces
	now         func() time.Time
	certs       sync.Map // fingerprints of certificates already stored
	quotas      quotas
	integ       *integrator
	maxDelay    time.Duration

	refused atomic.Uint64 // records refused before their write (metrics)
	stamped atomic.Int64  // unix ns of the newest time-stamp (0: none)

	// bg is cancelled when Close begins: background work stops.
	bg       context.Context
	bgCancel context.CancelFunc
	done     chan struct{}
	wg       sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating on first use) the log in dir. name identifies the
// log in its checkpoints, e.g. the gateway identifier.
func Open(ctx context.Context, dir, name string, o Options, log *slog.Logger) (*Log, error) {
	if o.BatchMaxAge == 0 {
		o.BatchMaxAge = 100 * time.Millisecond
	}
	if o.BatchMaxSize == 0 {
		o.BatchMaxSize = 4096
	}
	if o.MaxMergeDelay == 0 {
		o.MaxMergeDelay = 10 * time.Second
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = time.Second
	}
	if o.PurgeInterval == 0 {
		o.PurgeInterval = time.Hour
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(filepath.Join(dir, TilesDir), 0o700); err != nil {
		return nil, fmt.Errorf("%w: create %s: %w", ErrLogging, dir, err)
	}
	if err := checkFormat(dir, o.IndexDSN); err != nil {
		return nil, err
	}
	signer, err := loadOrCreateSigner(dir, keyName(name))
	if err != nil {
		return nil, err
	}
	db, err := OpenIndex(ctx, dir, o.IndexDSN)
	if err != nil {
		return nil, err
	}
	// The log's background work (integration, checkpoints) lives until
	// Close, not as long as the caller's context: Close must still be
	// able to publish the last checkpoint.
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	fail := func(err error) (*Log, error) {
		cancel()
		db.Close()
		return nil, err
	}
	driver, err := posix.New(bg, posix.Config{Path: filepath.Join(dir, TilesDir)})
	if err != nil {
		return fail(fmt.Errorf("%w: open storage: %w", ErrLogging, err))
	}
	opts := tessera.NewAppendOptions().
		WithCheckpointSigner(signer).
		WithBatching(o.BatchMaxSize, o.BatchMaxAge).
		WithCheckpointInterval(o.CheckpointInterval)
	app, shutdown, reader, err := tessera.NewAppender(bg, driver, opts)
	if err != nil {
		return fail(fmt.Errorf("%w: open appender: %w", ErrLogging, err))
	}
	replayed, lastSeg, err := replayWAL(ctx, dir, db, signer.Name(), log)
	if err != nil {
		shutdown(ctx)
		return fail(fmt.Errorf("%w: write-ahead segments: %w", ErrLogging, err))
	}
	matched, leftover, size, err := reconcile(ctx, db, signer.Name(), reader)
	if err != nil {
		shutdown(ctx)
		return fail(fmt.Errorf("%w: reconcile the record index with the tree: %w", ErrLogging, err))
	}
	if replayed+matched+len(leftover) > 0 {
		log.Warn("message log recovered after an unclean stop", "records_indexed", replayed, "records_placed", matched, "records_to_append", len(leftover))
	}
	key, err := loadOrCreateBodyKey(dir)
	if err != nil {
		shutdown(ctx)
		return fail(err)
	}
	l := &Log{dir: dir, add: app.Add, reader: reader, shutdown: shutdown, cancel: cancel, origin: signer.Name(), name: name,
		db: db, log: log, bodyKey: key, now: time.Now, done: make(chan struct{}), maxDelay: o.MaxMergeDelay}
	l.bg, l.bgCancel = context.WithCancel(context.Background())
	l.integ = newIntegrator(l)
	// The leftover rows are handed over first (sequence numbers 1 to
	// len(leftover)) and take the positions from the tree's size on.
	l.idx = newIndexWriter(db, signer.Name(), log, l.integ.enqueue, l.integ.handed, int64(size)-1, size)
	var syncTime prometheus.Histogram
	if o.Registerer != nil {
		syncTime = newSyncHistogram()
	}
	l.wal = newWALWriter(dir, lastSeg, log, l.idx.enqueue, syncTime)
	l.integ.enqueue(leftover)
	go l.integ.run(l.done)
	l.noteTimestamp(newestTimestamp(dir))
	if o.Registerer != nil {
		if err := l.registerMetrics(o.Registerer, syncTime); err != nil {
			return nil, errors.Join(err, l.Close(ctx))
		}
	}
	log.Debug("message log open", "dir", dir, "origin", signer.Name(), "index", indexKind(db))
	if o.Retention > 0 {
		l.wg.Add(1)
		go l.purgeLoop(o.Retention, o.PurgeInterval)
	}
	if !db.Postgres {
		l.wg.Add(1)
		go l.quotaLoop()
	}
	return l, nil
}

func indexKind(db *store.DB) string {
	if db.Postgres {
		return "postgresql"
	}
	return "sqlite"
}

// checkFormat refuses a log written in format 1, whose records were the
// leaves themselves: it cannot be continued in format 2.
func checkFormat(dir, dsn string) error {
	if dsn != "" {
		return nil
	}
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err == nil {
		return nil
	}
	if b, err := os.ReadFile(filepath.Join(dir, TilesDir, "checkpoint")); err == nil {
		if lines := strings.SplitN(string(b), "\n", 3); len(lines) >= 2 && lines[1] != "0" {
			return fmt.Errorf("%w: %s holds a log of record format 1 (records as leaves) without a record index; keep it for its evidence and start this gateway with a new data directory", ErrLogging, dir)
		}
	}
	return nil
}

// Origin returns the log's origin line, as its checkpoints carry it.
func (l *Log) Origin() string { return l.origin }

// Append writes a record and returns once it is durable in a write-ahead
// segment; it is committed to the record index and its digest appended to
// the tree within the merge delay. It refuses (fail closed) while the
// segments, the index or the tree cannot be written or lag too far.
func (l *Log) Append(ctx context.Context, r *Record) error {
	p, err := l.Begin(r)
	if err != nil {
		return err
	}
	return p.Wait(ctx)
}

// Pending is a record handed to the log, durable once Wait returns nil.
type Pending struct {
	row *row
}

// Begin hands a record to the log and returns at once, so that the
// caller can go on with other work while the record is written; Wait
// then tells whether it became durable. A record refused here (invalid,
// too large, the log failing) is not written. Append is Begin and Wait.
func (l *Log) Begin(r *Record) (*Pending, error) {
	if r.Kind == KindPurge {
		l.refused.Add(1)
		return nil, fmt.Errorf("%w: purge records are written by Purge", ErrLogging)
	}
	b, err := r.marshal()
	if err != nil {
		l.refused.Add(1)
		return nil, err
	}
	rw, err := l.begin(r, b)
	if err != nil {
		return nil, err
	}
	return &Pending{row: rw}, nil
}

// Wait returns once the record is durable in a write-ahead segment (nil),
// or why it was not written. When ctx ends first it returns ctx's error:
// the record may still become durable. A Pending is for one goroutine.
func (p *Pending) Wait(ctx context.Context) error {
	return p.row.wait(ctx)
}

// marshal fills in the version and kind, checks and encodes a record.
func (r *Record) marshal() ([]byte, error) {
	r.Version = RecordVersion
	if r.Kind == "" {
		r.Kind = KindExchange
	}
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLogging, err)
	}
	b, ok := r.appendJSON(make([]byte, 0, r.sizeHint()))
	if !ok {
		// encoding/json says what it refuses.
		_, err := json.Marshal(r)
		if err == nil {
			err = errors.New("a time in the record cannot be encoded")
		}
		return nil, fmt.Errorf("%w: %w", ErrLogging, err)
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("%w: record of %d bytes exceeds %d", ErrLogging, len(b), MaxRecordSize)
	}
	return b, nil
}

func (l *Log) append(ctx context.Context, r *Record, b []byte) (*row, error) {
	rw, err := l.begin(r, b)
	if err != nil {
		return nil, err
	}
	return rw, rw.wait(ctx)
}

// begin hands an encoded record to the write-ahead writer.
func (l *Log) begin(r *Record, b []byte) (*row, error) {
	rw, err := l.enqueue(r, b)
	if err != nil {
		l.refused.Add(1)
		return nil, err
	}
	return rw, nil
}

// enqueue refuses the record while the log is failing or lagging, and
// otherwise hands it to the write-ahead writer.
func (l *Log) enqueue(r *Record, b []byte) (*row, error) {
	if err := l.idx.health(l.maxDelay); err != nil {
		return nil, err
	}
	if err := l.integ.health(l.maxDelay); err != nil {
		return nil, err
	}
	if err := l.wal.health(l.maxDelay); err != nil {
		return nil, err
	}
	rw := &row{digest: recordDigest(b), rec: r, data: b}
	if err := l.wal.enqueue(rw); err != nil {
		return nil, err
	}
	return rw, nil
}

// Sync waits until every record appended so far is in the index and a
// leaf of the tree.
func (l *Log) Sync(ctx context.Context) error {
	if err := l.idx.sync(ctx); err != nil {
		return err
	}
	return l.integ.wait(ctx)
}

// closeSyncMax bounds how long Close waits for acknowledged records to
// reach the index and the tree.
const closeSyncMax = 5 * time.Second

// Close publishes what is pending and stops the log. Closing again
// returns the first Close's result: an owner that fails after closing
// (a restart that cannot bind its port, say) and closes again in its
// clean-up does no harm.
func (l *Log) Close(ctx context.Context) error {
	l.closeOnce.Do(func() { l.closeErr = l.close(ctx) })
	return l.closeErr
}

func (l *Log) close(ctx context.Context) error {
	// Every record acknowledged so far goes into the index and the tree
	// first, so that a log closed in time has nothing pending. This takes
	// at most half of what ctx leaves (closeSyncMax at most), and the tree
	// is not waited for while it is failing: what does not make it stays
	// pending and is appended at the next start.
	wait := closeSyncMax
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl)/2)
	}
	sctx, scancel := context.WithTimeout(ctx, wait)
	err := l.idx.sync(sctx)
	if err == nil && !l.integ.failing() {
		err = l.integ.wait(sctx)
	}
	scancel()
	if err != nil || l.integ.failing() {
		l.log.Warn("closing the message log with records not yet in its tree; they are appended at the next start", "err", err)
	}
	close(l.done)
	l.bgCancel()
	waited := make(chan struct{})
	go func() { l.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	// Records committed from now on stay pending in the index and are
	// appended at the next start; records not committed stay in their
	// segments and are committed then.
	select {
	case <-l.integ.stopped:
	case <-ctx.Done():
	}
	err = l.shutdown(ctx)
	l.wal.close()
	l.idx.close()
	l.cancel()
	return errors.Join(err, l.db.Close())
}

// keyName turns a gateway identifier into a note key name (no spaces or
// plus signs).
func keyName(name string) string {
	return "sampan-log:" + strings.NewReplacer(" ", "_", "+", "_").Replace(name)
}

// loadOrCreateSigner loads the checkpoint-signing key, or makes one
// (private 0600, public beside it).
func loadOrCreateSigner(dir, name string) (note.Signer, error) {
	kp := filepath.Join(dir, SignerKeyFile)
	b, err := os.ReadFile(kp)
	if errors.Is(err, os.ErrNotExist) {
		skey, vkey, err := note.GenerateKey(rand.Reader, name)
		if err != nil {
			return nil, fmt.Errorf("%w: generate checkpoint key: %w", ErrLogging, err)
		}
		if err := pki.WriteFileAtomic(kp, []byte(skey+"\n"), 0o600); err != nil {
			return nil, err
		}
		if err := pki.WriteFileAtomic(filepath.Join(dir, VerifierKeyFile), []byte(vkey+"\n"), 0o644); err != nil {
			return nil, err
		}
		b = []byte(skey)
	} else if err != nil {
		return nil, fmt.Errorf("%w: read checkpoint key: %w", ErrLogging, err)
	} else if fi, err := os.Stat(kp); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s is readable by others (mode %v); it must be 0600", ErrLogging, kp, fi.Mode().Perm())
	}
	s, err := note.NewSigner(strings.TrimSpace(string(b)))
	if err != nil {
		return nil, fmt.Errorf("%w: checkpoint key: %w", ErrLogging, err)
	}
	return s, nil
}
