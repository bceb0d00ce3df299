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

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/store"
)

// migrations are the registry's schema changes, each with its written
// rollback (docs/upgrading.md). Append only.
var migrations = []store.Migration{
	{Up: `CREATE TABLE members (
		id TEXT PRIMARY KEY,
		name TEXT NOT NULL,
		created_at TEXT NOT NULL
	);
	CREATE TABLE subsystems (
		id TEXT PRIMARY KEY,
		member_id TEXT NOT NULL REFERENCES members(id),
		code TEXT NOT NULL,
		created_at TEXT NOT NULL
	);
	CREATE TABLE gateways (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL REFERENCES members(id),
		address TEXT NOT NULL,
		auth_fp TEXT NOT NULL UNIQUE,
		updated_at TEXT NOT NULL
	);
	CREATE TABLE gateway_clients (
		gateway_id TEXT NOT NULL REFERENCES gateways(id) ON DELETE CASCADE,
		subsystem_id TEXT NOT NULL REFERENCES subsystems(id),
		PRIMARY KEY (gateway_id, subsystem_id)
	);
	CREATE TABLE global_groups (
		id TEXT PRIMARY KEY,
		description TEXT NOT NULL
	);
	CREATE TABLE group_members (
		group_id TEXT NOT NULL REFERENCES global_groups(id) ON DELETE CASCADE,
		subsystem_id TEXT NOT NULL,
		PRIMARY KEY (group_id, subsystem_id)
	);
	CREATE TABLE certificates (
		serial TEXT PRIMARY KEY,
		profile TEXT NOT NULL,
		subject TEXT NOT NULL,
		fingerprint TEXT NOT NULL UNIQUE,
		not_after TEXT NOT NULL,
		revoked_at TEXT,
		pem TEXT NOT NULL
	);
	CREATE TABLE conf_state (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		serial INTEGER NOT NULL,
		crl_number INTEGER NOT NULL
	);
	INSERT INTO conf_state (id, serial, crl_number) VALUES (1, 0, 0);
	CREATE TABLE audit_log (
		at TEXT NOT NULL,
		operator TEXT NOT NULL,
		action TEXT NOT NULL,
		detail TEXT NOT NULL
	);`, Down: `DROP TABLE audit_log;
	DROP TABLE conf_state;
	DROP TABLE certificates;
	DROP TABLE group_members;
	DROP TABLE global_groups;
	DROP TABLE gateway_clients;
	DROP TABLE gateways;
	DROP TABLE subsystems;
	DROP TABLE members;`},
	{Up: `CREATE TABLE federation (
		instance TEXT PRIMARY KEY,
		anchor TEXT NOT NULL,
		inbound_clients TEXT NOT NULL,
		updated_at TEXT NOT NULL
	);`, Down: `DROP TABLE federation;`},
	{Up: policyMigration, Down: `DROP TABLE policy_items;`},
	{Up: `CREATE TABLE subsystem_gateways (
		subsystem_id TEXT NOT NULL REFERENCES subsystems(id),
		gateway_id TEXT NOT NULL,
		PRIMARY KEY (subsystem_id, gateway_id)
	);
	CREATE TABLE revoked_tokens (
		token_sha256 TEXT PRIMARY KEY,
		operator TEXT NOT NULL,
		revoked_at TEXT NOT NULL
	);`, Down: `DROP TABLE revoked_tokens;
	DROP TABLE subsystem_gateways;`},
	{Up: pkiMigration, Down: pkiRollback},
	// Each audit entry says how the call ended: "ok" (a change that
	// committed), "refused: <reason>". Entries written before were
	// changes, or refusals whose action says so ("refused 403"). The
	// rollback folds a refusal's outcome into its action, so that no
	// refused call reads as a change to the version before.
	{Up: `ALTER TABLE audit_log ADD COLUMN outcome TEXT NOT NULL DEFAULT 'ok';
	UPDATE audit_log SET outcome = 'refused: status ' || substr(action, 9) WHERE action LIKE 'refused ___';`,
		Down: `UPDATE audit_log SET action = outcome || ' — ' || action WHERE outcome <> 'ok' AND action NOT LIKE 'refused ___';
	ALTER TABLE audit_log DROP COLUMN outcome;`},
	// A renewal under way (a next authentication certificate issued, not
	// yet completed) is forgotten by the rollback: renew again after it.
	{Up: renewMigration, Down: `DROP INDEX gateways_next_auth_fp;
	ALTER TABLE gateways DROP COLUMN next_auth_fp;`},
	// The registry of AI services (ai.go); the rollback forgets it.
	{Up: aiMigration, Down: aiRollback},
	// A report is bound to the model card it evaluated, and may be
	// withdrawn (ai.go). Reports accepted before count for no card: the
	// service is evaluated again. The rollback marks withdrawn reports
	// as not passed: they stay on record, cannot be submitted again and
	// count for nothing.
	{Up: aiReportsMigration, Down: aiReportsRollback},
}

