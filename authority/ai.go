package authority

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/ai/report"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// aiMigration holds the registry of AI services: each service's model
// card and risk classification (one JSON document, replaced whole), the
// accredited testing bodies, and the evaluation reports accepted.
const aiMigration = `CREATE TABLE ai_services (
		id TEXT PRIMARY KEY,
		registration TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE ai_testing_bodies (
		member_id TEXT PRIMARY KEY
	);
	CREATE TABLE ai_reports (
		digest TEXT PRIMARY KEY,
		service_id TEXT NOT NULL,
		model_version TEXT NOT NULL,
		signer TEXT NOT NULL,
		grade TEXT NOT NULL,
		passed INTEGER NOT NULL,
		stamped_at TEXT NOT NULL,
		accepted_at TEXT NOT NULL
	);`

const aiRollback = `DROP TABLE ai_reports;
	DROP TABLE ai_testing_bodies;
	DROP TABLE ai_services;`

const aiReportsMigration = `ALTER TABLE ai_reports ADD COLUMN model_card_digest TEXT NOT NULL DEFAULT '';
	ALTER TABLE ai_reports ADD COLUMN withdrawn_at TEXT;
	ALTER TABLE ai_reports ADD COLUMN withdrawn_by TEXT;
	ALTER TABLE ai_reports ADD COLUMN withdrawn_reason TEXT;`

const aiReportsRollback = `UPDATE ai_reports SET passed = 0 WHERE withdrawn_at IS NOT NULL;
	ALTER TABLE ai_reports DROP COLUMN withdrawn_reason;
	ALTER TABLE ai_reports DROP COLUMN withdrawn_by;
	ALTER TABLE ai_reports DROP COLUMN withdrawn_at;
	ALTER TABLE ai_reports DROP COLUMN model_card_digest;`

// Limits of the AI registry's fields.
const (
	maxCardText      = 4000 // model card free text
	maxCardShort     = 255  // provider, model name, contact
	maxCardLanguages = 32
	maxReasons       = 20
	maxAIReportBody  = 64 << 20 // POST /api/v1/ai/reports
)

// ModelCard describes an AI service's model. Its fields follow those of
// Hugging Face model cards (model_name, language, license, limitations)
// and CycloneDX's ML-BOM modelCard (considerations: users, use cases,
// technical limitations), flat.
type ModelCard struct {
	Provider       string   `json:"provider"`
	ModelName      string   `json:"model_name"`
	ModelVersion   string   `json:"model_version"`
	IntendedUse    string   `json:"intended_use"`
	IntendedUsers  string   `json:"intended_users"`
	OutOfScopeUses string   `json:"out_of_scope_uses"`
	Languages      []string `json:"languages"`
	TrainingData   string   `json:"training_data"`
	Limitations    string   `json:"limitations"`
	HumanOversight string   `json:"human_oversight"`
	Contact        string   `json:"contact"`
	License        string   `json:"license,omitempty"`
}

