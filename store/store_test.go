package store

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/sampan-exchange/sampan/store/pgtest"
)

var testMigrations = []string{
	`CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)`,
	`ALTER TABLE t ADD COLUMN w TEXT`,
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
	db, err := Open(t.Context(), filepath.Join(t.TempDir(), "p.db"), []string{`CREATE TABLE t (x INTEGER)`}, "cache_size(-12345)")
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
	schema := []string{`CREATE TABLE t (x INTEGER)`}
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
	other := []string{`CREATE TABLE other_t (k TEXT PRIMARY KEY)`}
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
