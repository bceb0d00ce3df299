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
var chunks = [...]int{128, 32, 8, 1}

// writer holds the prepared INSERTs and the buffers the writer goroutine
// reuses from batch to batch.
type writer struct {
	db    *store.DB
	ins   [len(chunks)]*sql.Stmt
	args  []any
	steps []byte
	batch []*Record
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

// write is the writer goroutine: it gathers queued records into batches
// and stores each in one transaction, until Close.
func (s *Store) write() {
	defer s.wg.Done()
	t := time.NewTicker(flushEvery)
	defer t.Stop()
	w := &s.w
	for {
		select {
		case r := <-s.queue:
			w.batch = append(w.batch, r)
			if len(w.batch) >= maxBatch {
				s.flush()
			}
		case <-t.C:
			s.flush()
		case <-s.stop:
			for {
				select {
				case r := <-s.queue:
					w.batch = append(w.batch, r)
					if len(w.batch) >= maxBatch {
						s.flush()
					}
					continue
				default:
				}
				break
			}
			s.flush()
			return
		}
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
		s.log.Error("monitoring records not stored", "records", n, "err", err)
		s.drop(n, "write failed")
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

// bind sets a row's arguments, in the order of columns.
func (w *writer) bind(a []any, r *Record, now time.Time) {
	in := r.RequestInAt
	if in.IsZero() {
		in = now
	}
	a[0] = r.Side
	a[1] = r.Gateway
	a[2] = r.PeerGateway
	a[3] = micros(in)
	a[4] = micros(r.RequestOutAt)
	a[5] = micros(r.ResponseInAt)
	a[6] = micros(r.ResponseOutAt)
	a[7] = r.Client
	a[8] = r.Service
	a[9] = r.XRoadID
	a[10] = r.RequestID
	a[11] = r.UserID
	a[12] = r.Issue
	a[13] = r.RepresentedParty
	a[14] = r.Protocol
	a[15] = r.Method
	a[16] = r.Path
	a[17] = r.RequestBytes
	a[18] = r.ResponseBytes
	a[19] = int64(r.Status)
	a[20] = r.Succeeded
	a[21] = r.ErrorType
	a[22] = r.ErrorMessage
	a[23] = r.Traceparent
	w.steps = appendSteps(w.steps[:0], r.Steps)
	a[24] = string(w.steps)
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

// appendSteps appends the stored form of steps: "name=µs" joined by ";",
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

// parseSteps reads the stored form of steps.
func parseSteps(s string) ([]Step, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ";")
	steps := make([]Step, len(parts))
	for i, p := range parts {
		name, us, ok := strings.Cut(p, "=")
		n, err := strconv.ParseInt(us, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("stored steps %q: step %d is not name=microseconds", s, i)
		}
		if strings.Contains(name, "%") {
			name = strings.NewReplacer("%3D", "=", "%3B", ";", "%25", "%").Replace(name)
		}
		steps[i] = Step{Name: name, Duration: time.Duration(n) * time.Microsecond}
	}
	return steps, nil
}
