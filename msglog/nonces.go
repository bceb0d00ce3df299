package msglog

import (
	"context"
	"fmt"
	"time"
)

// nonceTable (migration 6) keeps the nonces of the requests a gateway's
// provider side accepted, until they expire (unix milliseconds). Like
// quota_usage it is not per log: every node sharing a PostgreSQL index
// writes to it, so a request replayed to another node is refused. A
// SQLite index (one node) has the table but does not use it: that node
// keeps its nonces in memory.
const nonceTable = `CREATE TABLE replay_nonces (
	nonce BYTEA NOT NULL PRIMARY KEY,
	expires_at BIGINT NOT NULL
);
CREATE INDEX replay_nonces_expiry ON replay_nonces (expires_at);`

// noncePurgeEvery is how often expired nonces are deleted, at most.
const noncePurgeEvery = 10 * time.Second

// SharedIndex reports whether the record index is on PostgreSQL, shared
// by the nodes of a gateway.
func (l *Log) SharedIndex() bool { return l.db.Postgres }

// RecordNonce records a request nonce in the shared index until expires
// and reports whether it was new: false means a replay. The insert is
// committed before it returns. About every noncePurgeEvery it also
// deletes the nonces that have expired. Only for a PostgreSQL index.
func (l *Log) RecordNonce(ctx context.Context, nonce []byte, expires time.Time) (bool, error) {
	if !l.db.Postgres {
		return false, fmt.Errorf("record nonce: the record index is not shared")
	}
	now := l.now()
	if last := l.noncePurged.Load(); now.UnixMilli()-last >= noncePurgeEvery.Milliseconds() && l.noncePurged.CompareAndSwap(last, now.UnixMilli()) {
		if _, err := l.db.ExecContext(ctx, `DELETE FROM replay_nonces WHERE expires_at < $1`, now.UnixMilli()); err != nil {
			return false, fmt.Errorf("purge nonces: %w", err)
		}
	}
	res, err := l.db.ExecContext(ctx, `INSERT INTO replay_nonces (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING`,
		nonce, expires.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("record nonce: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record nonce: %w", err)
	}
	return n == 1, nil
}
