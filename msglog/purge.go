package msglog

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"time"
)

// purgeBatch bounds the records one purge record covers.
const purgeBatch = 10000

// purgeSelect finds the oldest records a purge may remove, through the
// index of live rows (records_live, migration 4).
const purgeSelect = `SELECT digest, bodies, leaf_index FROM records WHERE log = ? AND ` + liveRows + ` AND request_at < ? AND leaf_index < ? ORDER BY request_at LIMIT ?`

// purged is a record a purge removes.
type purged struct {
	digest []byte
	stem   string
	leaf   int64
}

func (l *Log) purgeLoop(retention, every time.Duration) {
	defer l.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		ctx, cancel := context.WithTimeout(l.bg, every)
		n, err := l.Purge(ctx, l.now().Add(-retention))
		cancel()
		switch {
		case err != nil:
			l.log.Error("purging old records failed; will retry", "err", err)
		case n > 0:
			l.log.Info("records past retention purged", "records", n, "retention", retention.String())
		}
		select {
		case <-l.done:
			return
		case <-t.C:
		}
	}
}

// Purge removes the records (and stored bodies) of exchanges that began
// before the given time. Each batch is first logged as a purge record
// naming how many records it covers and the hash of their digests; then
// the records lose their content but keep their digests, which are the
// leaves, so the tree and proofs of the remaining records still verify.
// It returns how many records it purged.
func (l *Log) Purge(ctx context.Context, before time.Time) (int, error) {
	l.purgeMu.Lock()
	defer l.purgeMu.Unlock()
	total := 0
	for {
		// Rows purged before are not read again; rows not yet leaves, or
		// whose position is not yet confirmed (a prediction, see
		// indexWriter), wait for a later purge.
		var confirmed int64
		if err := l.db.QueryRowContext(ctx, l.db.Q(`SELECT reconciled FROM log_state WHERE log = ?`), l.origin).Scan(&confirmed); err != nil {
			return total, err
		}
		rs, err := l.db.QueryContext(ctx, l.db.Q(purgeSelect), l.origin, before.UnixMilli(), confirmed, purgeBatch)
		if err != nil {
			return total, err
		}
		var batch []purged
		for rs.Next() {
			var p purged
			if err := rs.Scan(&p.digest, &p.stem, &p.leaf); err != nil {
				rs.Close()
				return total, err
			}
			batch = append(batch, p)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return total, err
		}
		if len(batch) == 0 {
			return total, nil
		}
		// The purge record hashes the digests in leaf order, the order
		// log verify reads them in.
		slices.SortFunc(batch, func(a, b purged) int { return cmp.Compare(a.leaf, b.leaf) })
		h := sha256.New()
		for _, p := range batch {
			h.Write(p.digest)
		}
		b := before.UTC()
		pr := &Record{Kind: KindPurge, Gateway: l.name, RequestAt: l.now().UTC(), ResponseAt: l.now().UTC(),
			PurgedBefore: &b, PurgedCount: len(batch), PurgedDigestsSHA256: hex.EncodeToString(h.Sum(nil))}
		b2, err := pr.marshal()
		if err != nil {
			return total, err
		}
		prDigest := recordDigest(b2)
		prRow, err := l.append(ctx, pr, b2)
		if err != nil {
			return total, fmt.Errorf("log the purge: %w", err)
		}
		// The purge record is a leaf before anything is removed, so that
		// the log never shows a removal its purge record does not cover.
		if err := l.idx.sync(ctx); err != nil {
			return total, fmt.Errorf("index the purge record: %w", err)
		}
		if err := l.integ.waitSeq(ctx, prRow.seq); err != nil {
			return total, fmt.Errorf("wait for the purge record to join the tree: %w", err)
		}
		for _, p := range batch {
			if p.stem != "" {
				removeBodies(l.dir, p.stem)
			}
		}
		tx, err := l.db.BeginTx(ctx, nil)
		if err != nil {
			return total, err
		}
		st, err := tx.PrepareContext(ctx, l.db.Q(`UPDATE records SET record = NULL, purged_by = ? WHERE log = ? AND leaf_index = ? AND digest = ?`))
		if err != nil {
			tx.Rollback()
			return total, err
		}
		for _, p := range batch {
			if _, err := st.ExecContext(ctx, prDigest[:], l.origin, p.leaf, p.digest); err != nil {
				st.Close()
				tx.Rollback()
				return total, err
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return total, err
		}
		total += len(batch)
		if len(batch) < purgeBatch {
			return total, nil
		}
	}
}
