package authority

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/store"
	"github.com/sampan-exchange/sampan/store/storetest"
)

// TestRegistryRollbacks: every registry migration has a rollback that
// returns the schema to the version before it.
func TestRegistryRollbacks(t *testing.T) {
	storetest.CheckRollbacks(t, "", "", migrations)
}

// TestPKIRollbackKeepsRows: rolling back the migration that let a gateway
// be registered before its certificate keeps the gateways and their
// clients; with a gateway that has no certificate yet it fails and
// changes nothing.
func TestPKIRollbackKeepsRows(t *testing.T) {
	ctx := t.Context()
	k := slices.IndexFunc(migrations, func(m store.Migration) bool { return m.Up == pkiMigration })
	db, err := store.OpenDSN(ctx, "", filepath.Join(t.TempDir(), registryFile), migrations[:k+1], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO members VALUES ('VN/GOV/MOF', 'MOF', 'x')`,
		`INSERT INTO subsystems VALUES ('VN/GOV/MOF/registry', 'VN/GOV/MOF', 'registry', 'x')`,
		`INSERT INTO gateways VALUES ('VN/GOV/MOF/gw1', 'VN/GOV/MOF', '127.0.0.1:8443', 'fp1', 'x')`,
		`INSERT INTO gateway_clients VALUES ('VN/GOV/MOF/gw1', 'VN/GOV/MOF/registry')`,
		`INSERT INTO gateways VALUES ('VN/GOV/MOF/gw2', 'VN/GOV/MOF', '127.0.0.1:8444', NULL, 'x')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := store.Rollback(ctx, db, "", migrations[:k+1], k); err == nil {
		t.Fatal("rolled back with a gateway that has no certificate")
	}
	count := func(table string) int {
		var n int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM `+table).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if count("gateways") != 2 || count("gateway_clients") != 1 {
		t.Fatalf("a failed rollback changed the registry: %d gateways, %d clients", count("gateways"), count("gateway_clients"))
	}
	if _, err := db.ExecContext(ctx, `DELETE FROM gateways WHERE id = 'VN/GOV/MOF/gw2'`); err != nil {
		t.Fatal(err)
	}
	if err := store.Rollback(ctx, db, "", migrations[:k+1], k); err != nil {
		t.Fatal(err)
	}
	if count("gateways") != 1 || count("gateway_clients") != 1 {
		t.Fatalf("after the rollback: %d gateways, %d clients; want 1, 1", count("gateways"), count("gateway_clients"))
	}
}

// TestAuditRollbackKeepsRefusalsApart: rolling back the audit log's
// outcome column folds each refusal's outcome into its action, so that
// the version before never reads a refused call as a change made.
func TestAuditRollbackKeepsRefusalsApart(t *testing.T) {
	ctx := t.Context()
	k := slices.IndexFunc(migrations, func(m store.Migration) bool { return strings.Contains(m.Up, "ADD COLUMN outcome") })
	db, err := store.OpenDSN(ctx, "", filepath.Join(t.TempDir(), registryFile), migrations[:k+1], nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO audit_log VALUES ('2026-01-01T00:00:00Z', 'alice', 'revoke certificate', '0a', 'ok')`,
		`INSERT INTO audit_log VALUES ('2026-01-01T00:00:01Z', 'bob', 'revoke certificate', '0b', 'refused: role auditor may not')`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := store.Rollback(ctx, db, "", migrations[:k+1], k); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	rows, err := db.QueryContext(ctx, `SELECT operator, action FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var op, action string
		if err := rows.Scan(&op, &action); err != nil {
			t.Fatal(err)
		}
		got[op] = action
	}
	if got["alice"] != "revoke certificate" || got["bob"] != "refused: role auditor may not — revoke certificate" {
		t.Fatalf("after the rollback: %q", got)
	}
}