// Digest is the SHA-256 (hex) of the card's JSON as the registry keeps
// it: an evaluation report names the card it evaluated by it, and the
// gateways tell clients which card answered.
func (mc *ModelCard) Digest() string {
	b, _ := json.Marshal(mc) // a struct of strings: cannot fail
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// RiskClassification is the provider's self-classification of a model
// version, with its reasons and the prohibited-use screen answered.
type RiskClassification struct {
	Tier         string `json:"tier"`
	ModelVersion string `json:"model_version"`
	// ClassifiedOn is the date (YYYY-MM-DD) the provider classified it.
	ClassifiedOn string   `json:"classified_on"`
	Reasons      []string `json:"reasons"`
	// ProhibitedUse is the answer to the prohibited-use screen: true
	// refuses the registration; ProhibitedUseScreen says what was
	// screened and why none applies.
	ProhibitedUse       bool   `json:"prohibited_use"`
	ProhibitedUseScreen string `json:"prohibited_use_screen"`
	// TransparencyNotice is shown with every answer when the tier asks
	// for one.
	TransparencyNotice string `json:"transparency_notice,omitempty"`
}

// AIServiceInput registers an AI service or replaces its registration.
type AIServiceInput struct {
	ID             string             `json:"id"`
	ModelCard      ModelCard          `json:"model_card"`
	Classification RiskClassification `json:"risk_classification"`
}

// AIReport is an evaluation report the authority accepted.
type AIReport struct {
	Digest          string    `json:"digest"`
	ModelVersion    string    `json:"model_version"`
	ModelCardDigest string    `json:"model_card_digest"`
	Signer          string    `json:"signer"`
	Grade           string    `json:"grade"`
	Passed          bool      `json:"passed"`
	StampedAt       time.Time `json:"stamped_at"`
	AcceptedAt      time.Time `json:"accepted_at"`
	// Withdrawn, when set, says who withdrew the report, when and why:
	// it no longer meets any obligation.
	Withdrawn *Withdrawal `json:"withdrawn,omitempty"`
}

// Withdrawal is the withdrawal of an accepted report.
type Withdrawal struct {
	At     time.Time `json:"at"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
}

// WithdrawInput withdraws an accepted report, with the reason.
type WithdrawInput struct {
	Reason string `json:"reason"`
}

// AIServiceInfo is what GET /api/v1/ai/services shows of a service: its
// registration, the tier in force (unclassified when the classification
// names another model version), the digest of its model card, and the
// reports accepted: Evaluated is the one that meets the obligations (a
// passing report, not withdrawn, for the registered model version and
// card), EvaluatedBy its signer.
type AIServiceInfo struct {
	AIServiceInput
	Tier            string     `json:"tier"`
	ModelCardDigest string     `json:"model_card_digest"`
	Evaluated       string     `json:"evaluated,omitempty"`
	EvaluatedBy     string     `json:"evaluated_by,omitempty"`
	Reports         []AIReport `json:"reports"`
	UpdatedAt       time.Time  `json:"updated_at"`
}

// TestingBodiesInput replaces the set of accredited AI testing bodies.
type TestingBodiesInput struct {
	Members []ident.ClientID `json:"members"`
}

// ReportSubmission is a signed evaluation report as `sampan ai
// evaluate` writes it: report.json, report.jws, signer.pem, report.tsr.
type ReportSubmission struct {
	Report    []byte `json:"report"`
	Signature string `json:"signature"`
	Signer    string `json:"signer"`
	Timestamp []byte `json:"timestamp"`
}

func (in *AIServiceInput) check(rules *obligations.Rules, country string) error {
	sid, err := ident.ParseService(in.ID)
	if err != nil || sid.Version != "" {
		return fmt.Errorf("%w: id: %q is not a service id (instance/class/member/subsystem/code)", errInvalid, in.ID)
	}
	mc, rc := &in.ModelCard, &in.Classification
	for _, f := range []struct {
		name, v  string
		min, max int
	}{
		{"model_card.provider", mc.Provider, 1, maxCardShort},
		{"model_card.model_name", mc.ModelName, 1, maxCardShort},
		{"model_card.model_version", mc.ModelVersion, 1, conf.MaxModelVersion},
		{"model_card.intended_use", mc.IntendedUse, 1, maxCardText},
		{"model_card.intended_users", mc.IntendedUsers, 1, maxCardText},
		{"model_card.out_of_scope_uses", mc.OutOfScopeUses, 1, maxCardText},
		{"model_card.training_data", mc.TrainingData, 1, maxCardText},
		{"model_card.limitations", mc.Limitations, 1, maxCardText},
		{"model_card.human_oversight", mc.HumanOversight, 0, maxCardText},
		{"model_card.contact", mc.Contact, 1, maxCardShort},
		{"model_card.license", mc.License, 0, maxCardShort},
		{"risk_classification.model_version", rc.ModelVersion, 1, conf.MaxModelVersion},
		{"risk_classification.prohibited_use_screen", rc.ProhibitedUseScreen, 1, maxCardText},
	} {
		if err := checkText(f.name, f.v, f.min, f.max); err != nil {
			return err
		}
	}
	if len(mc.Languages) == 0 || len(mc.Languages) > maxCardLanguages {
		return fmt.Errorf("%w: model_card.languages: want 1 to %d BCP 47 tags", errInvalid, maxCardLanguages)
	}
	for i, l := range mc.Languages {
		if !validLangTag(l) {
			return fmt.Errorf("%w: model_card.languages[%d]: %q is not a language tag (vi, en, vi-VN)", errInvalid, i, l)
		}
	}
	if !slices.Contains(obligations.Tiers, rc.Tier) {
		return fmt.Errorf("%w: risk_classification.tier: %q is not one of %s", errInvalid, rc.Tier, strings.Join(obligations.Tiers, ", "))
	}
	if _, err := time.Parse(time.DateOnly, rc.ClassifiedOn); err != nil {
		return fmt.Errorf("%w: risk_classification.classified_on: want a date YYYY-MM-DD", errInvalid)
	}
	if len(rc.Reasons) == 0 || len(rc.Reasons) > maxReasons {
		return fmt.Errorf("%w: risk_classification.reasons: want 1 to %d reasons", errInvalid, maxReasons)
	}
	for i, r := range rc.Reasons {
		if err := checkText(fmt.Sprintf("risk_classification.reasons[%d]", i), r, 1, maxCardText); err != nil {
			return err
		}
	}
	if rc.ProhibitedUse {
		return fmt.Errorf("%w: risk_classification.prohibited_use: a service screened as a prohibited use cannot be registered", errInvalid)
	}
	if err := conf.ValidNotice(rc.TransparencyNotice); err != nil {
		return fmt.Errorf("%w: risk_classification.transparency_notice: %w", errInvalid, err)
	}
	if rules == nil {
		return fmt.Errorf("%w: no AI obligations are configured for %s (ai_obligations), so no AI service can be registered", errInvalid, country)
	}
	// The tier in force: a classification made for another model
	// version leaves the service unclassified, held to the highest
	// tier's obligations.
	tier := rc.Tier
	if rc.ModelVersion != mc.ModelVersion {
		tier = obligations.TierUnclassified
	}
	if rules.Requires(tier, obligations.HumanOversight) && strings.TrimSpace(mc.HumanOversight) == "" {
		return fmt.Errorf("%w: model_card.human_oversight: a %s-risk service must declare its human oversight", errInvalid, tier)
	}
	if rules.Requires(tier, obligations.TransparencyNotice) && strings.TrimSpace(rc.TransparencyNotice) == "" {
		return fmt.Errorf("%w: risk_classification.transparency_notice: a %s-risk service must give the notice its answers carry", errInvalid, tier)
	}
	return nil
}

func validLangTag(s string) bool {
	if len(s) < 2 || len(s) > 35 {
		return false
	}
	for i, part := range strings.Split(s, "-") {
		if len(part) == 0 || len(part) > 8 || i == 0 && len(part) > 3 {
			return false
		}
		for _, r := range part {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || i > 0 && r >= '0' && r <= '9') {
				return false
			}
		}
	}
	return true
}

// PutAIService registers an AI service's model card and risk
// classification, or replaces them. A new model version leaves the
// reports accepted for the earlier one behind: the service is evaluated
// again before its high-risk calls are served.
func (a *Authority) PutAIService(ctx context.Context, op string, in AIServiceInput) error {
	if err := in.check(a.config().aiRules(), a.cfg.Instance); err != nil {
		return err
	}
	sid, _ := ident.ParseService(in.ID)
	if sid.Provider.Instance != a.cfg.Instance {
		return fmt.Errorf("%w: id: %s is not a service of %s", errInvalid, in.ID, a.cfg.Instance)
	}
	doc, err := json.Marshal(&in)
	if err != nil {
		return err
	}
	detail := fmt.Sprintf("%s model %s tier %s (classified for %s)", in.ID, in.ModelCard.ModelVersion, in.Classification.Tier, in.Classification.ModelVersion)
	return a.change(ctx, op, "put AI service", detail, func(tx *sql.Tx) error {
		ok, err := registered(ctx, tx, "subsystems", sid.Provider.String())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: id: %s is not a registered subsystem", errInvalid, sid.Provider)
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ai_services (id, registration, updated_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET registration = excluded.registration, updated_at = excluded.updated_at`, in.ID, string(doc), now())
		return err
	})
}

// PutAITestingBodies replaces the accredited AI testing bodies.
func (a *Authority) PutAITestingBodies(ctx context.Context, op string, in TestingBodiesInput) error {
	if err := checkList("members", in.Members, conf.MaxAITestingBodies); err != nil {
		return err
	}
	var names []string
	for i, m := range in.Members {
		if m.Validate() != nil || m.IsSubsystem() || m.Instance != a.cfg.Instance {
			return fmt.Errorf("%w: members[%d]: %q is not a member of %s", errInvalid, i, m, a.cfg.Instance)
		}
		names = append(names, m.String())
	}
	return a.change(ctx, op, "put AI testing bodies", strings.Join(names, " "), func(tx *sql.Tx) error {
		for i, m := range names {
			ok, err := registered(ctx, tx, "members", m)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: members[%d]: %s is not a registered member", errInvalid, i, m)
			}
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM ai_testing_bodies`); err != nil {
			return err
		}
		for _, m := range names {
			if _, err := tx.ExecContext(ctx, `INSERT INTO ai_testing_bodies (member_id) VALUES (?)`, m); err != nil {
				return err
			}
		}
		return nil
	})
}

// roots returns the instance CAs the configuration lists.
func (a *Authority) roots() *x509.CertPool {
	p := x509.NewCertPool()
	for _, ca := range a.cas.Load().listed() {
		p.AddCert(ca.Cert)
	}
	return p
}

// SubmitAIReport accepts an evaluation report: its time-stamp and
// signature verify (a member signing certificate of the instance CA),
// the signer is an accredited testing body, the report is for a
// registered AI service and its registered model version, and it
// passed. The report is recorded by the SHA-256 of report.json.
func (a *Authority) SubmitAIReport(ctx context.Context, op string, in ReportSubmission) (*AIReport, error) {
	v, err := report.VerifyFiles(ctx, report.Files{Report: in.Report, Signature: []byte(in.Signature), Signer: []byte(in.Signer), Token: in.Timestamp}, report.VerifyOptions{Roots: a.roots()})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	rep := v.Report
	cert, err := pki.ParseCertPEM([]byte(in.Signer))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalid, err)
	}
	sum := sha256.Sum256(in.Report)
	acc := &AIReport{
		Digest: hex.EncodeToString(sum[:]), ModelVersion: rep.ModelVersion, ModelCardDigest: rep.ModelCardDigest, Signer: v.Signer,
		Grade: reportGrade(rep), Passed: rep.Pass, StampedAt: v.StampedAt, AcceptedAt: time.Now().UTC().Truncate(time.Second),
	}
	detail := fmt.Sprintf("%s model %s report %s by %s", rep.Service, rep.ModelVersion, acc.Digest, v.Signer)
	err = a.change(ctx, op, "accept AI report", detail, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM ai_testing_bodies WHERE member_id = ?`, v.Signer).Scan(&n); err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("%w: the report is signed by %s, which is not an accredited AI testing body", errInvalid, v.Signer)
		}
		var revokedAt sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM certificates WHERE fingerprint = ?`, pki.Fingerprint(cert.Raw)).Scan(&revokedAt)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if revokedAt.Valid || a.current.Load().cfg.IsRevoked(cert) {
			return fmt.Errorf("%w: the report's signing certificate (serial %x, %s) is revoked", errInvalid, cert.SerialNumber, v.Signer)
		}
		in, err := aiRegistration(ctx, tx, rep.Service)
		if err != nil {
			return err
		}
		if in == nil {
			return fmt.Errorf("%w: the report is for %s, which is not a registered AI service", errInvalid, rep.Service)
		}
		if rep.ModelVersion != in.ModelCard.ModelVersion {
			return fmt.Errorf("%w: the report is for model version %q of %s, but %q is registered", errInvalid, rep.ModelVersion, rep.Service, in.ModelCard.ModelVersion)
		}
		if card := in.ModelCard.Digest(); rep.ModelCardDigest != card {
			if rep.ModelCardDigest == "" {
				return fmt.Errorf("%w: the report of %s names no model card; the registered card is %s: evaluate again (the gateways give the card's digest with every answer, Ai-Model-Card)", errInvalid, rep.Service, card)
			}
			return fmt.Errorf("%w: the report evaluated model card %s of %s, but card %s is registered: evaluate again", errInvalid, rep.ModelCardDigest, rep.Service, card)
		}
		if !rep.Pass {
			return fmt.Errorf("%w: the report of %s (model %s) did not pass: %s", errInvalid, rep.Service, rep.ModelVersion, failed(rep))
		}
		if sid, _ := ident.ParseService(rep.Service); v.Signer == sid.Provider.Member().String() {
			return fmt.Errorf("%w: the report of %s is signed by its own provider, %s: a service is evaluated by another body", errInvalid, rep.Service, v.Signer)
		}
		var withdrawn sql.NullString
		err = tx.QueryRowContext(ctx, `SELECT withdrawn_at FROM ai_reports WHERE digest = ?`, acc.Digest).Scan(&withdrawn)
		switch {
		case err == nil && withdrawn.Valid:
			return fmt.Errorf("%w: report %s was withdrawn at %s and cannot be accepted again", errConflict, acc.Digest, withdrawn.String)
		case err == nil:
			return fmt.Errorf("%w: report %s was already accepted", errConflict, acc.Digest)
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO ai_reports (digest, service_id, model_version, model_card_digest, signer, grade, passed, stamped_at, accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			acc.Digest, rep.Service, rep.ModelVersion, rep.ModelCardDigest, v.Signer, acc.Grade, 1, acc.StampedAt.Format(time.RFC3339Nano), acc.AcceptedAt.Format(time.RFC3339Nano))
		if isUnique(err) {
			return fmt.Errorf("%w: report %s was already accepted", errConflict, acc.Digest)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return acc, nil
}

// WithdrawAIReport withdraws an accepted report: the regulator found it
// unsound, or the testing body retracted it. If it was the report that
// met the service's obligations, the service's gate closes with the
// next configuration.
func (a *Authority) WithdrawAIReport(ctx context.Context, op, digest string, in WithdrawInput) (*AIReport, error) {
	if !isHex64(digest) || strings.ToLower(digest) != digest {
		return nil, fmt.Errorf("%w: digest: want the report's SHA-256, 64 lower-case hex digits", errInvalid)
	}
	if err := checkText("reason", in.Reason, 1, maxCardText); err != nil {
		return nil, err
	}
	at := time.Now().UTC().Truncate(time.Second)
	var out *AIReport
	err := a.change(ctx, op, "withdraw AI report", digest+": "+in.Reason, func(tx *sql.Tx) error {
		var svc string
		var withdrawn sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT service_id, withdrawn_at FROM ai_reports WHERE digest = ?`, digest).Scan(&svc, &withdrawn)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no accepted report %s", errNotFound, digest)
		}
		if err != nil {
			return err
		}
		if withdrawn.Valid {
			return fmt.Errorf("%w: report %s was already withdrawn at %s", errConflict, digest, withdrawn.String)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE ai_reports SET withdrawn_at = ?, withdrawn_by = ?, withdrawn_reason = ? WHERE digest = ?`,
			at.Format(time.RFC3339Nano), op, in.Reason, digest); err != nil {
			return err
		}
		svcs, _, err := aiServices(ctx, tx)
		if err != nil {
			return err
		}
		for _, s := range svcs {
			for _, r := range s.Reports {
				if r.Digest == digest {
					out = &r
				}
			}
		}
		if out == nil {
			return fmt.Errorf("report %s of %s: not found after the withdrawal", digest, svc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func reportGrade(rep *report.Report) string {
	var gs []string
	for _, r := range rep.Recipes {
		if r.Grade != "" {
			gs = append(gs, r.ID+":"+r.Grade)
		}
	}
	return strings.Join(gs, " ")
}

func failed(rep *report.Report) string {
	var out []string
	for _, r := range rep.Recipes {
		if !r.Pass {
			out = append(out, "recipe "+r.ID+" failed its thresholds")
		}
	}
	if rep.Errors > 0 {
		out = append(out, fmt.Sprintf("%d samples' exchanges failed", rep.Errors))
	}
	if len(out) == 0 {
		return "not passed"
	}
	return strings.Join(out, "; ")
}

// aiRegistration reads a service's registration, or nil.
func aiRegistration(ctx context.Context, tx *sql.Tx, id string) (*AIServiceInput, error) {
	var doc string
	err := tx.QueryRowContext(ctx, `SELECT registration FROM ai_services WHERE id = ?`, id).Scan(&doc)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var in AIServiceInput
	if err := json.Unmarshal([]byte(doc), &in); err != nil {
		return nil, fmt.Errorf("registry AI service %s: %w", id, err)
	}
	return &in, nil
}

// aiServices reads the AI registry: every service with its tier in
// force and its accepted reports, and the testing bodies.
func aiServices(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}) ([]AIServiceInfo, []ident.ClientID, error) {
	rows, err := q.QueryContext(ctx, `SELECT id, registration, updated_at FROM ai_services ORDER BY id`)
	if err != nil {
		return nil, nil, err
	}
	var out []AIServiceInfo
	for rows.Next() {
		var id, doc, at string
		if err := rows.Scan(&id, &doc, &at); err != nil {
			rows.Close()
			return nil, nil, err
		}
		var s AIServiceInfo
		if err := json.Unmarshal([]byte(doc), &s.AIServiceInput); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("registry AI service %s: %w", id, err)
		}
		s.UpdatedAt, _ = time.Parse(time.RFC3339Nano, at)
		s.Tier = s.Classification.Tier
		if s.Classification.ModelVersion != s.ModelCard.ModelVersion {
			s.Tier = obligations.TierUnclassified
		}
		s.ModelCardDigest = s.ModelCard.Digest()
		s.Reports = []AIReport{}
		out = append(out, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT digest, service_id, model_version, model_card_digest, signer, grade, passed, stamped_at, accepted_at, withdrawn_at, withdrawn_by, withdrawn_reason FROM ai_reports ORDER BY accepted_at, digest`)
	if err != nil {
		return nil, nil, err
	}
	for rows.Next() {
		var r AIReport
		var svc, st, acc string
		var wAt, wBy, wWhy sql.NullString
		var passed int
		if err := rows.Scan(&r.Digest, &svc, &r.ModelVersion, &r.ModelCardDigest, &r.Signer, &r.Grade, &passed, &st, &acc, &wAt, &wBy, &wWhy); err != nil {
			rows.Close()
			return nil, nil, err
		}
		r.Passed = passed != 0
		r.StampedAt, _ = time.Parse(time.RFC3339Nano, st)
		r.AcceptedAt, _ = time.Parse(time.RFC3339Nano, acc)
		if wAt.Valid {
			r.Withdrawn = &Withdrawal{By: wBy.String, Reason: wWhy.String}
			r.Withdrawn.At, _ = time.Parse(time.RFC3339Nano, wAt.String)
		}
		for i := range out {
			s := &out[i]
			if s.ID != svc {
				continue
			}
			s.Reports = append(s.Reports, r)
			// The latest report accepted for the registered version and
			// card is the one in force, if it passed and was not
			// withdrawn: withdrawing it leaves none, rather than hand
			// the service back to an earlier run.
			if r.ModelVersion == s.ModelCard.ModelVersion && r.ModelCardDigest == s.ModelCardDigest {
				s.Evaluated, s.EvaluatedBy = "", ""
				if r.Passed && r.Withdrawn == nil {
					s.Evaluated, s.EvaluatedBy = r.Digest, r.Signer
				}
			}
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows, err = q.QueryContext(ctx, `SELECT member_id FROM ai_testing_bodies ORDER BY member_id`)
	if err != nil {
		return nil, nil, err
	}
	var bodies []ident.ClientID
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return nil, nil, err
		}
		id, err := ident.ParseMember(m)
		if err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("registry AI testing body %q: %w", m, err)
		}
		bodies = append(bodies, id)
	}
	rows.Close()
	return out, bodies, rows.Err()
}

// aiSnapshot puts the AI registry into the configuration.
func aiSnapshot(ctx context.Context, tx *sql.Tx, c *conf.Config) error {
	svcs, bodies, err := aiServices(ctx, tx)
	if err != nil {
		return err
	}
	c.AITestingBodies = bodies
	for _, s := range svcs {
		// The notice is published whenever the provider gave one: the
		// consumer's country may require it where the provider's does
		// not.
		e := conf.AIService{ID: s.ID, Tier: s.Tier, ModelVersion: s.ModelCard.ModelVersion, ModelCardDigest: s.ModelCardDigest,
			Evaluated: s.Evaluated, Notified: true, Notice: s.Classification.TransparencyNotice}
		if s.EvaluatedBy != "" {
			if e.EvaluatedBy, err = ident.ParseMember(s.EvaluatedBy); err != nil {
				return fmt.Errorf("registry AI report %s: signer: %w", s.Evaluated, err)
			}
		}
		c.AIServices = append(c.AIServices, e)
	}
	return nil
}

// AIServices lists the AI registry (for auditors).
func (a *Authority) AIServices(ctx context.Context) ([]AIServiceInfo, []ident.ClientID, error) {
	svcs, bodies, err := aiServices(ctx, a.db)
	if svcs == nil {
		svcs = []AIServiceInfo{}
	}
	if bodies == nil {
		bodies = []ident.ClientID{}
	}
	return svcs, bodies, err
}

// AIRegistry is what GET /api/v1/ai/services shows.
type AIRegistry struct {
	Services      []AIServiceInfo  `json:"services"`
	TestingBodies []ident.ClientID `json:"testing_bodies"`
}
