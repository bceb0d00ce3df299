package gateway

import (
	"slices"

	"github.com/sampan-exchange/sampan/store"
)

// StateMigrations returns the schema migrations of a gateway's state.db,
// each with its rollback, for `sampan migrate`.
func StateMigrations() []store.Migration { return slices.Clone(stateMigrations) }