// errConflict and errNotFound are mapped to HTTP statuses by the API.
var (
	errConflict = errors.New("conflict")
	errNotFound = errors.New("not found")
	errInvalid  = errors.New("invalid")
	errTooLarge = errors.New("too large")
)

func now() string { return time.Now().UTC().Format(time.RFC3339Nano) }

func isUnique(err error) bool {
	return err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// MemberInput registers a member.
type MemberInput struct {
	ID   ident.ClientID `json:"id"`
	Name string         `json:"name"`
}

// SubsystemInput registers a subsystem.
type SubsystemInput struct {
	ID ident.ClientID `json:"id"`
	// Gateways are the gateways of other members that may serve the
	// subsystem (list it in their clients). A gateway of the subsystem's
	// own member needs no mention.
	Gateways []ident.GatewayID `json:"gateways,omitempty"`
}

// GatewayInput registers or updates a gateway.
type GatewayInput struct {
	ID      ident.GatewayID  `json:"id"`
	Address string           `json:"address"`
	AuthFP  string           `json:"auth_cert_sha256"`
	Clients []ident.ClientID `json:"clients"`
}

// GroupInput registers or replaces a global group.
type GroupInput struct {
	ID          ident.GroupID    `json:"id"`
	Description string           `json:"description"`
	Members     []ident.ClientID `json:"members"`
}

// audit writes to the audit log, in tx, a change that commits with it.
func (a *Authority) audit(ctx context.Context, tx *sql.Tx, op, action, detail string) error {
	return a.auditOutcome(ctx, tx, op, action, detail, outcomeOK)
}

// auditOutcome writes an audit log entry with its outcome: "ok", or
// "refused: <reason>".
func (a *Authority) auditOutcome(ctx context.Context, tx *sql.Tx, op, action, detail, outcome string) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO audit_log (at, operator, action, detail, outcome) VALUES (?, ?, ?, ?, ?)`, now(), op, action, detail, outcome)
	return err
}

func (a *Authority) checkMemberID(id ident.ClientID) error {
	if err := id.ValidateCanonical(); err != nil {
		return fmt.Errorf("%w: id: %w", errInvalid, err)
	}
	if id.Instance != a.cfg.Instance {
		return fmt.Errorf("%w: id: instance %s is not this authority's (%s)", errInvalid, id.Instance, a.cfg.Instance)
	}
	if classes := a.config().MemberClasses; !slices.Contains(classes, id.Class) {
		return fmt.Errorf("%w: id: member class %s is not one of %s", errInvalid, id.Class, strings.Join(classes, ", "))
	}
	return nil
}

func registered(ctx context.Context, tx *sql.Tx, table, id string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM `+table+` WHERE id = ?`, id).Scan(&n)
	return n > 0, err
}

