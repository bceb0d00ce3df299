package msglog

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"

	"github.com/sampan-exchange/sampan/store"
)

// IndexFile is the record index's SQLite database in the log directory,
// used unless a PostgreSQL DSN is configured.
const IndexFile = "index.db"

// The record index. A row is written (durably) before its leaf is
// appended, so every leaf has its record; leaf_index is filled in lazily
// once the leaf is in the tree (NULL until then). Rows are per log, so
// several gateways may share one PostgreSQL database. A purged row keeps
// its digest (the leaf's data) and loses its record.
//
// Every key follows time, so that a commit touches a few pages at the
// right edge of each B-tree however large the index grows: a record is
// unique by its request time and digest (an identical record has the same
// time), leaves are looked up by position, and gateways make time-ordered
// X-Road-Ids (r1.NewID). Random keys — the digest alone, random UUIDs —
// dirtied about a page per row once the index was much larger than a
// commit (96 µs per row at 300,000 rows, against 27 µs with these keys).
// SQLite holds one log, so its keys leave the log out.
//
// Migration 3 moves indexes of schema 1 to these keys (the first schema
// made the digest the primary key and did not index leaf positions);
// migration 4 adds the index purges read (records_live, below).
//
// Each migration has its written rollback beside it (docs/upgrading.md).
// Rolling back migration 3 rebuilds the first schema's table, the digest
// its key.
var (
	indexSQLite = []store.Migration{{Up: `
CREATE TABLE records (
	log TEXT NOT NULL,
	digest BLOB NOT NULL PRIMARY KEY,
	leaf_index INTEGER,
	x_road_id TEXT NOT NULL,
	side TEXT NOT NULL,
	kind TEXT NOT NULL,
	request_at INTEGER NOT NULL,
	record BLOB,
	bodies TEXT NOT NULL DEFAULT '',
	purged_by BLOB
);
CREATE INDEX records_xrid ON records (x_road_id);
CREATE INDEX records_at ON records (request_at);
CREATE TABLE log_state (log TEXT PRIMARY KEY, reconciled INTEGER NOT NULL);`, Down: `
DROP TABLE log_state;
DROP TABLE records;`},
		{Up: quotaTable, Down: `DROP TABLE quota_usage;`},
		{Up: `
CREATE TABLE records_v3 (
	log TEXT NOT NULL,
	digest BLOB NOT NULL,
	leaf_index INTEGER,
	x_road_id TEXT NOT NULL,
	side TEXT NOT NULL,
	kind TEXT NOT NULL,
	request_at INTEGER NOT NULL,
	record BLOB,
	bodies TEXT NOT NULL DEFAULT '',
	purged_by BLOB
);
INSERT INTO records_v3 (log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies, purged_by)
	SELECT log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies, purged_by FROM records ORDER BY rowid;
DROP TABLE records;
ALTER TABLE records_v3 RENAME TO records;
CREATE UNIQUE INDEX records_key ON records (request_at, digest);
CREATE INDEX records_xrid ON records (x_road_id);
CREATE INDEX records_leaf ON records (leaf_index);`, Down: `
CREATE TABLE records_v1 (
	log TEXT NOT NULL,
	digest BLOB NOT NULL PRIMARY KEY,
	leaf_index INTEGER,
	x_road_id TEXT NOT NULL,
	side TEXT NOT NULL,
	kind TEXT NOT NULL,
	request_at INTEGER NOT NULL,
	record BLOB,
	bodies TEXT NOT NULL DEFAULT '',
	purged_by BLOB
);
INSERT INTO records_v1 (log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies, purged_by)
	SELECT log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies, purged_by FROM records ORDER BY rowid;
DROP TABLE records;
ALTER TABLE records_v1 RENAME TO records;
CREATE INDEX records_xrid ON records (x_road_id);
CREATE INDEX records_at ON records (request_at);`},
		{Up: `
CREATE INDEX records_live ON records (request_at) WHERE record IS NOT NULL AND kind <> 'purge';`, Down: `
DROP INDEX records_live;`},
		{Up: `
ALTER TABLE log_state ADD COLUMN predicted INTEGER NOT NULL DEFAULT 0;`, Down: `
ALTER TABLE log_state DROP COLUMN predicted;`},
		{Up: nonceTable, Down: `DROP TABLE replay_nonces;`}}
	indexPG = []store.Migration{{Up: `
CREATE TABLE records (
	log TEXT NOT NULL,
	digest BYTEA NOT NULL,
	leaf_index BIGINT,
	x_road_id TEXT NOT NULL,
	side TEXT NOT NULL,
	kind TEXT NOT NULL,
	request_at BIGINT NOT NULL,
	record BYTEA,
	bodies TEXT NOT NULL DEFAULT '',
	purged_by BYTEA,
	PRIMARY KEY (log, digest)
);
CREATE INDEX records_xrid ON records (log, x_road_id);
CREATE INDEX records_at ON records (log, request_at);
CREATE TABLE log_state (log TEXT PRIMARY KEY, reconciled BIGINT NOT NULL);`, Down: `
DROP TABLE log_state;
DROP TABLE records;`},
		{Up: quotaTable, Down: `DROP TABLE quota_usage;`},
		{Up: `
ALTER TABLE records DROP CONSTRAINT records_pkey;
DROP INDEX records_at;
CREATE UNIQUE INDEX records_key ON records (log, request_at, digest);
ALTER TABLE records ADD CONSTRAINT records_pkey PRIMARY KEY USING INDEX records_key;
CREATE INDEX records_leaf ON records (log, leaf_index);`, Down: `
DROP INDEX records_leaf;
ALTER TABLE records DROP CONSTRAINT records_pkey;
ALTER TABLE records ADD CONSTRAINT records_pkey PRIMARY KEY (log, digest);
CREATE INDEX records_at ON records (log, request_at);`},
		{Up: `
CREATE INDEX records_live ON records (log, request_at) WHERE record IS NOT NULL AND kind <> 'purge';`, Down: `
DROP INDEX records_live;`},
		{Up: `
ALTER TABLE log_state ADD COLUMN predicted INTEGER NOT NULL DEFAULT 0;`, Down: `
ALTER TABLE log_state DROP COLUMN predicted;`},
		{Up: nonceTable, Down: `DROP TABLE replay_nonces;`}}
)

