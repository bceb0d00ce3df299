package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ops"
)

// Migration is one change of a schema. Up moves it from version i to i+1;
// Down, its written rollback, moves it back from i+1 to i. A migration,
// once released, never changes: a later change is a new migration.
type Migration struct {
	Up   string
	Down string
}

// NewerSchemaError is the refusal to open a database whose schema a newer
// sampan migrated beyond the migrations this one knows: opening it could
// misread or damage what that version wrote. The operator runs the newer
// sampan again, or rolls the database back with it (docs/upgrading.md).
type NewerSchemaError struct {
	// Database names the database: a SQLite file, or a PostgreSQL DSN
	// (password hidden) and the schema's version table.
	Database string
	// Version is the database's schema version; Known the highest this
	// binary knows.
	Version, Known int
	// WrittenBy is the sampan version that applied migration Version
	// ("" when the database does not say).
	WrittenBy string
	// Running is this binary's version.
	Running string
}

func (e *NewerSchemaError) Error() string {
	use := "use a newer sampan"
	by := ""
	if e.WrittenBy != "" {
		by = fmt.Sprintf(", written by sampan %s", e.WrittenBy)
		use = fmt.Sprintf("use sampan %s or later", e.WrittenBy)
	}
	return fmt.Sprintf("%s has schema version %d%s, newer than the highest this sampan (%s) knows, %d: %s",
		e.Database, e.Version, by, e.Running, e.Known, use)
}

// running is the sampan version recorded with each migration applied: the
// module version, with the commit for a build that has none.
func running() string {
	b := ops.Build()
	v := b.Version
	if (v == "" || v == "(devel)") && b.Commit != "" {
		v += " " + b.Commit
	}
	return v
}

// historyOf is the history table beside a version table.
func historyOf(versionTable string) string {
	return strings.TrimSuffix(versionTable, "version") + "history"
}

// pgWhere names a PostgreSQL schema in messages.
func pgWhere(dsn, versionTable string) string {
	return fmt.Sprintf("PostgreSQL %s (schema version in %s)", redact(dsn), versionTable)
}

// migrate applies the migrations a SQLite database lacks, each in its own
// transaction with its history row.
func migrate(ctx context.Context, db *sql.DB, where, table string, migrations []Migration) error {
	v, err := schemaVersion(ctx, db, where, table, len(migrations))
	if err != nil {
		return err
	}
	for i := v; i < len(migrations); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate %s: %w", where, err)
		}
		if err := applyUp(ctx, tx, table, i, migrations[i], "?"); err != nil {
			tx.Rollback()
			return fmt.Errorf("migrate %s: %w", where, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate %s: %w", where, err)
		}
	}
	return nil
}

// migratePG applies migrations under an advisory lock, so that several
// nodes starting together migrate once.
func migratePG(ctx context.Context, db *sql.DB, where, table string, migrations []Migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7360521)`); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	v, err := schemaVersion(ctx, tx, where, table, len(migrations))
	if err != nil {
		return err
	}
	for i := v; i < len(migrations); i++ {
		if err := applyUp(ctx, tx, table, i, migrations[i], "$"); err != nil {
			return fmt.Errorf("migrate %s: %w", where, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate %s: %w", where, err)
	}
	return nil
}

// applyUp runs migration i (to version i+1) and records it. ph is the
// dialect's placeholder: "?" or "$" (numbered).
func applyUp(ctx context.Context, tx *sql.Tx, table string, i int, m Migration, ph string) error {
	if _, err := tx.ExecContext(ctx, m.Up); err != nil {
		return fmt.Errorf("migration %d: %w", i+1, err)
	}
	hist := historyOf(table)
	p1, p2, p3 := "?", "?", "?"
	if ph == "$" {
		p1, p2, p3 = "$1", "$2", "$3"
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+hist+` WHERE version = `+p1, i+1); err != nil {
		return fmt.Errorf("migration %d: record it: %w", i+1, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO `+hist+` (version, sampan_version, applied_at) VALUES (`+p1+`, `+p2+`, `+p3+`)`,
		i+1, running(), time.Now().UTC().Format(time.RFC3339)); err != nil {
		return fmt.Errorf("migration %d: record it: %w", i+1, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET version = `+p1, i+1); err != nil {
		return fmt.Errorf("migration %d: record it: %w", i+1, err)
	}
	return nil
}

// execQuerier is a database or a transaction.
type execQuerier interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
}

// schemaVersion creates the version and history tables when needed and
// returns the schema's version, refusing one newer than the known
// migrations with a *NewerSchemaError.
func schemaVersion(ctx context.Context, db execQuerier, where, table string, known int) (int, error) {
	v, err := readVersion(ctx, db, table)
	if err != nil {
		return 0, fmt.Errorf("migrate %s: %w", where, err)
	}
	if v > known {
		e := &NewerSchemaError{Database: where, Version: v, Known: known, Running: running()}
		// The version that applied the newest migration; a database
		// from before the history was kept has none.
		_ = db.QueryRowContext(ctx, `SELECT sampan_version FROM `+historyOf(table)+` ORDER BY version DESC LIMIT 1`).Scan(&e.WrittenBy)
		return 0, e
	}
	return v, nil
}

// readVersion creates the version and history tables when needed and
// returns the schema's version.
func readVersion(ctx context.Context, db execQuerier, table string) (int, error) {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+table+` (version INTEGER NOT NULL)`); err != nil {
		return 0, err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS `+historyOf(table)+` (
		version INTEGER PRIMARY KEY,
		sampan_version TEXT NOT NULL,
		applied_at TEXT NOT NULL
	)`); err != nil {
		return 0, err
	}
	var v int
	switch err := db.QueryRowContext(ctx, `SELECT version FROM `+table).Scan(&v); {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := db.ExecContext(ctx, `INSERT INTO `+table+` (version) VALUES (0)`); err != nil {
			return 0, err
		}
	case err != nil:
		return 0, err
	}
	return v, nil
}