// AddMember registers a member.
func (a *Authority) AddMember(ctx context.Context, op string, in MemberInput) error {
	if in.ID.IsSubsystem() {
		return fmt.Errorf("%w: id: %s is a subsystem, not a member", errInvalid, in.ID)
	}
	if err := a.checkMemberID(in.ID); err != nil {
		return err
	}
	if err := checkText("name", in.Name, 1, maxNameLen); err != nil {
		return err
	}
	return a.change(ctx, op, "add member", in.ID.String(), func(tx *sql.Tx) error {
		if err := refuseTwin(ctx, tx, "members", "id", in.ID.String()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO members (id, name, created_at) VALUES (?, ?, ?)`, in.ID.String(), in.Name, now()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%w: member %s is already registered", errConflict, in.ID)
			}
			return err
		}
		return nil
	})
}

func (a *Authority) checkSubsystem(in SubsystemInput) error {
	if !in.ID.IsSubsystem() {
		return fmt.Errorf("%w: id: %s is not a subsystem", errInvalid, in.ID)
	}
	if err := a.checkMemberID(in.ID); err != nil {
		return err
	}
	if err := checkList("gateways", in.Gateways, maxSubsystemGateways); err != nil {
		return err
	}
	for i, g := range in.Gateways {
		if err := g.ValidateCanonical(); err != nil || g.Instance != a.cfg.Instance {
			return fmt.Errorf("%w: gateways[%d]: %q is not a gateway of %s", errInvalid, i, g, a.cfg.Instance)
		}
	}
	return nil
}

// AddSubsystem registers a subsystem of a registered member.
func (a *Authority) AddSubsystem(ctx context.Context, op string, in SubsystemInput) error {
	if err := a.checkSubsystem(in); err != nil {
		return err
	}
	return a.change(ctx, op, "add subsystem", in.ID.String(), func(tx *sql.Tx) error {
		return a.writeSubsystem(ctx, tx, in, false)
	})
}

// PutSubsystem registers a subsystem or replaces the gateways of other
// members it names as its providers.
func (a *Authority) PutSubsystem(ctx context.Context, op string, in SubsystemInput) error {
	if err := a.checkSubsystem(in); err != nil {
		return err
	}
	return a.change(ctx, op, "put subsystem", in.ID.String(), func(tx *sql.Tx) error {
		return a.writeSubsystem(ctx, tx, in, true)
	})
}

func (a *Authority) writeSubsystem(ctx context.Context, tx *sql.Tx, in SubsystemInput, replace bool) error {
	ok, err := registered(ctx, tx, "members", in.ID.Member().String())
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("%w: id: member %s is not registered", errInvalid, in.ID.Member())
	}
	if err := refuseTwin(ctx, tx, "subsystems", "id", in.ID.String()); err != nil {
		return err
	}
	exists, err := registered(ctx, tx, "subsystems", in.ID.String())
	if err != nil {
		return err
	}
	switch {
	case exists && !replace:
		return fmt.Errorf("%w: subsystem %s is already registered", errConflict, in.ID)
	case !exists:
		if _, err := tx.ExecContext(ctx, `INSERT INTO subsystems (id, member_id, code, created_at) VALUES (?, ?, ?, ?)`,
			in.ID.String(), in.ID.Member().String(), in.ID.Subsystem, now()); err != nil {
			return err
		}
	}
	// A gateway of another member that serves the subsystem must stay
	// named: the gateway's registration is changed first.
	rows, err := tx.QueryContext(ctx, `SELECT gateway_id FROM gateway_clients WHERE subsystem_id = ? ORDER BY gateway_id`, in.ID.String())
	if err != nil {
		return err
	}
	var serving []string
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			rows.Close()
			return err
		}
		serving = append(serving, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for _, g := range serving {
		gid, err := ident.ParseGateway(g)
		if err != nil {
			return err
		}
		if gid.Owner() != in.ID.Member() && !slices.Contains(in.Gateways, gid) {
			return fmt.Errorf("%w: gateways: gateway %s serves %s; take it off that gateway's clients first", errConflict, gid, in.ID)
		}
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM subsystem_gateways WHERE subsystem_id = ?`, in.ID.String()); err != nil {
		return err
	}
	for _, g := range in.Gateways {
		if _, err := tx.ExecContext(ctx, `INSERT INTO subsystem_gateways (subsystem_id, gateway_id) VALUES (?, ?)`, in.ID.String(), g.String()); err != nil {
			return err
		}
	}
	return nil
}

// PutGateway registers a gateway or replaces its address, certificate
// fingerprint and clients. A gateway serves the subsystems of its own
// member, and a subsystem of another member only when that subsystem's
// registration names the gateway (SubsystemInput.Gateways). Registering
// the next certificate of a renewal under way completes the renewal
// (see Renew); registering any other certificate than the current one,
// or none, ends it: its next certificate is no longer published.
func (a *Authority) PutGateway(ctx context.Context, op string, in GatewayInput) error {
	if err := in.ID.ValidateCanonical(); err != nil {
		return fmt.Errorf("%w: id: %w", errInvalid, err)
	}
	if err := a.checkMemberID(in.ID.Owner()); err != nil {
		return err
	}
	if err := checkAddress(in.Address); err != nil {
		return fmt.Errorf("%w: address: %w", errInvalid, err)
	}
	in.AuthFP = strings.ToLower(in.AuthFP)
	if in.AuthFP != "" && !isHex64(in.AuthFP) {
		return fmt.Errorf("%w: auth_cert_sha256: want the 64 hex digits of the certificate's SHA-256", errInvalid)
	}
	if err := checkList("clients", in.Clients, maxGatewayClients); err != nil {
		return err
	}
	for i, c := range in.Clients {
		if !c.IsSubsystem() || c.Instance != a.cfg.Instance {
			return fmt.Errorf("%w: clients[%d]: %s is not a subsystem of %s", errInvalid, i, c, a.cfg.Instance)
		}
	}
	return a.change(ctx, op, "put gateway", in.ID.String()+" "+in.Address+" "+in.AuthFP, func(tx *sql.Tx) error {
		ok, err := registered(ctx, tx, "members", in.ID.Owner().String())
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: id: owner %s is not a registered member", errInvalid, in.ID.Owner())
		}
		if err := refuseTwin(ctx, tx, "gateways", "id", in.ID.String()); err != nil {
			return err
		}
		if err := checkAuthCert(ctx, tx, in.AuthFP, in.ID); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO gateways (id, owner_id, address, auth_fp, updated_at) VALUES (?, ?, ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET address = excluded.address, auth_fp = excluded.auth_fp, updated_at = excluded.updated_at,
				next_auth_fp = CASE WHEN gateways.auth_fp IS excluded.auth_fp THEN gateways.next_auth_fp ELSE NULL END`,
			in.ID.String(), in.ID.Owner().String(), in.Address, sql.NullString{String: in.AuthFP, Valid: in.AuthFP != ""}, now()); err != nil {
			if isUnique(err) {
				return fmt.Errorf("%w: auth_cert_sha256: the certificate belongs to another gateway", errConflict)
			}
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM gateway_clients WHERE gateway_id = ?`, in.ID.String()); err != nil {
			return err
		}
		for i, c := range in.Clients {
			ok, err := registered(ctx, tx, "subsystems", c.String())
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: clients[%d]: subsystem %s is not registered", errInvalid, i, c)
			}
			if c.Member() != in.ID.Owner() {
				var n int
				if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM subsystem_gateways WHERE subsystem_id = ? AND gateway_id = ?`, c.String(), in.ID.String()).Scan(&n); err != nil {
					return err
				}
				if n == 0 {
					return fmt.Errorf("%w: clients[%d]: %s belongs to %s, whose registration of it does not name gateway %s", errInvalid, i, c, c.Member(), in.ID)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO gateway_clients (gateway_id, subsystem_id) VALUES (?, ?)`, in.ID.String(), c.String()); err != nil {
				return err
			}
		}
		return nil
	})
}

