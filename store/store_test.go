package store

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/store/pgtest"
)

var testMigrations = []Migration{
	{Up: `CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`, Down: `DROP TABLE t`},
	{Up: `ALTER TABLE t ADD COLUMN w TEXT`, Down: `ALTER TABLE t DROP COLUMN w`},
}

// Both dialects run the same queries through Q, and reopening does not
// migrate twice.
func TestBothDialects(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct{ name, dsn string }{
		{"sqlite", ""},
		{"postgres", "pg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := tc.dsn
			if dsn == "pg" {
				dsn = pgtest.Start(t)
			}
			path := filepath.Join(t.TempDir(), "x.db")
			db, err := OpenDSN(ctx, dsn, path, testMigrations, testMigrations)
			if err != nil {
				t.Fatal(err)
			}
			if db.Postgres != (dsn != "") {
				t.Fatalf("Postgres = %v for %q", db.Postgres, dsn)
			}
			if _, err := db.ExecContext(ctx, db.Q(`INSERT INTO t (k, v, w) VALUES (?, ?, ?)`), "a", 7, "x"); err != nil {
				t.Fatal(err)
			}
			db.Close()
			db, err = OpenDSN(ctx, dsn, path, testMigrations, testMigrations)
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			defer db.Close()
			var v int
			var w string
			if err := db.QueryRowContext(ctx, db.Q(`SELECT v, w FROM t WHERE k = ?`), "a").Scan(&v, &w); err != nil || v != 7 || w != "x" {
				t.Fatalf("read back %d %q %v", v, w, err)
			}
			// A newer schema than the program knows is refused.
			db.Close()
			if _, err := OpenDSN(ctx, dsn, path, testMigrations[:1], testMigrations[:1]); err == nil {
				t.Fatal("opening a newer schema succeeded")
			}
		})
	}
	if _, err := OpenDSN(ctx, "mysql://x", "", nil, nil); err == nil {
		t.Fatal("a non-PostgreSQL DSN was accepted")
	}
}

func TestRedact(t *testing.T) {
	if got := redact("postgres://u:secret@h/db"); got != "postgres://u:***@h/db" {
		t.Fatal(got)
	}
}

// TestPragmas: extra settings apply to every connection of the pool.
func TestPragmas(t *testing.T) {
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "p.db"), []Migration{{Up: `CREATE TABLE t (x INTEGER)`, Down: `DROP TABLE t`}}, "cache_size(-12345)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// Two connections at once: both carry the setting.
	c1, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	c2, err := db.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	for i, c := range []*sql.Conn{c1, c2} {
		var n int
		if err := c.QueryRowContext(t.Context(), `PRAGMA cache_size`).Scan(&n); err != nil || n != -12345 {
			t.Errorf("connection %d: cache_size %d, %v", i, n, err)
		}
	}
}