// Migration 5 marks, in log_state.predicted, a log whose positions this
// version has written: rows may then hold predicted positions (see
// indexWriter), which the next start checks. A log written before holds
// positions the tree gave.

// Migration 4 adds records_live: the records a purge may still remove, by
// request time, so that a purge reads those alone. Without it a purge
// walked the whole index in leaf order, the purged rows included, every
// hour, however little it had to remove. The purge's query names the
// index's condition (liveRows): a partial index serves only a query whose
// conditions include its own. A migration, once released, never
// changes; a test holds liveRows to the index the migration made.

// liveRows are the rows a purge may remove: records still held, not
// purge records themselves.
const liveRows = "record IS NOT NULL AND kind <> '" + KindPurge + "'"

// indexPageSize is the page size of a new SQLite record index, and
// checkpointBytes how much of SQLite's WAL is copied back at a time.
const (
	indexPageSize   = 16 << 10
	checkpointBytes = 4 << 20
)

// OpenIndex opens the record index: PostgreSQL when dsn is given,
// otherwise the SQLite database in the log directory.
func OpenIndex(ctx context.Context, dir, dsn string) (*store.DB, error) {
	// A larger page cache than SQLite's 2 MB (64 MB; per connection, and
	// the index writer uses one), and 16 KiB pages for an index created
	// now: a commit of a hundred rows then writes about 75 pages to the
	// SQLite WAL rather than 300, each page a system call, and as many
	// again at the checkpoint (docs/design/performance.md). Checkpoints
	// stay at 4 MB whatever the page size (the default is 1,000 pages): a
	// larger one is a longer burst of writes for the disk, which every
	// acknowledgement's segment sync then waits behind.
	ps, err := store.PageSize(dir + "/" + IndexFile)
	if err != nil {
		return nil, fmt.Errorf("%w: record index: %w", ErrLogging, err)
	}
	if ps == 0 {
		ps = indexPageSize
	}
	db, err := store.OpenDSN(ctx, dsn, dir+"/"+IndexFile, indexSQLite, indexPG, "cache_size(-65536)",
		fmt.Sprintf("page_size(%d)", indexPageSize), fmt.Sprintf("wal_autocheckpoint(%d)", max(1, checkpointBytes/ps)))
	if err != nil {
		return nil, fmt.Errorf("%w: record index: %w", ErrLogging, err)
	}
	return db, nil
}

