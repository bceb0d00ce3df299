package msglog

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/store"

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

// TestNewerIndexRefused: a record index a newer sampan migrated is
// refused, naming the index and the release that wrote it; its rows stay.
func TestNewerIndexRefused(t *testing.T) {
	test := func(t *testing.T, dsn string) {
		ctx := t.Context()
		dir := t.TempDir()
		newer := append(slices.Clone(indexSQLite), store.Migration{Up: `CREATE TABLE later (x INTEGER)`, Down: `DROP TABLE later`})
		if dsn != "" {
			newer = append(slices.Clone(indexPG), newer[len(newer)-1])
		}
		db, err := store.OpenDSN(ctx, dsn, filepath.Join(dir, IndexFile), newer, newer)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, db.Q(`UPDATE schema_history SET sampan_version = ? WHERE version = ?`), "v3.2.1", len(newer)); err != nil {
			t.Fatal(err)
		}
		db.Close()
		_, err = OpenIndex(ctx, dir, dsn)
		var ne *store.NewerSchemaError
		if !errors.As(err, &ne) || !errors.Is(err, ErrLogging) {
			t.Fatalf("opening a newer index: %v", err)
		}
		for _, want := range []string{"record index", fmt.Sprintf("schema version %d", len(newer)), "use sampan v3.2.1 or later"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%q does not say %q", err, want)
			}
		}
		db, err = store.OpenDSN(ctx, dsn, filepath.Join(dir, IndexFile), newer, newer)
		if err != nil {
			t.Fatalf("the newer release reopening it: %v", err)
		}
		db.Close()
	}
	t.Run("sqlite", func(t *testing.T) { test(t, "") })
	t.Run("postgres", func(t *testing.T) { test(t, pgtest.Start(t)) })
}
