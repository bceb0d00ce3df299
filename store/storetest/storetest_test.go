package storetest

import (
	"testing"

	"github.com/sampan-exchange/sampan/store"
	"github.com/sampan-exchange/sampan/store/pgtest"
)

// TestCheckRollbacks: the check passes a faithful rollback on both
// dialects; the table rebuild a rollback of SQLite needs compares equal
// to the table as first written.
func TestCheckRollbacks(t *testing.T) {
	sqlite := []store.Migration{
		{Up: `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`, Down: `DROP TABLE t`},
		{Up: `CREATE TABLE t2 (k TEXT PRIMARY KEY, v INTEGER); INSERT INTO t2 SELECT * FROM t; DROP TABLE t; ALTER TABLE t2 RENAME TO t;`,
			Down: `CREATE TABLE t1 (k TEXT PRIMARY KEY, v INTEGER NOT NULL); INSERT INTO t1 SELECT * FROM t; DROP TABLE t; ALTER TABLE t1 RENAME TO t;`},
		{Up: `CREATE INDEX t_v ON t (v)`, Down: `DROP INDEX t_v`},
	}
	t.Run("sqlite", func(t *testing.T) { CheckRollbacks(t, "", "", sqlite) })
	pg := []store.Migration{
		{Up: `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`, Down: `DROP TABLE t`},
		{Up: `ALTER TABLE t ALTER COLUMN v DROP NOT NULL; ALTER TABLE t ADD COLUMN w TEXT`, Down: `ALTER TABLE t DROP COLUMN w; ALTER TABLE t ALTER COLUMN v SET NOT NULL`},
	}
	t.Run("postgres", func(t *testing.T) { CheckRollbacks(t, pgtest.Start(t), "named", pg) })
}