// PutGroup registers or replaces a global group.
func (a *Authority) PutGroup(ctx context.Context, op string, in GroupInput) error {
	if err := in.ID.ValidateCanonical(); err != nil || in.ID.Instance != a.cfg.Instance {
		return fmt.Errorf("%w: id: %s is not a group of %s in canonical form", errInvalid, in.ID, a.cfg.Instance)
	}
	if err := checkText("description", in.Description, 0, maxDescriptionLen); err != nil {
		return err
	}
	if err := checkList("members", in.Members, maxGroupMembers); err != nil {
		return err
	}
	for i, m := range in.Members {
		if !m.IsSubsystem() {
			return fmt.Errorf("%w: members[%d]: %s is not a subsystem", errInvalid, i, m)
		}
	}
	return a.change(ctx, op, "put group", in.ID.String(), func(tx *sql.Tx) error {
		if err := refuseTwin(ctx, tx, "global_groups", "id", in.ID.String()); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO global_groups (id, description) VALUES (?, ?)
			ON CONFLICT (id) DO UPDATE SET description = excluded.description`, in.ID.String(), in.Description); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM group_members WHERE group_id = ?`, in.ID.String()); err != nil {
			return err
		}
		for i, m := range in.Members {
			if m.Instance == a.cfg.Instance {
				ok, err := registered(ctx, tx, "subsystems", m.String())
				if err != nil {
					return err
				}
				if !ok {
					return fmt.Errorf("%w: members[%d]: subsystem %s is not registered", errInvalid, i, m)
				}
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO group_members (group_id, subsystem_id) VALUES (?, ?)`, in.ID.String(), m.String()); err != nil {
				return err
			}
		}
		return nil
	})
}

// snapshot reads the registry into a configuration (without serial and
// times).
func (a *Authority) snapshot(ctx context.Context, tx *sql.Tx) (*conf.Config, error) {
	c := &conf.Config{FormatVersion: conf.FormatVersion, Instance: a.cfg.Instance}
	rows, err := tx.QueryContext(ctx, `SELECT id, name FROM members ORDER BY id`)
	if err != nil {
		return nil, err
	}
	idx := map[string]int{}
	for rows.Next() {
		var id, name string
		if err := rows.Scan(&id, &name); err != nil {
			rows.Close()
			return nil, err
		}
		mid, err := ident.ParseMember(id)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("registry member %q: %w", id, err)
		}
		idx[id] = len(c.Members)
		c.Members = append(c.Members, conf.Member{ID: mid, Name: name, Subsystems: []string{}})
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT member_id, code FROM subsystems ORDER BY id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var mid, code string
		if err := rows.Scan(&mid, &code); err != nil {
			rows.Close()
			return nil, err
		}
		i := idx[mid]
		c.Members[i].Subsystems = append(c.Members[i].Subsystems, code)
	}
	rows.Close()
	// A gateway registered without a certificate yet is not published.
	rows, err = tx.QueryContext(ctx, `SELECT id, address, auth_fp, next_auth_fp FROM gateways WHERE auth_fp IS NOT NULL ORDER BY id`)
	if err != nil {
		return nil, err
	}
	gidx := map[string]int{}
	for rows.Next() {
		var id, addr, fp string
		var next sql.NullString
		if err := rows.Scan(&id, &addr, &fp, &next); err != nil {
			rows.Close()
			return nil, err
		}
		gid, err := ident.ParseGateway(id)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("registry gateway %q: %w", id, err)
		}
		gidx[id] = len(c.Gateways)
		c.Gateways = append(c.Gateways, conf.Gateway{ID: gid, Address: addr, AuthFP: fp, NextAuthFP: next.String, Clients: []ident.ClientID{}})
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT c.gateway_id, c.subsystem_id FROM gateway_clients c JOIN gateways g ON g.id = c.gateway_id WHERE g.auth_fp IS NOT NULL ORDER BY c.gateway_id, c.subsystem_id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var gid, sid string
		if err := rows.Scan(&gid, &sid); err != nil {
			rows.Close()
			return nil, err
		}
		s, err := ident.ParseSubsystem(sid)
		if err != nil {
			rows.Close()
			return nil, err
		}
		i := gidx[gid]
		c.Gateways[i].Clients = append(c.Gateways[i].Clients, s)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT g.id, g.description, m.subsystem_id FROM global_groups g LEFT JOIN group_members m ON m.group_id = g.id ORDER BY g.id, m.subsystem_id`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var id, desc string
		var sid sql.NullString
		if err := rows.Scan(&id, &desc, &sid); err != nil {
			rows.Close()
			return nil, err
		}
		gid, err := ident.ParseGroup(id)
		if err != nil {
			rows.Close()
			return nil, err
		}
		if n := len(c.GlobalGroups); n == 0 || c.GlobalGroups[n-1].ID != gid {
			c.GlobalGroups = append(c.GlobalGroups, conf.GlobalGroup{ID: gid, Description: desc, Members: []ident.ClientID{}})
		}
		if sid.Valid {
			s, err := ident.ParseSubsystem(sid.String)
			if err != nil {
				rows.Close()
				return nil, err
			}
			g := &c.GlobalGroups[len(c.GlobalGroups)-1]
			g.Members = append(g.Members, s)
		}
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT serial FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial`)
	if err != nil {
		return nil, err
	}
	c.Revoked = []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		c.Revoked = append(c.Revoked, s)
	}
	rows.Close()
	rows, err = tx.QueryContext(ctx, `SELECT instance, anchor, inbound_clients FROM federation ORDER BY instance`)
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var inst, anchor, inbound string
		if err := rows.Scan(&inst, &anchor, &inbound); err != nil {
			rows.Close()
			return nil, err
		}
		var f conf.Federation
		if err := json.Unmarshal([]byte(anchor), &f.Anchor); err != nil {
			rows.Close()
			return nil, fmt.Errorf("registry federation %s: %w", inst, err)
		}
		if err := json.Unmarshal([]byte(inbound), &f.InboundClients); err != nil {
			rows.Close()
			return nil, fmt.Errorf("registry federation %s: %w", inst, err)
		}
		c.Federation = append(c.Federation, f)
	}
	rows.Close()
	if c.Members == nil {
		c.Members = []conf.Member{}
	}
	if c.Gateways == nil {
		c.Gateways = []conf.Gateway{}
	}
	if c.GlobalGroups == nil {
		c.GlobalGroups = []conf.GlobalGroup{}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if err := aiSnapshot(ctx, tx, c); err != nil {
		return nil, err
	}
	// Published when configured, or once AI is in use: a gateway of an
	// earlier release, which knows no ai_obligations, reads the
	// configuration of an instance that uses none of this.
	if cf := a.config(); cf.AIObligations != nil || len(c.AIServices) > 0 || len(c.AITestingBodies) > 0 {
		c.AIObligations = cf.aiRules()
	}
	var err2 error
	c.Policy, err2 = a.policyDocument(ctx, tx)
	return c, err2
}

// FederationInput trusts a foreign instance.
type FederationInput struct {
	Anchor         conf.Anchor      `json:"anchor"`
	InboundClients []ident.ClientID `json:"inbound_clients"`
}

// PutFederation trusts a foreign instance's anchor, or replaces the anchor
// and inbound restriction of one already trusted.
func (a *Authority) PutFederation(ctx context.Context, op string, in FederationInput) error {
	if err := in.Anchor.Validate(); err != nil {
		return fmt.Errorf("%w: anchor.%w", errInvalid, err)
	}
	if in.Anchor.Instance == a.cfg.Instance {
		return fmt.Errorf("%w: anchor.instance: %s cannot federate with itself", errInvalid, a.cfg.Instance)
	}
	if len(in.Anchor.Keys) > maxAnchorKeys {
		return fmt.Errorf("%w: anchor.keys: more than %d keys", errInvalid, maxAnchorKeys)
	}
	for i, k := range in.Anchor.Keys {
		if len(k.KeyID) > maxKeyIDLen {
			return fmt.Errorf("%w: anchor.keys[%d].kid: longer than %d bytes", errInvalid, i, maxKeyIDLen)
		}
	}
	if len(in.Anchor.URL) > maxURLLen {
		return fmt.Errorf("%w: anchor.url: longer than %d bytes", errInvalid, maxURLLen)
	}
	if err := checkList("inbound_clients", in.InboundClients, maxInboundClients); err != nil {
		return err
	}
	for i, c := range in.InboundClients {
		if c.Validate() != nil || c.Instance != in.Anchor.Instance {
			return fmt.Errorf("%w: inbound_clients[%d]: %q is not a client of %s", errInvalid, i, c, in.Anchor.Instance)
		}
	}
	if in.InboundClients == nil {
		in.InboundClients = []ident.ClientID{}
	}
	anchor, err := json.Marshal(&in.Anchor)
	if err != nil {
		return err
	}
	inbound, err := json.Marshal(in.InboundClients)
	if err != nil {
		return err
	}
	return a.change(ctx, op, "put federation", in.Anchor.Instance+" "+in.Anchor.URL, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO federation (instance, anchor, inbound_clients, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (instance) DO UPDATE SET anchor = excluded.anchor, inbound_clients = excluded.inbound_clients, updated_at = excluded.updated_at`,
			in.Anchor.Instance, string(anchor), string(inbound), now()); err != nil {
			return err
		}
		return nil
	})
}

// RemoveFederation stops trusting a foreign instance. Gateways end
// traffic with it at their next configuration refresh.
func (a *Authority) RemoveFederation(ctx context.Context, op, instance string) error {
	return a.change(ctx, op, "remove federation", instance, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM federation WHERE instance = ?`, instance)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: instance %q is not federated", errNotFound, instance)
		}
		return nil
	})
}
