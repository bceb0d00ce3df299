package msglog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sampan-exchange/sampan/internal/busy"
	"github.com/sampan-exchange/sampan/store"
)

// WALDir holds the write-ahead segments in the log directory.
//
// A record is acknowledged once it is durable in a write-ahead segment:
// records arriving together are written to the current segment at once
// and synced once (group commit). The record index is filled from them
// behind, in larger transactions, and the tree from the index. A segment
// is removed once every record in it is committed to the index; at the
// next start, whatever a stop left in the segments is committed to the
// index before anything else.
//
// Segments are made ahead of use at their full size, zero-filled and
// synced, so that writing a group changes neither the file's size nor its
// blocks: its sync (fdatasync) writes the data alone, which costs half
// the time and CPU of a sync that must also commit the file system's
// journal. While the process is busy — goroutines waiting for a
// processor (package busy) — syncs are spaced walBusySpacing apart so that
// each serves more records: CPU is then what limits the exchanges, and a
// sync costs CPU; otherwise a group is synced as soon as it is written.
//
// A segment starts with walMagic; each entry is the record's length (4
// bytes, big-endian), its SHA-256 digest (its leaf) and the record; the
// rest of a segment is zeros. Bytes that make no valid entry at the end of
// the newest segment holding records were being written when the gateway
// stopped, and never acknowledged; anywhere else they are damage, skipped
// (the valid entries after them are recovered) and the segment kept.
const WALDir = "wal"

const (
	walMagic     = "SMPNWAL1"
	walEntryHead = 4 + sha256.Size
	walSuffix    = ".seg"
	// walBusySpacing is the least time between syncs while busy.
	walBusySpacing = time.Millisecond
	// walMaxPending bounds the records waiting for a segment write.
	walMaxPending = 10000
	// walMaxAge ends a segment that old, so that a quiet log does not keep
	// records in its segments long after they were indexed (and perhaps
	// purged).
	walMaxAge = time.Hour
	// walTemp marks a segment being made ready, walDamaged one kept
	// because it was damaged.
	walTemp    = ".tmp"
	walDamaged = ".damaged"
)

// defaultSegmentSize is the size of a segment; walSegmentSize is the size
// used (smaller in tests).
const defaultSegmentSize = 4 << 20

var walSegmentSize int64 = defaultSegmentSize

// segment is one write-ahead segment file; it is removed once sealed (no
// more records go to it) and every record in it is in the index.
type segment struct {
	path      string
	unindexed atomic.Int64
	sealed    atomic.Bool
	once      sync.Once
	log       *slog.Logger
}

// indexed notes that n of the segment's records are committed to the index.
func (s *segment) indexed(n int) {
	if s.unindexed.Add(-int64(n)) == 0 && s.sealed.Load() {
		s.remove()
	}
}

func (s *segment) seal() {
	s.sealed.Store(true)
	if s.unindexed.Load() == 0 {
		s.remove()
	}
}

func (s *segment) remove() {
	s.once.Do(func() {
		if err := os.Remove(s.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("message log: could not remove an indexed write-ahead segment", "path", s.path, "err", err)
		}
	})
}

// walWriter appends records to the write-ahead segments in groups: while
// one group is written and synced, the next gathers.
type walWriter struct {
	dir       string
	log       *slog.Logger
	onDurable func([]*row) // sees durable rows, in order, before they are acknowledged
	// syncTime observes each group's write and sync; nil: none.
	syncTime prometheus.Observer

	// Counted per group, before its rows are answered (metrics).
	syncs    atomic.Uint64 // segment syncs
	durable  atomic.Uint64 // records made durable
	failed   atomic.Uint64 // records whose write failed
	inflight atomic.Int64  // records taken from pending, not yet answered

	mu        sync.Mutex
	pending   []*row
	closed    bool
	syncStart time.Time // when the write under way began (zero: none)
	kick      chan struct{}
	stop      chan struct{}
	stopped   chan struct{}

	// Owned by run.
	f        *os.File
	seg      *segment
	began    time.Time // when seg was begun
	off      int64     // where the next entry goes
	next     uint64
	buf      []byte
	spare    chan prepared // the next segment, being made ready
	lastSync time.Time
}

