package gateway

import (
	"testing"

	"github.com/sampan-exchange/sampan/store/storetest"
)

// TestStateRollbacks: every migration of state.db has a rollback that
// returns the schema to the version before it.
func TestStateRollbacks(t *testing.T) {
	storetest.CheckRollbacks(t, "", "", stateMigrations)
}
