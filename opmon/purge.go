package opmon

import (
	"context"
	"fmt"
	"time"
)

// purgeChunk bounds the rows one DELETE removes, so that a large purge
// holds SQLite's write lock for short spells between the writer's
// commits.
const purgeChunk = 5000

// purgeEvery is the purger goroutine: a purge at the start, then every
// PurgeInterval, until Close.
func (s *Store) purgeEvery() {
	defer s.wg.Done()
	t := time.NewTicker(s.opts.PurgeInterval)
	defer t.Stop()
	for {
		if _, err := s.Purge(s.ctx, s.now().Add(-s.opts.Retention)); err != nil && s.ctx.Err() == nil {
			s.log.Error("monitoring records not purged", "err", err)
		}
		select {
		case <-t.C:
		case <-s.stop:
			return
		}
	}
}

// Purge deletes the records whose request came in before before and
// returns how many it deleted; they are counted in
// sampan_opmon_purged_total.
func (s *Store) Purge(ctx context.Context, before time.Time) (int64, error) {
	q := s.db.Q(`DELETE FROM opmon_records WHERE id IN (SELECT id FROM opmon_records WHERE request_in_at < ? ORDER BY request_in_at LIMIT ?)`)
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, q, before.UnixMicro(), purgeChunk)
		if err != nil {
			return total, fmt.Errorf("purge monitoring records: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("purge monitoring records: %w", err)
		}
		total += n
		s.purged.Add(uint64(n))
		if n < purgeChunk {
			return total, nil
		}
	}
}