// row is a record on its way into the index and the tree.
type row struct {
	digest [32]byte
	seq    uint64    // order handed to the integrator (0: not handed over)
	acked  time.Time // when it was acknowledged (durable in a segment)
	seg    *segment  // the write-ahead segment holding it
	rec    *Record
	data   []byte
	done   chan error // the write-ahead writer's answer
	waited bool       // done was read: err is the answer
	err    error
	leaf   uint64
	at     int64 // request time (Unix ms) when rec is nil
	// pred is the position the row was inserted with (predicted is
	// false when it was inserted without one).
	pred      uint64
	predicted bool
}

// requestAt is the row's request time in Unix milliseconds, which with
// its digest identifies it in the index.
func (r *row) requestAt() int64 {
	if r.rec != nil {
		return r.rec.RequestAt.UnixMilli()
	}
	return r.at
}

// Index commits: every indexFlushEvery, or sooner once indexFlushRows are
// waiting; after a failure, not before indexRetry.
const (
	indexFlushEvery = 50 * time.Millisecond
	indexFlushRows  = 1000
	indexRetry      = time.Second
)

// indexWriter fills the record index from the write-ahead segments, in
// large transactions, off the path of the exchanges; it also records,
// lazily, where each row's leaf is.
//
// Predicted positions (SQLite). The tree appends the rows in the order
// they are handed to it, one sequence number each: the k-th row handed
// over takes position base + k. The writer therefore inserts a row with
// the position it will take, and the integrator writes a position only
// when the tree gave another (after a failed append, whose rows are
// appended later). Without this every row was written twice: inserted,
// then its page rewritten by an UPDATE one commit later.
//
// confirmed (log_state.reconciled) says how far positions are known to be
// right: every leaf below it has its row's position recorded, and every
// row with a position below it has the right one. The integrator raises
// it after each batch to the positions the tree has given; it stays
// below every prediction of a row the tree has not yet placed (pending:
// still queued, or its append failed and waits to be retried); the
// writer stores it with the corrections that make it true, and predicts
// no position below what it stored (such a row is inserted without
// one). A position at or above it may be a prediction not yet checked:
// purges, exports and Verify rely on those below it only, and the next
// start checks those above it against the tree (reconcile).
type indexWriter struct {
	db       *store.DB
	origin   string
	log      *slog.Logger
	onCommit func([]*row) // sees newly committed rows, in order
	yielded  time.Time    // when the writer last let others run

	mu      sync.Mutex
	rows    []*row
	updates []*row
	err     error     // the last commit's failure, until one succeeds
	retryAt time.Time // no new attempt before this, after a failure
	kick    chan struct{}
	syncReq chan chan error
	insert  *sql.Stmt // SQLite's prepared statements (commitSQLite)
	leaf    *sql.Stmt
	stop    chan struct{}
	stopped chan struct{}

	// committing counts the rows taken from rows by the commit under
	// way (mu).
	committing int

	predict   bool            // insert rows with predicted positions
	base      atomic.Int64    // a row's position is base + its sequence number
	handed    func() uint64   // the sequence number of the last row handed over
	confirmed uint64          // (mu) see above; raised by the integrator
	pending   map[*row]uint64 // (mu) predictions of rows not yet placed
	written   uint64          // confirmed as last committed (the writer's own)
	corrected atomic.Int64    // positions written after the row (tests)
}

