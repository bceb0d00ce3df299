// Package store opens the embedded SQLite databases of the authority and the
// gateway and applies their schema migrations. Each component owns its
// schema and passes its migrations in, each with its written rollback; the
// store only runs them, in order, each in its own transaction, records how
// far it got and which sampan version applied each one, refuses a schema
// newer than the migrations it is given, and rolls back on request.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Open opens (creating when needed) the SQLite database at path with WAL
// journaling, foreign keys and a busy timeout, then applies migrations.
// migrations[i] moves the schema from version i to i+1. A database whose
// schema is newer than the migrations is refused with a *NewerSchemaError.
// pragmas are further PRAGMA settings for every connection, e.g.
// "cache_size(-65536)"; a "page_size(N)" among them applies to a database
// created now.
func Open(ctx context.Context, path string, migrations []Migration, pragmas ...string) (*sql.DB, error) {
	return open(ctx, path, versionTable, migrations, pragmas...)
}

func open(ctx context.Context, path, versionTable string, migrations []Migration, pragmas ...string) (*sql.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	// A page size takes effect only while the file is new: the driver
	// applies pragmas in alphabetical order, so journal_mode would fix the
	// page size first. A new database is therefore made with it alone.
	var perConn []string
	for _, p := range pragmas {
		if strings.HasPrefix(p, "page_size(") {
			if err := create(ctx, path, p); err != nil {
				return nil, err
			}
			continue
		}
		perConn = append(perConn, p)
	}
	q := url.Values{}
	for _, p := range append([]string{"journal_mode(WAL)", "busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"}, perConn...) {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	if err := migrate(ctx, db, path, versionTable, migrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return db, nil
}

// versionTable is the table holding a database's schema version (one
// row); historyTable's rows say which sampan applied each migration.
const (
	versionTable = "schema_version"
	historyTable = "schema_history"
)

// create makes a new, empty database at path (mode 0600, so that SQLite
// gives its -wal and -shm files the same) in WAL mode with the given
// page_size pragma. An existing database is left as it is: its page size
// changes only when it is rebuilt.
func create(ctx context.Context, path, pageSize string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		// Empty: made here before a stop cut the creation short.
		if st, err := os.Stat(path); err != nil || !st.Mode().IsRegular() || st.Size() > 0 {
			return nil
		}
	} else if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	} else {
		f.Close()
	}
	db, err := sql.Open("sqlite", "file:"+path+"?"+url.Values{"_pragma": {"busy_timeout(10000)", pageSize}}.Encode())
	if err != nil {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		// Only an empty file made here is removed, never a database.
		if st, serr := os.Stat(path); serr == nil && st.Size() == 0 {
			os.Remove(path)
		}
		return fmt.Errorf("create database %s: %w", path, err)
	}
	return nil
}

// PageSize returns the page size of the SQLite database at path from its
// header, or 0 when there is no database there yet.
func PageSize(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var h [18]byte
	if n, _ := io.ReadFull(f, h[:]); n < len(h) {
		return 0, nil // empty or cut short: SQLite treats it as new
	}
	ps := int(h[16])<<8 | int(h[17])
	if ps == 1 {
		ps = 65536
	}
	return ps, nil
}

// VacuumInto copies the SQLite database at src into a new file dst with
// SQLite's VACUUM INTO: a consistent copy of a database that other
// connections keep writing (it reads one snapshot), without stopping
// them. src must exist.
func VacuumInto(ctx context.Context, src, dst string) error {
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("copy database: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	db, err := sql.Open("sqlite", "file:"+src+"?"+q.Encode())
	if err != nil {
		return fmt.Errorf("copy database %s: %w", src, err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `VACUUM INTO ?`, dst); err != nil {
		return fmt.Errorf("copy database %s: %w", src, err)
	}
	return nil
}