// walBusy tells whether the process is busy (a variable for tests).
var walBusy = busy.Busy

// prepared is a segment made ready ahead of use.
type prepared struct {
	f    *os.File
	path string
	err  error
}

func newWALWriter(dir string, next uint64, log *slog.Logger, onDurable func([]*row), syncTime prometheus.Observer) *walWriter {
	w := &walWriter{dir: filepath.Join(dir, WALDir), log: log, onDurable: onDurable, syncTime: syncTime, next: next,
		kick: make(chan struct{}, 1), stop: make(chan struct{}), stopped: make(chan struct{})}
	go w.run()
	return w
}

// enqueue hands a row to the writer; r.wait tells when it is durable.
func (w *walWriter) enqueue(r *row) error {
	r.done = make(chan error, 1)
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return fmt.Errorf("%w: the log is closed", ErrLogging)
	}
	if len(w.pending) >= walMaxPending {
		w.mu.Unlock()
		return fmt.Errorf("%w: %d records are already waiting for the write-ahead segment", ErrLogging, walMaxPending)
	}
	w.pending = append(w.pending, r)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
	return nil
}

// wait returns once the row, handed to the writer, is durable, or why it
// is not. It may be called more than once.
func (r *row) wait(ctx context.Context) error {
	if r.waited {
		return r.err
	}
	select {
	case err := <-r.done:
		r.waited, r.err = true, err
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// queueDepth is how many records were handed to the writer and not yet
// answered (durable or failed).
func (w *walWriter) queueDepth() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return int64(len(w.pending)) + w.inflight.Load()
}

// health reports why new records must be refused: a segment write has
// not returned for longer than maxDelay (a stalled disk).
func (w *walWriter) health(maxDelay time.Duration) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.syncStart.IsZero() && time.Since(w.syncStart) > maxDelay {
		return fmt.Errorf("%w: a write-ahead segment write has not completed for %v", ErrLogging, time.Since(w.syncStart).Round(time.Millisecond))
	}
	return nil
}

func (w *walWriter) run() {
	defer close(w.stopped)
	age := time.NewTicker(walMaxAge / 10)
	defer age.Stop()
	for {
		select {
		case <-age.C:
			if w.f != nil && time.Since(w.began) > walMaxAge {
				w.end()
			}
		case <-w.kick:
			w.flush(true)
		case <-w.stop:
			w.flush(false)
			w.end()
			if w.spare != nil {
				// An unused segment holds nothing.
				if p := <-w.spare; p.err == nil {
					p.f.Close()
					os.Remove(p.path)
				}
			}
			return
		}
	}
}