// newIndexWriter starts the writer. handed, when not nil, reports the
// sequence number of the last row handed to the tree, and base is then
// the position minus the sequence number of the rows handed next (see
// indexWriter); confirmed is log_state's value at the start.
func newIndexWriter(db *store.DB, origin string, log *slog.Logger, onCommit func([]*row), handed func() uint64, base int64, confirmed uint64) *indexWriter {
	w := &indexWriter{db: db, origin: origin, log: log, onCommit: onCommit, kick: make(chan struct{}, 1),
		syncReq: make(chan chan error), stop: make(chan struct{}), stopped: make(chan struct{}),
		predict: handed != nil && !db.Postgres, handed: handed, confirmed: confirmed, written: confirmed,
		pending: map[*row]uint64{}}
	w.base.Store(base)
	go w.run()
	return w
}

// enqueue takes durable rows, in order, to be committed soon.
func (w *indexWriter) enqueue(rows []*row) {
	w.mu.Lock()
	w.rows = append(w.rows, rows...)
	n := len(w.rows)
	w.mu.Unlock()
	if n >= indexFlushRows {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// lag is how many acknowledged records are not yet committed to the
// index.
func (w *indexWriter) lag() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.rows) + w.committing)
}

// health reports why new records must be refused, if they must: the index
// cannot be written, or lags more than maxDelay behind the acknowledged
// records.
func (w *indexWriter) health(maxDelay time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return fmt.Errorf("%w: the record index cannot be written: %w", ErrLogging, w.err)
	}
	if len(w.rows) > 0 {
		if lag := time.Since(w.rows[0].acked); lag > maxDelay {
			return fmt.Errorf("%w: the record index is %v behind the acknowledged records (limit %v)", ErrLogging, lag.Round(time.Millisecond), maxDelay)
		}
	}
	return nil
}

// sync commits everything enqueued so far.
func (w *indexWriter) sync(ctx context.Context) error {
	req := make(chan error, 1)
	select {
	case w.syncReq <- req:
	case <-w.stopped:
		return fmt.Errorf("%w: the log is closed", ErrLogging)
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leafAssigned records, lazily, where a row's leaf is, unless the row
// was inserted with that position.
func (w *indexWriter) leafAssigned(r *row, leaf uint64) {
	r.leaf = leaf
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pending, r) // placed: its position is right, or queued below
	if r.predicted && r.pred == leaf {
		return
	}
	w.updates = append(w.updates, r)
}

// confirm notes that every leaf below top has its row's position right
// or queued (leafAssigned), and that rows handed over next take their
// positions from base on.
func (w *indexWriter) confirm(top uint64, base int64, resync bool) {
	if resync {
		w.base.Store(base)
	}
	w.mu.Lock()
	w.confirmed = max(w.confirmed, top)
	w.mu.Unlock()
}

func (w *indexWriter) run() {
	defer close(w.stopped)
	tick := time.NewTicker(indexFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-w.kick:
			w.flush(false)
		case <-tick.C:
			w.flush(false)
		case req := <-w.syncReq:
			req <- w.flush(true)
		case <-w.stop:
			w.flush(true)
			return
		}
	}
}

