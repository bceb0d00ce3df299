package authority

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/store"
)

// Withdrawal and its migration's rollback.

func aiReportsDB(t *testing.T) (*store.DB, AIServiceInput) {
	t.Helper()
	db, err := store.OpenDSN(t.Context(), "", filepath.Join(t.TempDir(), registryFile), migrations, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	in := AIServiceInput{ID: "VN/GOV/MPS/cybercrime/scam-classifier",
		ModelCard:      ModelCard{ModelName: "scam-nb", ModelVersion: "v2", IntendedUse: "x"},
		Classification: RiskClassification{Tier: "high", ModelVersion: "v2"}}
	doc, _ := json.Marshal(in)
	card := in.ModelCard.Digest()
	for _, q := range []string{
		`INSERT INTO ai_services VALUES ('` + in.ID + `', '` + string(doc) + `', '2026-12-01T00:00:00Z')`,
		// Two passing reports of the same version and card, by the
		// same testing body: an earlier run and the one in force.
		`INSERT INTO ai_reports (digest, service_id, model_version, model_card_digest, signer, grade, passed, stamped_at, accepted_at) VALUES ('` + strings.Repeat("1", 64) + `', '` + in.ID + `', 'v2', '` + card + `', 'VN/ORG/LAB', 'A', 1, '2026-12-01T00:00:00Z', '2026-12-01T00:00:00Z')`,
		`INSERT INTO ai_reports (digest, service_id, model_version, model_card_digest, signer, grade, passed, stamped_at, accepted_at) VALUES ('` + strings.Repeat("2", 64) + `', '` + in.ID + `', 'v2', '` + card + `', 'VN/ORG/LAB', 'A', 1, '2026-12-02T00:00:00Z', '2026-12-02T00:00:00Z')`,
	} {
		if _, err := db.ExecContext(t.Context(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return db, in
}

func evaluated(t *testing.T, db *store.DB) string {
	t.Helper()
	svcs, _, err := aiServices(t.Context(), db)
	if err != nil || len(svcs) != 1 {
		t.Fatalf("%v %v", svcs, err)
	}
	return svcs[0].Evaluated
}

// TestAIWithdrawClosesGate: docs/ai-governance.md says the gate
// closes with the next configuration when the report withdrawn was the
// one in force. With an earlier passing report of the same version and
// card, the earlier one silently takes over and the gate stays open.
func TestAIWithdrawClosesGate(t *testing.T) {
	db, _ := aiReportsDB(t)
	inForce := evaluated(t, db)
	if inForce != strings.Repeat("2", 64) {
		t.Fatalf("in force: %s", inForce)
	}
	if _, err := db.ExecContext(t.Context(), `UPDATE ai_reports SET withdrawn_at = '2026-12-03T00:00:00Z', withdrawn_by = 'admin', withdrawn_reason = 'unsound' WHERE digest = ?`, inForce); err != nil {
		t.Fatal(err)
	}
	if e := evaluated(t, db); e != "" {
		t.Errorf("the report in force was withdrawn, yet the service is still evaluated (by %s): the gate stays open", e)
	}
}

// TestAIRollbackKeepsWithdrawal: rolling the migration back
// deletes withdrawn reports, so the record that a report was withdrawn
// (who, when, why) is gone and, once upgraded again, the same report is
// accepted again ("a withdrawn report cannot be submitted again").
func TestAIRollbackKeepsWithdrawal(t *testing.T) {
	db, _ := aiReportsDB(t)
	d := strings.Repeat("2", 64)
	if _, err := db.ExecContext(t.Context(), `UPDATE ai_reports SET withdrawn_at = '2026-12-03T00:00:00Z', withdrawn_by = 'admin', withdrawn_reason = 'unsound' WHERE digest = ?`, d); err != nil {
		t.Fatal(err)
	}
	if err := store.Rollback(t.Context(), db, "", migrations, len(migrations)-1); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(t.Context(), `SELECT count(*) FROM ai_reports WHERE digest = ?`, d).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Errorf("after the rollback the withdrawn report %s is gone: nothing keeps it from being submitted again", d[:8])
	}
}