// TestPageSize: a page size given to Open applies to a database it
// creates (in WAL mode, with the schema migrated) and leaves an existing
// database's unchanged, contents intact.
func TestPageSize(t *testing.T) {
	dir := t.TempDir()
	pageSize := func(db *sql.DB) (n int, mode string) {
		t.Helper()
		if err := db.QueryRowContext(t.Context(), `PRAGMA page_size`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(t.Context(), `PRAGMA journal_mode`).Scan(&mode); err != nil {
			t.Fatal(err)
		}
		return n, mode
	}
	schema := []Migration{{Up: `CREATE TABLE t (x INTEGER)`, Down: `DROP TABLE t`}}
	fresh, err := Open(t.Context(), filepath.Join(dir, "new.db"), schema, "page_size(16384)", "cache_size(-100)")
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if n, mode := pageSize(fresh); n != 16384 || mode != "wal" {
		t.Fatalf("new database: page size %d, journal %s; want 16384, wal", n, mode)
	}
	if _, err := fresh.ExecContext(t.Context(), `INSERT INTO t VALUES (1)`); err != nil {
		t.Fatalf("schema not migrated: %v", err)
	}
	// The database and SQLite's files beside it are the owner's alone.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		st, err := os.Stat(filepath.Join(dir, "new.db"+suffix))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("new.db%s: %v, %v; want mode 0600", suffix, st.Mode().Perm(), err)
		}
	}
	if n, err := PageSize(filepath.Join(dir, "new.db")); n != 16384 || err != nil {
		t.Fatalf("PageSize: %d, %v", n, err)
	}
	// An empty file (a creation cut short) still becomes a new database
	// with the page size.
	if err := os.WriteFile(filepath.Join(dir, "empty.db"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	empty, err := Open(t.Context(), filepath.Join(dir, "empty.db"), schema, "page_size(16384)")
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	if n, mode := pageSize(empty); n != 16384 || mode != "wal" {
		t.Fatalf("empty file: page size %d, journal %s; want 16384, wal", n, mode)
	}
	if n, err := PageSize(filepath.Join(dir, "none.db")); n != 0 || err != nil {
		t.Fatalf("PageSize of no database: %d, %v", n, err)
	}

	old, err := Open(t.Context(), filepath.Join(dir, "old.db"), schema)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.ExecContext(t.Context(), `INSERT INTO t VALUES (7)`); err != nil {
		t.Fatal(err)
	}
	old.Close()
	again, err := Open(t.Context(), filepath.Join(dir, "old.db"), schema, "page_size(16384)")
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	var x int
	if err := again.QueryRowContext(t.Context(), `SELECT x FROM t`).Scan(&x); err != nil || x != 7 {
		t.Fatalf("existing database: row %d, %v", x, err)
	}
	if n, mode := pageSize(again); n != 4096 || mode != "wal" {
		t.Fatalf("existing database: page size %d, journal %s; want its own 4096, wal", n, mode)
	}
}

// Two components sharing a PostgreSQL database each keep their own schema
// version: one at two migrations does not stop the other at one.
func TestNamedSchemasShareADatabase(t *testing.T) {
	ctx := t.Context()
	dsn := pgtest.Start(t)
	db, err := OpenDSN(ctx, dsn, "", testMigrations, testMigrations)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	other := []Migration{{Up: `CREATE TABLE other_t (k TEXT PRIMARY KEY)`, Down: `DROP TABLE other_t`}}
	for range 2 { // the second open migrates nothing
		db, err = OpenDSNNamed(ctx, "other", dsn, "", nil, other)
		if err != nil {
			t.Fatalf("named schema beside a newer one: %v", err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO other_t (k) VALUES ('a') ON CONFLICT DO NOTHING`); err != nil {
			t.Fatal(err)
		}
		db.Close()
	}
	if _, err := OpenDSN(ctx, dsn, "", testMigrations, testMigrations); err != nil {
		t.Fatalf("reopen the first: %v", err)
	}
	if _, err := OpenDSNNamed(ctx, "Bad-Name", dsn, "", nil, other); err == nil {
		t.Fatal("a schema name that is not a lowercase word was taken")
	}
}

// TestNewerSchemaRefused: a database that a newer sampan migrated is
// refused, naming the database, its version, the highest this binary
// knows and the version that wrote it, and is left as it was; one at
// exactly the known version opens.
func TestNewerSchemaRefused(t *testing.T) {
	third := append(slices.Clone(testMigrations), Migration{Up: `CREATE TABLE u (x INTEGER)`, Down: `DROP TABLE u`})
	for _, tc := range []struct{ name, dsn string }{
		{"sqlite", ""},
		{"postgres", "pg"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			dsn := tc.dsn
			if dsn == "pg" {
				dsn = pgtest.Start(t)
			}
			path := filepath.Join(t.TempDir(), "registry.db")
			db, err := OpenDSN(ctx, dsn, path, third, third)
			if err != nil {
				t.Fatal(err)
			}
			h, err := History(ctx, db, "")
			if err != nil || len(h) != 3 {
				t.Fatalf("history %v, %v; want 3 migrations", h, err)
			}
			for i, a := range h {
				if a.Version != i+1 || a.SampanVersion != running() || a.AppliedAt == "" {
					t.Errorf("history[%d] = %+v; want version %d by %q", i, a, i+1, running())
				}
			}
			// As if sampan v0.9.0 had applied the third migration.
			if _, err := db.ExecContext(ctx, db.Q(`UPDATE schema_history SET sampan_version = ? WHERE version = 3`), "v0.9.0"); err != nil {
				t.Fatal(err)
			}
			db.Close()

			_, err = OpenDSN(ctx, dsn, path, testMigrations, testMigrations)
			var newer *NewerSchemaError
			if !errors.As(err, &newer) {
				t.Fatalf("opening a newer schema: %v; want a NewerSchemaError", err)
			}
			if newer.Version != 3 || newer.Known != 2 || newer.WrittenBy != "v0.9.0" {
				t.Errorf("refusal %+v; want version 3, known 2, written by v0.9.0", newer)
			}
			where := path
			if dsn != "" {
				where = "schema_version"
			}
			for _, want := range []string{where, "schema version 3", "written by sampan v0.9.0", "knows, 2", "use sampan v0.9.0 or later"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("refusal %q does not say %q", err, want)
				}
			}
			if dsn != "" && strings.Contains(err.Error(), "password") {
				t.Errorf("refusal shows the DSN's password: %q", err)
			}
			// Nothing changed: the newer binary opens it as it left it.
			db, err = OpenDSN(ctx, dsn, path, third, third)
			if err != nil {
				t.Fatalf("the newer binary reopening: %v", err)
			}
			defer db.Close()
			if _, err := db.ExecContext(ctx, `INSERT INTO u (x) VALUES (1)`); err != nil {
				t.Fatalf("the newer table is gone: %v", err)
			}
		})
	}
}

// TestRollback: Rollback runs the Downs newest first and forgets their
// history; it refuses a target above the schema, and a failing Down
// leaves the schema at the version before it.
func TestRollback(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "x.db")
	broken := append(slices.Clone(testMigrations), Migration{Up: `CREATE TABLE u (x INTEGER)`, Down: `DROP TABLE no_such_table`})
	db, err := OpenDSN(ctx, "", path, broken, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := Rollback(ctx, db, "", broken, 4); err == nil {
		t.Error("rolling back up to version 4 was accepted")
	}
	if err := Rollback(ctx, db, "", testMigrations, 1); err == nil {
		t.Error("rolling back a schema newer than the migrations given was accepted")
	}
	err = Rollback(ctx, db, "", broken, 1)
	if err == nil || !strings.Contains(err.Error(), "rollback of migration 3") {
		t.Fatalf("a failing rollback: %v; want it to name migration 3", err)
	}
	if h, _ := History(ctx, db, ""); len(h) != 3 {
		t.Fatalf("after a failed rollback the history holds %d migrations; want 3", len(h))
	}
	if err := Rollback(ctx, db, "", testMigrations, 0); err == nil {
		t.Fatal("rolled back past a migration not given")
	}
	fixed := slices.Clone(broken)
	fixed[2].Down = `DROP TABLE u`
	if err := Rollback(ctx, db, "", fixed, 1); err != nil {
		t.Fatal(err)
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err != nil || v != 1 {
		t.Fatalf("version %d, %v; want 1", v, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO t (k, v, w) VALUES ('a', 1, 'x')`); err == nil {
		t.Fatal("column w survived the rollback of migration 2")
	}
	if h, _ := History(ctx, db, ""); len(h) != 1 {
		t.Fatalf("history holds %d migrations; want 1", len(h))
	}
}
