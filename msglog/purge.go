package msglog

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// purgeBatch bounds the records one purge record covers.
const purgeBatch = 10000

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
		rs, err := l.db.QueryContext(ctx, l.db.Q(`SELECT digest, bodies, leaf_index FROM records WHERE log = ? AND kind <> ? AND record IS NOT NULL AND leaf_index IS NOT NULL AND request_at < ? ORDER BY leaf_index LIMIT ?`),
			l.origin, KindPurge, before.UnixMilli(), purgeBatch)
		if err != nil {
			return total, err
		}
		var digests [][]byte
		var stems []string
		var leaves []int64
		h := sha256.New()
		for rs.Next() {
			var d []byte
			var stem string
			var leaf int64
			if err := rs.Scan(&d, &stem, &leaf); err != nil {
				rs.Close()
				return total, err
			}
			digests = append(digests, d)
			stems = append(stems, stem)
			leaves = append(leaves, leaf)
			h.Write(d)
		}
		rs.Close()
		if err := rs.Err(); err != nil {
			return total, err
		}
		if len(digests) == 0 {
			return total, nil
		}
		b := before.UTC()
		pr := &Record{Kind: KindPurge, Gateway: l.name, RequestAt: l.now().UTC(), ResponseAt: l.now().UTC(),
			PurgedBefore: &b, PurgedCount: len(digests), PurgedDigestsSHA256: hex.EncodeToString(h.Sum(nil))}
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
		for _, s := range stems {
			if s != "" {
				removeBodies(l.dir, s)
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
		for i, d := range digests {
			if _, err := st.ExecContext(ctx, prDigest[:], l.origin, leaves[i], d); err != nil {
				st.Close()
				tx.Rollback()
				return total, err
			}
		}
		st.Close()
		if err := tx.Commit(); err != nil {
			return total, err
		}
		total += len(digests)
		if len(digests) < purgeBatch {
			return total, nil
		}
	}
}
