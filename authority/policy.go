package authority

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/policy"
)

// Policy items are kept one per row, as JSON, by kind and id; the
// configuration's policy document is built from them. Every change is
// compiled before it is committed: a change that would not compile is
// refused with the compiler's message and changes nothing.
const policyMigration = `CREATE TABLE policy_items (
	kind TEXT NOT NULL,
	id TEXT NOT NULL,
	doc TEXT NOT NULL,
	updated_at TEXT NOT NULL,
	PRIMARY KEY (kind, id)
);`

const (
	kindService    = "service"
	kindAgreement  = "agreement"
	kindRule       = "rule"
	kindSuspension = "suspension"
)

// policyDocument reads the policy document from the registry.
func (a *Authority) policyDocument(ctx context.Context, tx *sql.Tx) (*policy.Document, error) {
	rows, err := tx.QueryContext(ctx, `SELECT kind, id, doc FROM policy_items ORDER BY kind, id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	d := &policy.Document{}
	for rows.Next() {
		var kind, id, doc string
		if err := rows.Scan(&kind, &id, &doc); err != nil {
			return nil, err
		}
		var dst any
		switch kind {
		case kindService:
			d.Services = append(d.Services, policy.ServiceClass{})
			dst = &d.Services[len(d.Services)-1]
		case kindAgreement:
			d.Agreements = append(d.Agreements, policy.Agreement{})
			dst = &d.Agreements[len(d.Agreements)-1]
		case kindRule:
			d.Rules = append(d.Rules, policy.Rule{})
			dst = &d.Rules[len(d.Rules)-1]
		case kindSuspension:
			d.Suspensions = append(d.Suspensions, policy.Suspension{})
			dst = &d.Suspensions[len(d.Suspensions)-1]
		default:
			return nil, fmt.Errorf("registry policy item of unknown kind %q", kind)
		}
		if err := json.Unmarshal([]byte(doc), dst); err != nil {
			return nil, fmt.Errorf("registry policy %s %s: %w", kind, id, err)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(d.Services)+len(d.Agreements)+len(d.Rules)+len(d.Suspensions) == 0 {
		return nil, nil
	}
	return d, nil
}

// changePolicy applies f in a transaction, checks that the resulting
// document compiles and that its services belong to registered
// subsystems, records the change in the audit log and publishes.
func (a *Authority) changePolicy(ctx context.Context, op, action, detail string, f func(tx *sql.Tx) error) error {
	return a.change(ctx, op, action, detail, func(tx *sql.Tx) error {
		if err := f(tx); err != nil {
			return err
		}
		d, err := a.policyDocument(ctx, tx)
		if err != nil {
			return err
		}
		if d != nil {
			for _, s := range d.Services {
				var n int
				p := s.ID.Provider
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM subsystems WHERE id = ?`, p.String()).Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					return fmt.Errorf("%w: service %s: subsystem %s is not registered", errInvalid, s.ID, p)
				}
			}
		}
		return nil
	})
}

