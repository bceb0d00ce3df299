package authority

import (
	"slices"

	"github.com/sampan-exchange/sampan/store"
)

// Migrations returns the registry's schema migrations, each with its
// rollback, for `sampan migrate`; the registry is SQLite only.
func Migrations() []store.Migration { return slices.Clone(migrations) }
