package msglog

import (
	"testing"

	"github.com/sampan-exchange/sampan/store/pgtest"
	"github.com/sampan-exchange/sampan/store/storetest"
)

// TestIndexRollbacks: every migration of the record index, on SQLite and
// on PostgreSQL, has a rollback that returns the schema to the version
// before it.
func TestIndexRollbacks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { storetest.CheckRollbacks(t, "", "", indexSQLite) })
	t.Run("postgres", func(t *testing.T) { storetest.CheckRollbacks(t, pgtest.Start(t), "", indexPG) })
}
