// Package storetest checks a component's migrations in its tests: that
// every migration has a written rollback, and that the rollbacks return
// the schema to what it was at each version.
package storetest

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/store"
)

// CheckRollbacks migrates a new database forward one migration at a time,
// noting the schema at each version, then rolls it back one migration at
// a time and checks that the schema at each version is the one noted;
// then migrates forward again and checks the newest schema. dsn is a
// PostgreSQL DSN, or "" for a SQLite database in a temporary directory;
// name is the schema's name as given to store.OpenDSNNamed ("" for
// store.OpenDSN).
func CheckRollbacks(t *testing.T, dsn, name string, migrations []store.Migration) {
	t.Helper()
	ctx := t.Context()
	for i, m := range migrations {
		if strings.TrimSpace(m.Down) == "" {
			t.Errorf("migration %d has no rollback", i+1)
		}
	}
	path := filepath.Join(t.TempDir(), "schema.db")
	open := func(n int) *store.DB {
		t.Helper()
		var db *store.DB
		var err error
		if name == "" {
			db, err = store.OpenDSN(ctx, dsn, path, migrations[:n], migrations[:n])
		} else {
			db, err = store.OpenDSNNamed(ctx, name, dsn, path, migrations[:n], migrations[:n])
		}
		if err != nil {
			t.Fatalf("migrate to version %d: %v", n, err)
		}
		return db
	}
	forward := make([][]string, len(migrations)+1)
	for n := range forward {
		db := open(n)
		forward[n] = Schema(t, db)
		db.Close()
	}
	db := open(len(migrations))
	for n := len(migrations) - 1; n >= 0; n-- {
		if err := store.Rollback(ctx, db, name, migrations, n); err != nil {
			t.Fatalf("roll back to version %d: %v", n, err)
		}
		if got := Schema(t, db); !slices.Equal(got, forward[n]) {
			t.Errorf("after rolling back to version %d the schema differs from version %d's:\n%s", n, n, diff(forward[n], got))
		}
		if h, err := store.History(ctx, db, name); err != nil || len(h) != n {
			t.Errorf("after rolling back to version %d the history holds %d migrations (%v)", n, len(h), err)
		}
	}
	db.Close()
	db = open(len(migrations))
	defer db.Close()
	if got := Schema(t, db); !slices.Equal(got, forward[len(migrations)]) {
		t.Errorf("migrated forward again, the schema differs:\n%s", diff(forward[len(migrations)], got))
	}
}

// space is a run of white space, and spaced white space beside
// punctuation, which differ between a table as written and as SQLite
// keeps it after a rename.
var (
	space  = regexp.MustCompile(`\s+`)
	spaced = regexp.MustCompile(`\s*([(),])\s*`)
)

// Schema describes the schema of db, one sorted line per table, column,
// index and constraint: from sqlite_master (the SQL normalised for white
// space and quoting) on SQLite, from information_schema and pg_indexes on
// PostgreSQL.
func Schema(t testing.TB, db *store.DB) []string {
	t.Helper()
	ctx := context.Background()
	var queries []string
	if db.Postgres {
		queries = []string{
			`SELECT 'column ' || table_name || '.' || column_name || ' ' || data_type || ' nullable=' || is_nullable || ' default=' || COALESCE(column_default, '')
				FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
			`SELECT 'index ' || tablename || ' ' || indexdef FROM pg_indexes WHERE schemaname = current_schema()`,
			`SELECT 'constraint ' || tc.table_name || ' ' || tc.constraint_name || ' ' || tc.constraint_type
				FROM information_schema.table_constraints tc WHERE tc.table_schema = current_schema() AND tc.constraint_type <> 'CHECK'`,
			`SELECT 'check ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
				WHERE contype = 'c' AND connamespace = current_schema()::regnamespace`,
			`SELECT 'foreign key ' || conrelid::regclass::text || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
				WHERE contype = 'f' AND connamespace = current_schema()::regnamespace`,
		}
	} else {
		queries = []string{`SELECT type || ' ' || name || ' on ' || tbl_name || ': ' || COALESCE(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'`}
	}
	var out []string
	for _, q := range queries {
		rows, err := db.QueryContext(ctx, q)
		if err != nil {
			t.Fatalf("read schema: %v", err)
		}
		var lines []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatalf("read schema: %v", err)
			}
			s = strings.ReplaceAll(s, `"`, "")
			s = spaced.ReplaceAllString(space.ReplaceAllString(s, " "), "$1")
			lines = append(lines, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatalf("read schema: %v", err)
		}
		rows.Close()
		// Columns keep their order; the rest is a set.
		if !strings.HasPrefix(q, "SELECT 'column") {
			slices.Sort(lines)
		}
		out = append(out, lines...)
	}
	return out
}

// diff lists the lines only one of want and got has.
func diff(want, got []string) string {
	var b strings.Builder
	for _, w := range want {
		if !slices.Contains(got, w) {
			fmt.Fprintf(&b, "- %s\n", w)
		}
	}
	for _, g := range got {
		if !slices.Contains(want, g) {
			fmt.Fprintf(&b, "+ %s\n", g)
		}
	}
	if b.Len() == 0 {
		return "(the same lines in another order)\n"
	}
	return b.String()
}
