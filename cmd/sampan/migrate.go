package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/opmon"
	"github.com/sampan-exchange/sampan/store"
)

// MigrateCmd groups the schema commands (docs/upgrading.md).
type MigrateCmd struct {
	Status MigrateStatusCmd `cmd:"" help:"Show a database's schema version, the versions this sampan knows, and which sampan applied each migration."`
	Down   MigrateDownCmd   `cmd:"" help:"Roll a database's schema back to an earlier version with the migrations' written rollbacks. Stop every node using it and copy it first."`
}

// schemaFlags name one database and its schema.
type schemaFlags struct {
	Schema string `help:"Which schema: registry (authority registry.db), state (gateway state.db), index (record index), opmon (monitoring records)." required:"" enum:"registry,state,index,opmon"`
	DB     string `name:"db" help:"The SQLite file, or a postgres:// URL (index and opmon only)." required:""`
}

// open opens the database without migrating it and returns its
// migrations and the schema's name.
func (f *schemaFlags) open(ctx context.Context) (*store.DB, []store.Migration, string, error) {
	pg := store.IsPostgres(f.DB)
	var migrations []store.Migration
	name := ""
	switch f.Schema {
	case "registry":
		migrations = authority.Migrations()
	case "state":
		migrations = gateway.StateMigrations()
	case "index":
		migrations = msglog.IndexMigrations(pg)
	case "opmon":
		migrations, name = opmon.Migrations(pg), opmon.SchemaName
	}
	if pg && (f.Schema == "registry" || f.Schema == "state") {
		return nil, nil, "", fmt.Errorf("--db: the %s schema is SQLite only", f.Schema)
	}
	dsn, path := "", f.DB
	if pg {
		dsn, path = f.DB, ""
	}
	db, err := store.OpenExisting(ctx, dsn, path)
	if err != nil {
		return nil, nil, "", fmt.Errorf("--db: %w", err)
	}
	return db, migrations, name, nil
}

// MigrateStatusCmd shows a schema's version and history.
type MigrateStatusCmd struct {
	schemaFlags
}

// Run prints the status.
func (c *MigrateStatusCmd) Run(g *Globals) error { return c.print(context.Background(), os.Stdout) }

func (c *MigrateStatusCmd) print(ctx context.Context, w io.Writer) error {
	db, migrations, name, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	v, err := store.Version(ctx, db, name)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "schema %s: version %d; this sampan knows up to %d\n", c.Schema, v, len(migrations))
	if h, err := store.History(ctx, db, name); err == nil {
		for _, a := range h {
			fmt.Fprintf(w, "migration %d applied by sampan %s at %s\n", a.Version, a.SampanVersion, a.AppliedAt)
		}
	}
	if v > len(migrations) {
		fmt.Fprintf(w, "the schema is newer than this sampan: roll it back with the sampan that migrated it\n")
	}
	return nil
}

// MigrateDownCmd rolls a schema back.
type MigrateDownCmd struct {
	schemaFlags
	To int `help:"The version to roll back to." required:""`
}

// Run rolls back and says what it did.
func (c *MigrateDownCmd) Run(g *Globals) error { return c.run(context.Background(), os.Stdout) }

func (c *MigrateDownCmd) run(ctx context.Context, w io.Writer) error {
	db, migrations, name, err := c.open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	from, err := store.Version(ctx, db, name)
	if err != nil {
		return err
	}
	if from > len(migrations) {
		return fmt.Errorf("schema %s is at version %d, newer than the %d this sampan knows: roll it back with the sampan that migrated it", c.Schema, from, len(migrations))
	}
	if c.To < 0 || c.To > from {
		return fmt.Errorf("--to: %d is not between 0 and the schema's version, %d", c.To, from)
	}
	if err := store.Rollback(ctx, db, name, migrations, c.To); err != nil {
		if at, verr := store.Version(ctx, db, name); verr == nil {
			return fmt.Errorf("%w (the schema is at version %d)", err, at)
		}
		return err
	}
	fmt.Fprintf(w, "schema %s rolled back from version %d to %d\n", c.Schema, from, c.To)
	return nil
}
