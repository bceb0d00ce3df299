package msglog

import (
	"slices"

	"github.com/sampan-exchange/sampan/store"
)

// IndexMigrations returns the record index's schema migrations for
// PostgreSQL or SQLite, each with its rollback, for `sampan migrate`.
func IndexMigrations(postgres bool) []store.Migration {
	if postgres {
		return slices.Clone(indexPG)
	}
	return slices.Clone(indexSQLite)
}