func putItem(ctx context.Context, tx *sql.Tx, kind, id string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO policy_items (kind, id, doc, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at`, kind, id, string(b), now())
	return err
}

// checkPolicyInput validates d, which holds only what one request sent,
// so that errors name the request's own fields: prefix, the path of the
// request's body in d, is cut from the message.
func (a *Authority) checkPolicyInput(d *policy.Document, prefix string) error {
	if err := d.Validate(a.cfg.Instance); err != nil {
		return fmt.Errorf("%w: %s", errInvalid, strings.ReplaceAll(err.Error(), prefix, ""))
	}
	return nil
}

// refusePolicyTwin refuses an id that differs only in case from one of
// the same kind already registered.
func refusePolicyTwin(ctx context.Context, tx *sql.Tx, kind, id string) error {
	var other string
	err := tx.QueryRowContext(ctx, `SELECT id FROM policy_items WHERE kind = ? AND lower(id) = lower(?) AND id <> ? LIMIT 1`, kind, id, id).Scan(&other)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: id: %s differs only in case from the registered %s %s", errConflict, id, kind, other)
}

// PutServiceClass declares (or changes) a service's data class and flags.
func (a *Authority) PutServiceClass(ctx context.Context, op string, in policy.ServiceClass) error {
	if err := a.checkPolicyInput(&policy.Document{Services: []policy.ServiceClass{in}}, "policy.services[0]."); err != nil {
		return err
	}
	return a.changePolicy(ctx, op, "put data class", in.ID.String()+" "+in.Class+" "+strings.Join(in.Flags, ","), func(tx *sql.Tx) error {
		return putItem(ctx, tx, kindService, in.ID.String(), in)
	})
}

// PutAgreement registers (or replaces) an agreement.
func (a *Authority) PutAgreement(ctx context.Context, op string, in policy.Agreement) error {
	if err := a.checkPolicyInput(&policy.Document{Agreements: []policy.Agreement{in}}, "policy.agreements[0]."); err != nil {
		return err
	}
	return a.changePolicy(ctx, op, "put agreement", in.ID+" "+in.Status, func(tx *sql.Tx) error {
		if err := refusePolicyTwin(ctx, tx, kindAgreement, in.ID); err != nil {
			return err
		}
		return putItem(ctx, tx, kindAgreement, in.ID, in)
	})
}

// StatusInput changes an agreement's status: the stop switch for one
// agreement, and its release.
type StatusInput struct {
	Status string `json:"status"`
	Reason string `json:"reason"`
}

// SetAgreementStatus suspends, resumes or terminates an agreement.
func (a *Authority) SetAgreementStatus(ctx context.Context, op, id string, in StatusInput) error {
	if !slices.Contains([]string{policy.StatusActive, policy.StatusSuspended, policy.StatusTerminated}, in.Status) {
		return fmt.Errorf("%w: status: unknown value %q (active, suspended or terminated)", errInvalid, in.Status)
	}
	if in.Reason == "" {
		return fmt.Errorf("%w: reason: say why the status changes", errInvalid)
	}
	if err := checkText("reason", in.Reason, 1, maxReasonLen); err != nil {
		return err
	}
	return a.changePolicy(ctx, op, "agreement status", id+" "+in.Status+": "+in.Reason, func(tx *sql.Tx) error {
		var doc string
		err := tx.QueryRowContext(ctx, `SELECT doc FROM policy_items WHERE kind = ? AND id = ?`, kindAgreement, id).Scan(&doc)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: no agreement %q", errNotFound, id)
		}
		if err != nil {
			return err
		}
		var ag policy.Agreement
		if err := json.Unmarshal([]byte(doc), &ag); err != nil {
			return err
		}
		if ag.Status == policy.StatusTerminated && in.Status != policy.StatusTerminated {
			return fmt.Errorf("%w: agreement %s is terminated; register a new one", errConflict, id)
		}
		ag.Status, ag.StatusReason = in.Status, in.Reason
		return putItem(ctx, tx, kindAgreement, id, ag)
	})
}

// PutRules replaces the instance's national rules.
func (a *Authority) PutRules(ctx context.Context, op string, rules []policy.Rule) error {
	if err := a.checkPolicyInput(&policy.Document{Rules: rules}, "policy."); err != nil {
		return err
	}
	ids := make([]string, len(rules))
	for i, r := range rules {
		ids[i] = r.ID
	}
	return a.changePolicy(ctx, op, "put rules", strings.Join(ids, ","), func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM policy_items WHERE kind = ?`, kindRule); err != nil {
			return err
		}
		for _, r := range rules {
			if err := putItem(ctx, tx, kindRule, r.ID, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutSuspension is the regulator's stop switch for a class of flows.
func (a *Authority) PutSuspension(ctx context.Context, op string, in policy.Suspension) error {
	if in.Since.IsZero() {
		in.Since = time.Now().UTC().Truncate(time.Second)
	}
	if err := a.checkPolicyInput(&policy.Document{Suspensions: []policy.Suspension{in}}, "policy.suspensions[0]."); err != nil {
		return err
	}
	return a.changePolicy(ctx, op, "suspend flows", in.ID+": "+in.Reason, func(tx *sql.Tx) error {
		if err := refusePolicyTwin(ctx, tx, kindSuspension, in.ID); err != nil {
			return err
		}
		return putItem(ctx, tx, kindSuspension, in.ID, in)
	})
}

// RemoveSuspension resumes the flows a suspension stopped.
func (a *Authority) RemoveSuspension(ctx context.Context, op, id string) error {
	return a.changePolicy(ctx, op, "resume flows", id, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM policy_items WHERE kind = ? AND id = ?`, kindSuspension, id)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: no suspension %q", errNotFound, id)
		}
		return nil
	})
}

// PolicyView is what GET /api/v1/policy shows: the document and the
// Cedar policies it compiles to.
type PolicyView struct {
	Document *policy.Document `json:"document"`
	Cedar    string           `json:"cedar"`
	Version  string           `json:"version"`
}