// Rollback moves the schema of db down to version to by running the Down
// of each migration above it, newest first, and forgetting their history
// rows. migrations are those db was opened with; name is the schema's name
// as given to OpenDSNNamed ("" for OpenDSN and Open). On SQLite each step
// is its own transaction; on PostgreSQL all are one, under the lock
// migrations take. A step that fails (a Down that would lose rows it
// cannot keep, say) stops there and changes nothing of its own.
func Rollback(ctx context.Context, db *DB, name string, migrations []Migration, to int) error {
	table := versionTable
	if name != "" {
		if !validName(name) {
			return fmt.Errorf("roll back: schema name %q is not a lowercase word", name)
		}
		table = name + "_" + versionTable
	}
	ph := "?"
	if db.Postgres {
		ph = "$"
	}
	var q execQuerier = db.DB
	var tx *sql.Tx
	if db.Postgres {
		var err error
		if tx, err = db.BeginTx(ctx, nil); err != nil {
			return fmt.Errorf("roll back: %w", err)
		}
		defer tx.Rollback()
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(7360521)`); err != nil {
			return fmt.Errorf("roll back: %w", err)
		}
		q = tx
	}
	v, err := readVersion(ctx, q, table)
	if err != nil {
		return fmt.Errorf("roll back: %w", err)
	}
	switch {
	case v > len(migrations):
		return fmt.Errorf("roll back: schema version %d is newer than the %d migrations given", v, len(migrations))
	case to < 0 || to > v:
		return fmt.Errorf("roll back: version %d is not between 0 and the schema's %d", to, v)
	}
	for i := v - 1; i >= to; i-- {
		step := tx
		if !db.Postgres {
			if step, err = db.BeginTx(ctx, nil); err != nil {
				return fmt.Errorf("roll back: %w", err)
			}
		}
		if err := applyDown(ctx, step, table, i, migrations[i], ph); err != nil {
			if !db.Postgres {
				step.Rollback()
			}
			return fmt.Errorf("roll back: %w", err)
		}
		if !db.Postgres {
			if err := step.Commit(); err != nil {
				return fmt.Errorf("roll back: %w", err)
			}
		}
	}
	if db.Postgres {
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("roll back: %w", err)
		}
	}
	return nil
}

// applyDown runs the rollback of migration i (from version i+1 to i).
func applyDown(ctx context.Context, tx *sql.Tx, table string, i int, m Migration, ph string) error {
	if strings.TrimSpace(m.Down) == "" {
		return fmt.Errorf("migration %d has no rollback", i+1)
	}
	if _, err := tx.ExecContext(ctx, m.Down); err != nil {
		return fmt.Errorf("rollback of migration %d: %w", i+1, err)
	}
	p := "?"
	if ph == "$" {
		p = "$1"
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM `+historyOf(table)+` WHERE version = `+p, i+1); err != nil {
		return fmt.Errorf("rollback of migration %d: %w", i+1, err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE `+table+` SET version = `+p, i); err != nil {
		return fmt.Errorf("rollback of migration %d: %w", i+1, err)
	}
	return nil
}

// Applied is one migration as the schema's history records it.
type Applied struct {
	Version       int
	SampanVersion string
	AppliedAt     string
}

// History returns the migrations the history of db's schema records, in
// order; name is as for Rollback. Migrations applied before the history
// was kept have no row.
func History(ctx context.Context, db *DB, name string) ([]Applied, error) {
	table := versionTable
	if name != "" {
		if !validName(name) {
			return nil, fmt.Errorf("read schema history: schema name %q is not a lowercase word", name)
		}
		table = name + "_" + versionTable
	}
	rows, err := db.QueryContext(ctx, `SELECT version, sampan_version, applied_at FROM `+historyOf(table)+` ORDER BY version`)
	if err != nil {
		return nil, fmt.Errorf("read schema history: %w", err)
	}
	defer rows.Close()
	var out []Applied
	for rows.Next() {
		var a Applied
		if err := rows.Scan(&a.Version, &a.SampanVersion, &a.AppliedAt); err != nil {
			return nil, fmt.Errorf("read schema history: %w", err)
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// OpenExisting opens a database without migrating it, for inspecting its
// schema or rolling it back: PostgreSQL when dsn is a postgres:// URL,
// otherwise the SQLite database at sqlitePath, which must exist.
func OpenExisting(ctx context.Context, dsn, sqlitePath string) (*DB, error) {
	if dsn != "" {
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
		return &DB{DB: db, Postgres: true}, nil
	}
	st, err := os.Stat(sqlitePath)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("open database: %s is not a file", sqlitePath)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	db, err := sql.Open("sqlite", "file:"+sqlitePath+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", sqlitePath, err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open database %s: %w", sqlitePath, err)
	}
	return &DB{DB: db}, nil
}

// Version returns the schema version of db without changing anything;
// name is as for Rollback. A database without the version table is not a
// schema of that name.
func Version(ctx context.Context, db *DB, name string) (int, error) {
	table := versionTable
	if name != "" {
		if !validName(name) {
			return 0, fmt.Errorf("read schema version: schema name %q is not a lowercase word", name)
		}
		table = name + "_" + versionTable
	}
	var v int
	if err := db.QueryRowContext(ctx, `SELECT version FROM `+table).Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version from %s: %w", table, err)
	}
	return v, nil
}
