package opmon

import (
	"testing"

	"github.com/sampan-exchange/sampan/store/pgtest"
	"github.com/sampan-exchange/sampan/store/storetest"
)

// TestSchemaRollbacks: every migration of the monitoring records, on
// SQLite and on PostgreSQL, has a rollback that returns the schema to the
// version before it.
func TestSchemaRollbacks(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { storetest.CheckRollbacks(t, "", SchemaName, sqliteSchema) })
	t.Run("postgres", func(t *testing.T) { storetest.CheckRollbacks(t, pgtest.Start(t), SchemaName, pgSchema) })
}