// flush commits what is waiting; it returns the failure that keeps rows
// waiting, if any. Rows that cannot be committed stay queued, in order,
// and stay in their segments: they were acknowledged and are never
// dropped.
func (w *indexWriter) flush(now bool) error {
	w.mu.Lock()
	if !now && time.Now().Before(w.retryAt) {
		w.mu.Unlock()
		return nil
	}
	rows, updates, confirmed := w.rows, w.updates, w.confirmed
	w.committing = len(rows)
	// The tree has given every position below w.confirmed: a prediction
	// there is wrong before it is made.
	floor := w.confirmed
	for _, p := range w.pending {
		confirmed = min(confirmed, p)
	}
	confirmed = max(confirmed, w.written) // never lowered
	w.rows, w.updates = nil, nil
	w.mu.Unlock()
	if len(rows) == 0 && len(updates) == 0 && confirmed <= w.written {
		return nil
	}
	// Rows take sequence numbers in the order they are handed over, after
	// the commit; seq counts those this flush inserts.
	var seq uint64
	if w.predict {
		seq = w.handed()
	}
	inserted, err := w.commit(rows, updates, confirmed, floor, &seq)
	var failed []*row
	done := rows
	if err != nil {
		// One bad row must not hold up the others: commit them one by one.
		done, inserted = nil, map[[32]byte]bool{}
		misses := 0
		for _, r := range rows {
			if misses == 3 {
				// The database itself is failing, not one row: do not
				// try each of thousands (a stop would wait for them all).
				failed = append(failed, r)
				continue
			}
			ins, rerr := w.commit([]*row{r}, nil, 0, floor, &seq)
			if rerr != nil {
				failed = append(failed, r)
				misses++
				continue
			}
			misses = 0
			done = append(done, r)
			if ins[r.digest] {
				inserted[r.digest] = true
			}
		}
	}
	// Only rows actually inserted become leaves: a record identical to one
	// kept already is that record.
	fresh := done[:0:0]
	for _, r := range done {
		if inserted[r.digest] {
			fresh = append(fresh, r)
			delete(inserted, r.digest) // the same record twice in one commit
		}
	}
	if len(fresh) > 0 && w.onCommit != nil {
		w.onCommit(fresh)
	}
	for _, r := range done {
		if r.seg != nil {
			r.seg.indexed(1)
		}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.committing = 0
	if err != nil {
		// Leaf positions are a convenience (reconciled at the next start
		// anyway): keep them for the next attempt.
		w.updates = append(updates, w.updates...)
	}
	if len(failed) > 0 {
		w.rows = append(failed, w.rows...)
		w.err = err
		w.retryAt = time.Now().Add(indexRetry)
		w.log.Error("message log: the record index cannot be written; new exchanges are refused until it recovers (acknowledged records are kept in the write-ahead segments)", "err", err, "waiting", len(w.rows))
		return fmt.Errorf("%w: record index: %w", ErrLogging, err)
	}
	w.err, w.retryAt = nil, time.Time{}
	return nil
}

// commit inserts rows and records leaf indexes in one transaction, and
// confirmed when it is news; it returns the digests of the rows it
// inserted. seq is the sequence number of the last row inserted before
// (predictions), advanced for each row inserted now when they are; no
// position below floor, nor below confirmed, is predicted.
func (w *indexWriter) commit(rows, updates []*row, confirmed, floor uint64, seq *uint64) (map[[32]byte]bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	inserted := make(map[[32]byte]bool, len(rows))
	corrections := len(updates)
	if confirmed > w.written {
		if _, err := tx.ExecContext(ctx, w.db.Q(`UPDATE log_state SET reconciled = ? WHERE log = ?`), int64(confirmed), w.origin); err != nil {
			return nil, err
		}
	}
	if !w.db.Postgres {
		first := *seq
		err := w.commitSQLite(ctx, tx, rows, updates, inserted, seq, max(confirmed, w.written, floor))
		if err != nil {
			*seq = first // nothing was inserted
			return nil, err
		}
		w.written = max(w.written, confirmed)
		w.corrected.Add(int64(corrections))
		// The rows just inserted with predictions are not yet placed: the
		// confirmed position stays below them until the tree places them.
		w.mu.Lock()
		for _, r := range rows {
			if r.predicted && inserted[r.digest] {
				w.pending[r] = r.pred
			}
		}
		w.mu.Unlock()
		return inserted, nil
	}
	// PostgreSQL: multi-row statements, one round trip per 100 rows.
	for len(rows) > 0 {
		n := min(len(rows), 100)
		q := `INSERT INTO records (log, digest, x_road_id, side, kind, request_at, record, bodies) VALUES ` +
			strings.Repeat(`(?, ?, ?, ?, ?, ?, ?, ?), `, n-1) + `(?, ?, ?, ?, ?, ?, ?, ?)` +
			// A record identical to one already kept is the same
			// record: it must not fail the others committed with it.
			` ON CONFLICT DO NOTHING RETURNING digest`
		args := make([]any, 0, 8*n)
		for _, r := range rows[:n] {
			args = append(args, w.origin, r.digest[:], r.rec.XRoadID, r.rec.Side, r.rec.Kind, r.requestAt(), r.data, r.rec.Bodies)
		}
		rs, err := tx.QueryContext(ctx, w.db.Q(q), args...)
		if err != nil {
			return nil, err
		}
		for rs.Next() {
			var d []byte
			if err := rs.Scan(&d); err != nil {
				rs.Close()
				return nil, err
			}
			var k [32]byte
			copy(k[:], d)
			inserted[k] = true
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return nil, err
		}
		rows = rows[n:]
	}
	for len(updates) > 0 {
		n := min(len(updates), 100)
		q := `UPDATE records SET leaf_index = u.leaf FROM (SELECT ?::bigint AS at, ?::bytea AS d, ?::bigint AS leaf` +
			strings.Repeat(` UNION ALL SELECT ?::bigint, ?::bytea, ?::bigint`, n-1) +
			`) AS u WHERE records.log = ? AND records.request_at = u.at AND records.digest = u.d`
		args := make([]any, 0, 3*n+1)
		for _, r := range updates[:n] {
			args = append(args, r.requestAt(), r.digest[:], int64(r.leaf))
		}
		args = append(args, w.origin)
		if _, err := tx.ExecContext(ctx, w.db.Q(q), args...); err != nil {
			return nil, err
		}
		updates = updates[n:]
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	w.written = max(w.written, confirmed)
	w.corrected.Add(int64(corrections))
	return inserted, nil
}

// The SQLite index's statements, prepared once: SQLite runs in this
// process, so a statement per row costs no round trip, while parsing a
// multi-row statement for every commit cost a quarter of the index's CPU.
const (
	sqliteInsert = `INSERT INTO records (log, digest, leaf_index, x_road_id, side, kind, request_at, record, bodies) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqliteLeaf   = `UPDATE records SET leaf_index = ? WHERE request_at = ? AND digest = ?`
)

// yield lets the exchanges waiting for a processor run before the next
// row. SQLite runs in this process: a commit is a few milliseconds of CPU
// in one goroutine, which the Go scheduler would not interrupt, and every
// exchange queued behind it on that processor would wait for all of it.
// Yielding every 200 µs (a few rows) puts the index writer behind them.
// At 1,500 exchanges/s, yielding after each row took the median latency
// from 6.0–6.8 ms to 3.0–3.9 (docs/design/performance.md).
func (w *indexWriter) yield() {
	if now := time.Now(); now.Sub(w.yielded) >= yieldEvery {
		runtime.Gosched()
		w.yielded = time.Now()
	}
}

// yieldEvery is how much of a commit runs between yields: a few rows.
const yieldEvery = 200 * time.Microsecond

// commitSQLite inserts rows (with their predicted positions) and records
// leaf positions within tx with the prepared statements, noting the
// digests of the rows it inserted.
func (w *indexWriter) commitSQLite(ctx context.Context, tx *sql.Tx, rows, updates []*row, inserted map[[32]byte]bool, seq *uint64, floor uint64) error {
	if w.insert == nil {
		ins, err := w.db.PrepareContext(ctx, sqliteInsert)
		if err != nil {
			return err
		}
		leaf, err := w.db.PrepareContext(ctx, sqliteLeaf)
		if err != nil {
			ins.Close()
			return err
		}
		w.insert, w.leaf = ins, leaf
	}
	// The statements run without the commit's deadline: with a context
	// that can end, the driver starts a goroutine per statement to
	// interrupt it (up to 2 µs of the 25 µs a row costs, and two
	// goroutines per row for the scheduler). SQLite runs in this process
	// and waits for a lock no longer than its busy timeout (10 s); the
	// transaction still ends with the commit's context.
	bg := context.Background()
	if len(rows) > 0 {
		ins := tx.StmtContext(bg, w.insert)
		base := w.base.Load()
		for _, r := range rows {
			var leaf any // NULL: the position is recorded once the tree gives it
			r.predicted = false
			// A prediction below the confirmed position would break its
			// promise until the tree places the row: none is made then.
			if p := base + int64(*seq+1); w.predict && p >= int64(floor) {
				r.pred = uint64(p)
				leaf = p
			}
			res, err := ins.ExecContext(bg, w.origin, r.digest[:], leaf, r.rec.XRoadID, r.rec.Side, r.rec.Kind, r.requestAt(), r.data, r.rec.Bodies)
			if err != nil {
				return err
			}
			w.yield()
			// A record identical to one already kept is the same record:
			// it is not inserted again, and must not fail the others.
			if n, err := res.RowsAffected(); err != nil {
				return err
			} else if n == 1 {
				inserted[r.digest] = true
				r.predicted = leaf != nil
				if w.predict {
					*seq++
				}
			}
		}
	}
	if len(updates) > 0 {
		leaf := tx.StmtContext(bg, w.leaf)
		for _, r := range updates {
			if _, err := leaf.ExecContext(bg, int64(r.leaf), r.requestAt(), r.digest[:]); err != nil {
				return err
			}
			w.yield()
		}
	}
	return tx.Commit()
}

// close commits what is waiting and stops the writer.
func (w *indexWriter) close() {
	close(w.stop)
	<-w.stopped
	w.closeStatements()
}

// closeStatements closes the prepared statements, if any.
func (w *indexWriter) closeStatements() {
	if w.insert != nil {
		w.insert.Close()
		w.leaf.Close()
		w.insert, w.leaf = nil, nil
	}
}

// reconcile runs at open. Rows placed at or after the last confirmed
// position (log_state.reconciled, see indexWriter) are checked against
// the leaves the tree holds there, in one pass in leaf order. A row
// whose leaf is elsewhere gets that position. A row without a position
// (or with a predicted one) that is not a leaf yet — an acknowledged
// record whose leaf was not appended before the stop — loses its
// position and is returned, oldest first, to be appended now. It also
// returns the tree's size, which it then confirms.
//
// A log last written by a version that did not predict positions
// (log_state.predicted 0) holds the tree's positions below its size: only
// the rows without one are placed.
func reconcile(ctx context.Context, db *store.DB, origin string, rd interface {
	IntegratedSize(context.Context) (uint64, error)
	ReadEntryBundle(context.Context, uint64, uint8) ([]byte, error)
}) (matched int, leftover []*row, size uint64, err error) {
	size, err = rd.IntegratedSize(ctx)
	if err != nil {
		return 0, nil, 0, err
	}
	var from, predicted int64
	switch err := db.QueryRowContext(ctx, db.Q(`SELECT reconciled, predicted FROM log_state WHERE log = ?`), origin).Scan(&from, &predicted); {
	case errors.Is(err, sql.ErrNoRows):
		from = 0
	case err != nil:
		return 0, nil, 0, err
	}
	from = min(from, int64(size))
	// Positions from the last confirmed one on, where predicted ones may
	// be; a log last written by a version that did not predict holds the
	// tree's positions alone.
	check := size
	if predicted != 0 {
		check = uint64(from)
	}
	bundles := entryBundles{rd: rd, size: size}

	// Rows to place: by digest, their request time and the position they
	// hold (-1: none).
	type unplaced struct {
		at   int64
		leaf int64
	}
	rows := map[[32]byte]unplaced{}
	scan := func(q string, args []any, each func(k [32]byte, at, leaf int64) error) error {
		rs, err := db.QueryContext(ctx, db.Q(q), args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		for rs.Next() {
			var d []byte
			var at int64
			var leaf sql.NullInt64
			if err := rs.Scan(&d, &at, &leaf); err != nil {
				return err
			}
			if len(d) != 32 {
				return fmt.Errorf("a digest of %d bytes in the index", len(d))
			}
			l := int64(-1)
			if leaf.Valid {
				l = leaf.Int64
			}
			if err := each([32]byte(d), at, l); err != nil {
				return err
			}
		}
		return rs.Err()
	}
	// Positions below the tree's size, from the last confirmed one: each
	// is right when the tree holds the row's digest there.
	err = scan(`SELECT digest, request_at, leaf_index FROM records WHERE log = ? AND leaf_index >= ? AND leaf_index < ? ORDER BY leaf_index`, []any{origin, int64(check), int64(size)},
		func(k [32]byte, at, leaf int64) error {
			e, err := bundles.entry(ctx, uint64(leaf))
			if err != nil {
				return err
			}
			if !bytes.Equal(e, k[:]) {
				rows[k] = unplaced{at: at, leaf: leaf}
			}
			return nil
		})
	if err != nil {
		return 0, nil, 0, err
	}
	// Rows without a position, or with one the tree has not reached.
	err = scan(`SELECT digest, request_at, leaf_index FROM records WHERE log = ? AND (leaf_index IS NULL OR leaf_index >= ?)`, []any{origin, int64(size)},
		func(k [32]byte, at, leaf int64) error {
			rows[k] = unplaced{at: at, leaf: leaf}
			return nil
		})
	if err != nil {
		return 0, nil, 0, err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, nil, 0, err
	}
	defer tx.Rollback()
	place := func(k [32]byte, leaf any) error {
		_, err := tx.ExecContext(ctx, db.Q(`UPDATE records SET leaf_index = ? WHERE log = ? AND request_at = ? AND digest = ?`), leaf, origin, rows[k].at, k[:])
		return err
	}
	for pos := uint64(from) / layout.EntryBundleWidth * layout.EntryBundleWidth; pos < size && len(rows) > 0; pos++ {
		e, err := bundles.entry(ctx, pos)
		if err != nil {
			return 0, nil, 0, err
		}
		if len(e) != 32 {
			continue
		}
		u, ok := rows[[32]byte(e)]
		if !ok {
			continue
		}
		if u.leaf != int64(pos) {
			if err := place([32]byte(e), int64(pos)); err != nil {
				return 0, nil, 0, err
			}
			matched++
		}
		delete(rows, [32]byte(e))
	}
	for k, u := range rows {
		if u.leaf >= 0 { // a predicted position the tree did not give
			if err := place(k, nil); err != nil {
				return 0, nil, 0, err
			}
		}
		leftover = append(leftover, &row{digest: k, at: u.at})
	}
	slices.SortFunc(leftover, func(a, b *row) int {
		return cmp.Or(cmp.Compare(a.at, b.at), bytes.Compare(a.digest[:], b.digest[:]))
	})
	if _, err := tx.ExecContext(ctx, db.Q(`DELETE FROM log_state WHERE log = ?`), origin); err != nil {
		return 0, nil, 0, err
	}
	if _, err := tx.ExecContext(ctx, db.Q(`INSERT INTO log_state (log, reconciled, predicted) VALUES (?, ?, 1)`), origin, int64(size)); err != nil {
		return 0, nil, 0, err
	}
	return matched, leftover, size, tx.Commit()
}

// entryBundles reads a tree's leaves by position, one entry bundle at a
// time (the last one read is kept).
type entryBundles struct {
	rd interface {
		ReadEntryBundle(context.Context, uint64, uint8) ([]byte, error)
	}
	size    uint64
	n       uint64 // the bundle held, when entries is not nil
	entries [][]byte
}

// entry returns the leaf at pos, which must be below size.
func (b *entryBundles) entry(ctx context.Context, pos uint64) ([]byte, error) {
	n := pos / layout.EntryBundleWidth
	if b.entries == nil || b.n != n {
		raw, err := b.rd.ReadEntryBundle(ctx, n, layout.PartialTileSize(0, n, b.size))
		if err != nil {
			return nil, fmt.Errorf("read entry bundle %d: %w", n, err)
		}
		var eb api.EntryBundle
		if err := eb.UnmarshalText(raw); err != nil {
			return nil, fmt.Errorf("entry bundle %d: %w", n, err)
		}
		b.n, b.entries = n, eb.Entries
	}
	i := pos % layout.EntryBundleWidth
	if i >= uint64(len(b.entries)) {
		return nil, fmt.Errorf("entry bundle %d holds %d leaves, not leaf %d", n, len(b.entries), pos)
	}
	return b.entries[i], nil
}

// recordDigest is a record's leaf data: the SHA-256 of its bytes.
func recordDigest(b []byte) [32]byte { return sha256.Sum256(b) }
