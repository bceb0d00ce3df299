package msglog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"time"
)

// quotaTable counts calls per agreement and UTC day. It is not per log:
// every node of a gateway cluster sharing a PostgreSQL index counts into
// the same rows.
const quotaTable = `CREATE TABLE quota_usage (
	agreement TEXT NOT NULL,
	day TEXT NOT NULL,
	calls BIGINT NOT NULL,
	PRIMARY KEY (agreement, day)
);`

// quotas counts calls. With PostgreSQL every call is one atomic
// conditional increment in the shared database (without waiting for the
// commit to reach disk: a counter lost in a crash errs towards the
// caller). With SQLite, a single node, counts are kept in memory and
// written every second and at close.
type quotas struct {
	mu    sync.Mutex
	mem   map[[2]string]int64
	dirty map[[2]string]bool
}

// CountCall counts one call under an agreement on the given day, unless
// limit calls were already counted; it reports whether the call is within
// the quota and how many were counted.
func (l *Log) CountCall(ctx context.Context, agreement string, now time.Time, limit int64) (bool, int64, error) {
	day := now.UTC().Format("2006-01-02")
	if l.db.Postgres {
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return false, 0, err
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
			return false, 0, err
		}
		var n int64
		err = tx.QueryRowContext(ctx, `INSERT INTO quota_usage (agreement, day, calls) VALUES ($1, $2, 1)
			ON CONFLICT (agreement, day) DO UPDATE SET calls = quota_usage.calls + 1 WHERE quota_usage.calls < $3
			RETURNING calls`, agreement, day, limit).Scan(&n)
		if errors.Is(err, sql.ErrNoRows) {
			return false, limit, nil
		}
		if err != nil {
			return false, 0, err
		}
		return true, n, tx.Commit()
	}
	q := &l.quotas
	q.mu.Lock()
	defer q.mu.Unlock()
	k := [2]string{agreement, day}
	n, ok := q.mem[k]
	if !ok {
		err := l.db.QueryRowContext(ctx, `SELECT calls FROM quota_usage WHERE agreement = ? AND day = ?`, agreement, day).Scan(&n)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return false, 0, err
		}
		if q.mem == nil {
			q.mem, q.dirty = map[[2]string]int64{}, map[[2]string]bool{}
		}
	}
	if n >= limit {
		q.mem[k] = n
		return false, n, nil
	}
	q.mem[k] = n + 1
	q.dirty[k] = true
	return true, n + 1, nil
}

// flushQuotas writes the in-memory counts (SQLite) and forgets past days.
func (l *Log) flushQuotas(ctx context.Context) error {
	q := &l.quotas
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.dirty) == 0 {
		return nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for k := range q.dirty {
		if _, err := tx.ExecContext(ctx, `INSERT INTO quota_usage (agreement, day, calls) VALUES (?, ?, ?)
			ON CONFLICT (agreement, day) DO UPDATE SET calls = excluded.calls`, k[0], k[1], q.mem[k]); err != nil {
			return fmt.Errorf("quota counts: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	today := l.now().UTC().Format("2006-01-02")
	for k := range q.mem {
		if k[1] < today {
			delete(q.mem, k)
		}
	}
	clear(q.dirty)
	return nil
}

func (l *Log) quotaLoop() {
	defer l.wg.Done()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			if err := l.flushQuotas(context.Background()); err != nil {
				l.log.Error("writing quota counts failed", "err", err)
			}
			return
		case <-t.C:
			if err := l.flushQuotas(context.Background()); err != nil {
				l.log.Warn("writing quota counts failed; will retry", "err", err)
			}
		}
	}
}