// flush writes and syncs everything pending, as one group per segment.
func (w *walWriter) flush(pace bool) {
	if wait := walBusySpacing - time.Since(w.lastSync); pace && wait > 0 && walBusy() {
		time.Sleep(wait)
	}
	w.mu.Lock()
	rows := w.pending
	w.pending = nil
	w.inflight.Add(int64(len(rows))) // with the swap: queueDepth counts them once
	w.mu.Unlock()
	for len(rows) > 0 {
		if w.f == nil {
			// Making a segment ready counts as a write under way: a stalled
			// disk shows here too.
			w.mu.Lock()
			w.syncStart = time.Now()
			w.mu.Unlock()
			err := w.begin()
			w.mu.Lock()
			w.syncStart = time.Time{}
			w.mu.Unlock()
			if err != nil {
				w.log.Error("message log: cannot begin a write-ahead segment; exchanges are refused", "err", err)
				w.fail(rows, err)
				return
			}
		}
		if room := walSegmentSize - int64(len(walMagic)); int64(walEntryHead+len(rows[0].data)) > room {
			// Cannot happen with records of at most MaxRecordSize.
			w.fail(rows[:1], fmt.Errorf("record of %d bytes does not fit in a segment of %d", len(rows[0].data), walSegmentSize))
			rows = rows[1:]
			continue
		}
		// As many as fit in this segment; a record always fits in a new one.
		w.buf = w.buf[:0]
		n := 0
		for _, r := range rows {
			if w.off+int64(len(w.buf)+walEntryHead+len(r.data)) > walSegmentSize {
				break
			}
			w.buf = binary.BigEndian.AppendUint32(w.buf, uint32(len(r.data)))
			w.buf = append(w.buf, r.digest[:]...)
			w.buf = append(w.buf, r.data...)
			n++
		}
		if n == 0 {
			w.end()
			continue
		}
		group := rows[:n]
		rows = rows[n:]
		start := time.Now()
		w.mu.Lock()
		w.syncStart = start
		w.mu.Unlock()
		synced := false
		err := injectedFault(w.dir)
		if err == nil {
			_, err = w.f.WriteAt(w.buf, w.off)
		}
		if err == nil {
			err, synced = datasync(w.f), true
		}
		w.lastSync = time.Now()
		w.mu.Lock()
		w.syncStart = time.Time{}
		w.mu.Unlock()
		if synced {
			w.syncs.Add(1)
			if w.syncTime != nil {
				w.syncTime.Observe(w.lastSync.Sub(start).Seconds())
			}
		}
		if err != nil {
			// After a failed write or sync the file's state is unknown:
			// zero what may have been written and go on in a new segment.
			w.log.Error("message log: writing a write-ahead segment failed; the records are refused", "path", w.seg.path, "records", len(group), "err", err)
			w.f.WriteAt(make([]byte, len(w.buf)), w.off)
			w.end()
			w.fail(group, err)
			continue
		}
		w.off += int64(len(w.buf))
		w.seg.unindexed.Add(int64(len(group)))
		for _, r := range group {
			r.seg, r.acked = w.seg, w.lastSync
		}
		w.onDurable(group)
		w.durable.Add(uint64(len(group)))
		w.inflight.Add(-int64(len(group)))
		for _, r := range group {
			r.done <- nil
		}
	}
}

func (w *walWriter) fail(rows []*row, err error) {
	err = fmt.Errorf("%w: write-ahead segment: %w", ErrLogging, err)
	w.failed.Add(uint64(len(rows)))
	w.inflight.Add(-int64(len(rows)))
	for _, r := range rows {
		r.done <- err
	}
}

// end closes the current segment: it goes once its records are indexed.
func (w *walWriter) end() {
	if w.f == nil {
		return
	}
	w.f.Close()
	w.f = nil
	w.seg.seal()
}

// begin moves to the next segment, made ready ahead, and starts making
// the one after it.
func (w *walWriter) begin() error {
	if w.spare == nil {
		if err := os.MkdirAll(w.dir, 0o700); err != nil {
			return err
		}
		w.spare = w.prepare()
	}
	p := <-w.spare
	w.spare = w.prepare()
	if p.err != nil {
		return p.err
	}
	w.f, w.off, w.began = p.f, int64(len(walMagic)), time.Now()
	w.seg = &segment{path: p.path, log: w.log}
	return nil
}

// prepare makes the next segment ready in the background: created under
// a temporary name, zero-filled to its full size and synced, then renamed
// into place with its directory synced, so that a segment file always
// begins with its magic.
func (w *walWriter) prepare() chan prepared {
	w.next++
	path := filepath.Join(w.dir, fmt.Sprintf("%016d%s", w.next, walSuffix))
	ch := make(chan prepared, 1)
	go func() {
		tmp := path + walTemp
		f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			ch <- prepared{err: err}
			return
		}
		err = fillSegment(f)
		if err == nil {
			err = os.Rename(tmp, path)
		}
		if err == nil {
			err = syncDir(w.dir)
		}
		if err != nil {
			f.Close()
			os.Remove(tmp)
			os.Remove(path)
			ch <- prepared{err: err}
			return
		}
		ch <- prepared{f: f, path: path}
	}()
	return ch
}

