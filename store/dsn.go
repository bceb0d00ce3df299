package store

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DB is a database of either kind, with the dialect its queries need.
type DB struct {
	*sql.DB
	// Postgres is true for PostgreSQL, false for SQLite.
	Postgres bool
}

// IsPostgres reports whether dsn names a PostgreSQL database
// (postgres:// or postgresql:// URL).
func IsPostgres(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// OpenDSN opens PostgreSQL when dsn is a postgres:// URL, otherwise the
// SQLite database at sqlitePath, and applies the migrations of that
// dialect. Queries passed through Q may use ? placeholders for both.
func OpenDSN(ctx context.Context, dsn, sqlitePath string, sqliteMigrations, pgMigrations []Migration, sqlitePragmas ...string) (*DB, error) {
	return openDSN(ctx, versionTable, dsn, sqlitePath, sqliteMigrations, pgMigrations, sqlitePragmas...)
}

// OpenDSNNamed is OpenDSN for a component whose tables may share a
// PostgreSQL database with another's: its schema version is kept in the
// table name_schema_version, so that each component migrates its own
// tables. name is a lowercase word of the program, never input.
func OpenDSNNamed(ctx context.Context, name, dsn, sqlitePath string, sqliteMigrations, pgMigrations []Migration, sqlitePragmas ...string) (*DB, error) {
	if !validName(name) {
		return nil, fmt.Errorf("open database: schema name %q is not a lowercase word", name)
	}
	return openDSN(ctx, name+"_"+versionTable, dsn, sqlitePath, sqliteMigrations, pgMigrations, sqlitePragmas...)
}

func validName(name string) bool {
	if name == "" || len(name) > 32 {
		return false
	}
	for _, c := range name {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

func openDSN(ctx context.Context, versionTable, dsn, sqlitePath string, sqliteMigrations, pgMigrations []Migration, sqlitePragmas ...string) (*DB, error) {
	if dsn == "" {
		db, err := open(ctx, sqlitePath, versionTable, sqliteMigrations, sqlitePragmas...)
		if err != nil {
			return nil, err
		}
		return &DB{DB: db}, nil
	}
	if !IsPostgres(dsn) {
		return nil, fmt.Errorf("database DSN must be a postgres:// or postgresql:// URL")
	}
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open PostgreSQL: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open PostgreSQL %s: %w", redact(dsn), err)
	}
	if err := migratePG(ctx, db, pgWhere(dsn, versionTable), versionTable, pgMigrations); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database: %w", err)
	}
	return &DB{DB: db, Postgres: true}, nil
}

// Q rewrites ? placeholders as $1, $2, … for PostgreSQL. Queries must not
// hold a literal question mark.
func (d *DB) Q(q string) string {
	if !d.Postgres || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// redact hides the password of a DSN for messages.
func redact(dsn string) string {
	if i := strings.Index(dsn, "://"); i >= 0 {
		rest := dsn[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			cred := rest[:at]
			if c := strings.Index(cred, ":"); c >= 0 {
				return dsn[:i+3] + cred[:c] + ":***" + rest[at:]
			}
		}
	}
	return dsn
}
