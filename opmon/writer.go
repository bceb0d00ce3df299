package opmon

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/store"
)

// The writer commits a batch once maxBatch records wait, or every
// flushEvery.
const (
	maxBatch   = 512
	flushEvery = 200 * time.Millisecond
)

// chunks are the row counts of the prepared multi-row INSERTs, largest
// first; a batch is stored as a sum of them.
var chunks = [...]int{512, 64, 8, 1}

// writer holds the prepared INSERTs and the buffers the writer goroutine
// reuses from batch to batch.
type writer struct {
	db   *store.DB
	ins  [len(chunks)]*sql.Stmt
	args []any
	// details holds the packed details of a statement's rows.
	details []byte
	batch   []*Record
}

func (w *writer) prepare(ctx context.Context, db *store.DB) error {
	w.db = db
	for i, n := range chunks {
		var b strings.Builder
		b.WriteString("INSERT INTO opmon_records (" + columns + ") VALUES ")
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", nColumns), ", ") + ")"
		for j := range n {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(row)
		}
		st, err := db.PrepareContext(ctx, db.Q(b.String()))
		if err != nil {
			w.close()
			return fmt.Errorf("prepare insert: %w", err)
		}
		w.ins[i] = st
	}
	w.args = make([]any, chunks[0]*nColumns)
	w.batch = make([]*Record, 0, maxBatch)
	return nil
}

func (w *writer) close() {
	for _, st := range w.ins {
		if st != nil {
			st.Close()
		}
	}
}

// write is the writer goroutine: every flushEvery, or as soon as a
// batch's worth waits, it stores what is queued in batches, until Close.
func (s *Store) write() {
	defer s.wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	for {
		select {
		case <-s.kick:
		case <-t.C:
		case <-s.stop:
			s.drain(-1)
			return
		}
		s.drain(len(s.queue))
	}
}

// drain stores n queued records (all of them, with n < 0, until the
// queue is empty), then what remains of the batch.
func (s *Store) drain(n int) {
	for i := 0; n < 0 || i < n; i++ {
		select {
		case r := <-s.queue:
			s.take(r)
		default:
			s.flush()
			return
		}
	}
	s.flush()
}

// take adds r to the batch, storing the batch once it is full.
func (s *Store) take(r *Record) {
	s.w.batch = append(s.w.batch, r)
	if len(s.w.batch) >= maxBatch {
		s.flush()
	}
}

// flush stores the batch. A batch that fails is dropped and counted:
// monitoring never holds traffic back to retry.
func (s *Store) flush() {
	w := &s.w
	n := len(w.batch)
	if n == 0 {
		return
	}
	err := s.insert(s.ctx, w.batch)
	clear(w.batch)
	w.batch = w.batch[:0]
	if err != nil {
		s.drop(n, err.Error())
		return
	}
	s.stored.Add(uint64(n))
}

// insert stores recs in one transaction.
func (s *Store) insert(ctx context.Context, recs []*Record) error {
	w := &s.w
	tx, err := w.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store monitoring records: %w", err)
	}
	defer tx.Rollback()
	if w.db.Postgres {
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
			return fmt.Errorf("store monitoring records: %w", err)
		}
	}
	now := s.now()
	for i, size := range chunks {
		var st *sql.Stmt
		for len(recs) >= size {
			w.details = w.details[:0]
			for j, r := range recs[:size] {
				w.bind(w.args[j*nColumns:(j+1)*nColumns], r, now)
			}
			if st == nil {
				st = tx.StmtContext(ctx, w.ins[i])
			}
			if _, err := st.ExecContext(ctx, w.args[:size*nColumns]...); err != nil {
				return fmt.Errorf("store monitoring records: %w", err)
			}
			recs = recs[size:]
		}
	}
	clear(w.args)
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("store monitoring records: %w", err)
	}
	return nil
}

// Boxed once: the sides and the empty text, so that binding them does not
// allocate.
var (
	boxedConsumer any = "consumer"
	boxedProvider any = "provider"
	boxedEmpty    any = ""
)

func boxText(s string) any {
	switch s {
	case "":
		return boxedEmpty
	case "consumer":
		return boxedConsumer
	case "provider":
		return boxedProvider
	}
	return s
}

// bind sets a row's arguments, in the order of columns. The packed detail
// is appended to w.details, emptied before each statement (SQLite copies
// what it binds).
func (w *writer) bind(a []any, r *Record, now time.Time) {
	in := r.RequestInAt
	if in.IsZero() {
		in = now
	}
	at := in.UnixMicro()
	a[0] = at
	a[1] = boxText(r.Side)
	a[2] = boxText(r.Client)
	a[3] = boxText(r.Service)
	a[4] = int64(r.Status)
	a[5] = r.Succeeded
	a[6] = boxText(r.ErrorType)
	start := len(w.details)
	w.details = appendDetail(w.details, r, at)
	a[7] = w.details[start:len(w.details):len(w.details)]
}

// micros is t in Unix microseconds, 0 for the zero time.
func micros(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMicro()
}

// fromMicros is the inverse of micros, in UTC.
func fromMicros(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// appendSteps appends the text form of steps (CSV's): "name=µs" joined by ";",
// with '%', '=' and ';' in a name escaped as %25, %3D and %3B.
func appendSteps(b []byte, steps []Step) []byte {
	for i, st := range steps {
		if i > 0 {
			b = append(b, ';')
		}
		for j := 0; j < len(st.Name); j++ {
			switch c := st.Name[j]; c {
			case '%':
				b = append(b, "%25"...)
			case '=':
				b = append(b, "%3D"...)
			case ';':
				b = append(b, "%3B"...)
			default:
				b = append(b, c)
			}
		}
		b = append(b, '=')
		b = strconv.AppendInt(b, st.Duration.Microseconds(), 10)
	}
	return b
}