func fillSegment(f *os.File) error {
	if _, err := f.WriteString(walMagic); err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(len(walMagic)); off < walSegmentSize; off += int64(len(zeros)) {
		n := min(int64(len(zeros)), walSegmentSize-off)
		if _, err := f.Write(zeros[:n]); err != nil {
			return err
		}
	}
	return f.Sync()
}

// close writes what is pending and stops; the last segment goes once its
// records are indexed.
func (w *walWriter) close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	w.mu.Unlock()
	close(w.stop)
	<-w.stopped
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// walFiles are the files of a write-ahead directory: the segments,
// oldest first; the half-made ones (being made ready at a stop); the ones
// kept because they were damaged; and the highest segment number of any
// of them, so that none is reused.
type walFiles struct {
	segments, halfMade, damaged []string
	last                        uint64
}

func listWAL(dir string) (walFiles, error) {
	var wf walFiles
	ents, err := os.ReadDir(filepath.Join(dir, WALDir))
	if errors.Is(err, os.ErrNotExist) {
		return wf, nil
	}
	if err != nil {
		return wf, err
	}
	for _, e := range ents {
		name := e.Name()
		num, rest, _ := strings.Cut(name, ".")
		n, err := strconv.ParseUint(num, 10, 64)
		if e.IsDir() || err != nil {
			continue
		}
		wf.last = max(wf.last, n)
		p := filepath.Join(dir, WALDir, name)
		switch "." + rest {
		case walSuffix:
			wf.segments = append(wf.segments, p)
		case walSuffix + walTemp:
			wf.halfMade = append(wf.halfMade, p)
		case walSuffix + walDamaged:
			wf.damaged = append(wf.damaged, p)
		}
	}
	slices.Sort(wf.segments) // fixed-width numbers
	return wf, nil
}

// segRead is one segment as read.
type segRead struct {
	path string
	rows []*row
	sc   segScan
	// newest says it is the newest segment holding records: the only one
	// in which a stop can have cut a write short.
	newest bool
}

// readSegments reads segments, oldest first. Bytes skipped anywhere but at
// the end of the newest segment holding records are damage: every other
// segment was complete before the next one was begun. Segments that
// vanish meanwhile (indexed and removed by a running gateway) are left
// out.
func readSegments(paths []string) ([]segRead, error) {
	var out []segRead
	for _, p := range paths {
		rows, sc, err := readSegment(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, segRead{path: p, rows: rows, sc: sc})
	}
	for i := len(out) - 1; i >= 0; i-- {
		if !out[i].sc.unused {
			out[i].newest = true
			break
		}
	}
	for i := range out {
		if out[i].sc.skipped > 0 && !out[i].newest {
			out[i].sc.damaged = true
		}
	}
	return out, nil
}

// segScan says what reading a segment found besides its records.
type segScan struct {
	// skipped counts non-zero bytes that were not part of a valid entry;
	// damaged says valid entries followed them (damage in the middle of
	// a segment, not a write cut short at its end).
	skipped int
	damaged bool
	unused  bool // an all-zero file: a segment never begun
}

// readSegment returns the records of one segment. A write cut short by a
// stop leaves an invalid entry at the end of the entries (never
// acknowledged); damage elsewhere is skipped, and the valid entries after
// it are recovered.
func readSegment(path string) ([]*row, segScan, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, segScan{}, err
	}
	return parseSegment(b, path)
}

// parseSegment reads the records of a segment's bytes (see readSegment).
func parseSegment(b []byte, path string) ([]*row, segScan, error) {
	var sc segScan
	if lastNonZero(b) == 0 {
		sc.unused = true
		return nil, sc, nil
	}
	if !bytes.HasPrefix(b, []byte(walMagic)) {
		return nil, sc, fmt.Errorf("%s is not a write-ahead segment", path)
	}
	var rows []*row
	for off := len(walMagic); off < len(b); {
		if n, ok := entryAt(b, off); ok {
			data := b[off+walEntryHead : off+walEntryHead+n]
			rec, err := ParseRecord(data)
			if err != nil {
				return nil, sc, fmt.Errorf("%s at byte %d: %w", path, off, err)
			}
			rows = append(rows, &row{digest: [32]byte(b[off+4 : off+walEntryHead]), rec: rec, data: bytes.Clone(data)})
			off += walEntryHead + n
			continue
		}
		end := off + lastNonZero(b[off:])
		if end == off {
			break // the unused rest
		}
		next := -1
		for i := off + 1; i < end; i++ {
			if _, ok := entryAt(b, i); ok {
				next = i
				break
			}
		}
		if next < 0 {
			sc.skipped += end - off
			break
		}
		sc.skipped += next - off
		sc.damaged = true
		off = next
	}
	return rows, sc, nil
}

// entryAt reports whether a valid entry begins at off, and its length.
func entryAt(b []byte, off int) (int, bool) {
	rest := b[off:]
	if len(rest) < walEntryHead+2 {
		return 0, false
	}
	n := int(binary.BigEndian.Uint32(rest))
	if n < 2 || n > MaxRecordSize || len(rest) < walEntryHead+n || rest[walEntryHead] != '{' {
		return 0, false
	}
	return n, [32]byte(rest[4:walEntryHead]) == recordDigest(rest[walEntryHead:walEntryHead+n])
}

// lastNonZero is the length of b without its trailing zero bytes.
func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i + 1
		}
	}
	return 0
}

// replayWAL commits the records left in the write-ahead segments by the
// previous run to the index (those already there are skipped), then
// removes the segments, keeping damaged ones aside. It returns how many
// records it committed and the highest segment number seen.
func replayWAL(ctx context.Context, dir string, db *store.DB, origin string, log *slog.Logger) (int, uint64, error) {
	wf, err := listWAL(dir)
	if err != nil {
		return 0, 0, err
	}
	for _, p := range wf.halfMade {
		// Being made ready at a stop: it holds nothing.
		os.Remove(p)
	}
	if len(wf.segments) == 0 {
		return 0, wf.last, nil
	}
	reads, err := readSegments(wf.segments)
	if err != nil {
		return 0, wf.last, err
	}
	w := &indexWriter{db: db, origin: origin}
	defer w.closeStatements()
	total := 0
	for _, s := range reads {
		switch {
		case s.sc.damaged:
			log.Error("message log: a write-ahead segment is damaged; the records around the damage are recovered and the segment is kept for inspection", "path", s.path, "bytes_skipped", s.sc.skipped, "records", len(s.rows), "kept_as", s.path+walDamaged)
		case s.sc.skipped > 0:
			log.Warn("message log: a write-ahead segment ends in a record that was being written at a stop (never acknowledged); it is left out", "path", s.path, "bytes", s.sc.skipped)
		}
		for rows := s.rows; len(rows) > 0; {
			n := min(len(rows), 500)
			var seq uint64 // no predictions here: replayed rows are placed by reconcile
			ins, err := w.commit(rows[:n], nil, 0, 0, &seq)
			if err != nil {
				return total, wf.last, fmt.Errorf("commit %s to the index: %w", s.path, err)
			}
			total += len(ins)
			rows = rows[n:]
		}
		if err := ctx.Err(); err != nil {
			return total, wf.last, err
		}
	}
	// Only once every segment is committed: a failure above leaves them
	// all for the next attempt.
	for _, s := range reads {
		if s.sc.damaged {
			err = os.Rename(s.path, s.path+walDamaged)
		} else {
			err = os.Remove(s.path)
		}
		if err != nil {
			return total, wf.last, err
		}
	}
	return total, wf.last, syncDir(filepath.Join(dir, WALDir))
}

// faults holds the write errors injected by FailWrites, by segment
// directory.
var faults sync.Map

// FailWrites makes every write-ahead segment write of the log in dir fail
// with err, as a failing disk would, until restore is called. It is for
// tests of what callers do when a record handed to the log is refused
// after Begin accepted it.
func FailWrites(dir string, err error) (restore func()) {
	key := filepath.Join(dir, WALDir)
	faults.Store(key, err)
	return func() { faults.Delete(key) }
}

func injectedFault(dir string) error {
	if err, ok := faults.Load(dir); ok {
		return err.(error)
	}
	return nil
}
