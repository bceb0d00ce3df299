package authority

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/conf"
)

// Page bounds of the read APIs.
const (
	defaultPage = 100
	maxPage     = 1000
)

// CertificateInfo is an issued certificate as the read API lists it.
type CertificateInfo struct {
	Serial      string `json:"serial"`
	Use         string `json:"use"`
	Subject     string `json:"subject"`
	Fingerprint string `json:"sha256"`
	NotAfter    string `json:"not_after"`
	RevokedAt   string `json:"revoked_at,omitempty"`
	// Status is "valid", "expired" or "revoked".
	Status string `json:"status"`
	// PEM is the certificate itself, in the answer about one
	// certificate (GET /api/v1/certificates/{serial}) only.
	PEM string `json:"certificate,omitempty"`
}

// AuditEntry is one line of the audit log: who did what, when, and how
// it ended (refusals included).
type AuditEntry struct {
	ID       int64  `json:"id"`
	At       string `json:"at"`
	Operator string `json:"operator"`
	Action   string `json:"action"`
	Detail   string `json:"detail"`
	// Outcome is "ok" for a change that committed, "refused: <reason>"
	// for a call refused to an operator.
	Outcome string `json:"outcome"`
}

// pageParams reads ?after=N&limit=N: the last id of the previous page
// and the page's size.
func pageParams(r *http.Request) (after int64, limit int, err error) {
	q := r.URL.Query()
	limit = defaultPage
	if v := q.Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxPage {
			return 0, 0, fmt.Errorf("%w: limit: want a number from 1 to %d", errInvalid, maxPage)
		}
	}
	if v := q.Get("after"); v != "" {
		if after, err = strconv.ParseInt(v, 10, 64); err != nil || after < 0 {
			return 0, 0, fmt.Errorf("%w: after: want the last id of the previous page", errInvalid)
		}
	}
	return after, limit, nil
}

// Page is a page of a read API: its items, and the after= of the
// next page (0 when this is the last).
type Page[T any] struct {
	Items []T   `json:"items"`
	Next  int64 `json:"next,omitempty"`
}

// Certificates lists the certificates the CA has issued, in the order
// issued, a page at a time.
func (a *Authority) Certificates(ctx context.Context, after int64, limit int) (Page[CertificateInfo], error) {
	out := Page[CertificateInfo]{Items: []CertificateInfo{}}
	rows, err := a.db.QueryContext(ctx, `SELECT rowid, serial, profile, subject, fingerprint, not_after, COALESCE(revoked_at, '')
		FROM certificates WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit+1)
	if err != nil {
		return out, fmt.Errorf("list certificates: %w", err)
	}
	defer rows.Close()
	now := time.Now()
	var last int64
	for rows.Next() {
		var id int64
		var c CertificateInfo
		if err := rows.Scan(&id, &c.Serial, &c.Use, &c.Subject, &c.Fingerprint, &c.NotAfter, &c.RevokedAt); err != nil {
			return out, fmt.Errorf("list certificates: %w", err)
		}
		if len(out.Items) == limit {
			out.Next = last
			break
		}
		c.Status = certStatus(c.NotAfter, c.RevokedAt, now)
		out.Items, last = append(out.Items, c), id
	}
	return out, rows.Err()
}

// Audit lists the audit log, oldest first, a page at a time.
func (a *Authority) Audit(ctx context.Context, after int64, limit int) (Page[AuditEntry], error) {
	out := Page[AuditEntry]{Items: []AuditEntry{}}
	rows, err := a.db.QueryContext(ctx, `SELECT rowid, at, operator, action, detail, outcome FROM audit_log WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit+1)
	if err != nil {
		return out, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.At, &e.Operator, &e.Action, &e.Detail, &e.Outcome); err != nil {
			return out, fmt.Errorf("read the audit log: %w", err)
		}
		if len(out.Items) == limit {
			out.Next = out.Items[limit-1].ID
			break
		}
		out.Items = append(out.Items, e)
	}
	return out, rows.Err()
}

// certStatus is a certificate's status as the read APIs show it:
// "revoked", "expired" or "valid".
func certStatus(notAfter, revokedAt string, now time.Time) string {
	if revokedAt != "" {
		return "revoked"
	}
	if t, err := time.Parse(time.RFC3339, notAfter); err == nil && now.After(t) {
		return "expired"
	}
	return "valid"
}

// MemberInfo is a registered member as the read API shows it.
type MemberInfo struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	CreatedAt string `json:"created_at"`
	// Subsystems is how many subsystems the member has registered.
	Subsystems int `json:"subsystems"`
}

// SubsystemInfo is a registered subsystem as the read API shows it.
type SubsystemInfo struct {
	ID     string `json:"id"`
	Member string `json:"member"`
	// Gateways are the gateways of other members its registration allows
	// to serve it (a gateway of its own member needs no mention).
	Gateways []string `json:"gateways"`
	// ServedBy are the gateways that list it among their clients.
	ServedBy  []string `json:"served_by"`
	CreatedAt string   `json:"created_at"`
}

// GatewayInfo is a registered gateway as the read API shows it.
type GatewayInfo struct {
	ID      string `json:"id"`
	Owner   string `json:"owner"`
	Address string `json:"address"`
	// AuthFP is the SHA-256 of its authentication certificate; empty
	// while it is registered without one (and not yet published).
	AuthFP string `json:"auth_cert_sha256,omitempty"`
	// AuthCert is that certificate as the CA issued it, when this
	// authority issued it.
	AuthCert *CertificateInfo `json:"auth_cert,omitempty"`
	// NextAuthFP is the SHA-256 of the authentication certificate of a
	// renewal under way (accepted beside AuthFP until the renewal
	// completes); empty when none is.
	NextAuthFP string   `json:"next_auth_cert_sha256,omitempty"`
	Clients    []string `json:"clients"`
	UpdatedAt  string   `json:"updated_at"`
}

// GroupInfo is a global group as the read API shows it.
type GroupInfo struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	Members     []string `json:"members"`
}

// FederationInfo is a federated instance as the read API shows it.
type FederationInfo struct {
	Instance  string `json:"instance"`
	AnchorURL string `json:"anchor_url"`
	// KeyIDs are the ids of the configuration-signing keys its anchor
	// trusts.
	KeyIDs []string `json:"key_ids"`
	// InboundClients are the clients of that instance allowed in (none:
	// no restriction beyond access rights).
	InboundClients []string `json:"inbound_clients"`
	UpdatedAt      string   `json:"updated_at"`
}

// reader reads one kind of registry object a page at a time, or one by
// its id. Pages follow the rowid (keyset paging): a row inserted while a
// reader pages gets a higher rowid than every row before it, so pages
// neither repeat nor skip what was there, and an upsert keeps its row's
// rowid.
type reader[T any] struct {
	kind   string // in errors: "member"
	from   string // SELECT x.rowid, … FROM table x
	rowid  string // x.rowid
	key    string // x.id
	scan   func(*sql.Rows) (int64, T, error)
	detail func(context.Context, *sql.Tx, *T) error // fills what another table holds; nil: nothing
}

// page reads the items after rowid after, at most limit, in one read
// transaction so that items and their details agree.
func (rd reader[T]) page(ctx context.Context, a *Authority, after int64, limit int) (Page[T], error) {
	out := Page[T]{Items: []T{}}
	err := a.readTx(ctx, func(tx *sql.Tx) error {
		items, ids, err := rd.query(ctx, tx, rd.rowid+" > ? ORDER BY "+rd.rowid+" LIMIT ?", after, limit+1)
		if err != nil {
			return err
		}
		if len(items) > limit {
			items, out.Next = items[:limit], ids[limit-1]
		}
		out.Items = items
		return nil
	})
	if err != nil {
		return Page[T]{Items: []T{}}, fmt.Errorf("list %ss: %w", rd.kind, err)
	}
	return out, nil
}

// one reads the item whose key is id; errNotFound names it when there is
// none.
func (rd reader[T]) one(ctx context.Context, a *Authority, id string) (*T, error) {
	var out *T
	err := a.readTx(ctx, func(tx *sql.Tx) error {
		items, _, err := rd.query(ctx, tx, rd.key+" = ?", id)
		if len(items) > 0 {
			out = &items[0]
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", rd.kind, id, err)
	}
	if out == nil {
		return nil, fmt.Errorf("%w: no %s %s", errNotFound, rd.kind, id)
	}
	return out, nil
}

func (rd reader[T]) query(ctx context.Context, tx *sql.Tx, where string, args ...any) ([]T, []int64, error) {
	rows, err := tx.QueryContext(ctx, rd.from+" WHERE "+where, args...)
	if err != nil {
		return nil, nil, err
	}
	var items []T
	var ids []int64
	for rows.Next() {
		id, it, err := rd.scan(rows)
		if err != nil {
			rows.Close()
			return nil, nil, err
		}
		items, ids = append(items, it), append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	if rd.detail != nil {
		for i := range items {
			if err := rd.detail(ctx, tx, &items[i]); err != nil {
				return nil, nil, err
			}
		}
	}
	return items, ids, nil
}

// readTx runs f in a transaction that only reads, on one snapshot of the
// registry.
func (a *Authority) readTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return f(tx)
}

// strings1 reads a one-column query's values; never nil.
func strings1(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]string, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

var members = reader[MemberInfo]{
	kind:  "member",
	from:  `SELECT m.rowid, m.id, m.name, m.created_at, (SELECT count(*) FROM subsystems s WHERE s.member_id = m.id) FROM members m`,
	rowid: "m.rowid", key: "m.id",
	scan: func(r *sql.Rows) (id int64, m MemberInfo, err error) {
		err = r.Scan(&id, &m.ID, &m.Name, &m.CreatedAt, &m.Subsystems)
		return id, m, err
	},
}

var subsystems = reader[SubsystemInfo]{
	kind:  "subsystem",
	from:  `SELECT s.rowid, s.id, s.member_id, s.created_at FROM subsystems s`,
	rowid: "s.rowid", key: "s.id",
	scan: func(r *sql.Rows) (id int64, s SubsystemInfo, err error) {
		err = r.Scan(&id, &s.ID, &s.Member, &s.CreatedAt)
		return id, s, err
	},
	detail: func(ctx context.Context, tx *sql.Tx, s *SubsystemInfo) (err error) {
		if s.Gateways, err = strings1(ctx, tx, `SELECT gateway_id FROM subsystem_gateways WHERE subsystem_id = ? ORDER BY gateway_id`, s.ID); err != nil {
			return err
		}
		s.ServedBy, err = strings1(ctx, tx, `SELECT gateway_id FROM gateway_clients WHERE subsystem_id = ? ORDER BY gateway_id`, s.ID)
		return err
	},
}

var gateways = reader[GatewayInfo]{
	kind:  "gateway",
	from:  `SELECT g.rowid, g.id, g.owner_id, g.address, COALESCE(g.auth_fp, ''), COALESCE(g.next_auth_fp, ''), g.updated_at FROM gateways g`,
	rowid: "g.rowid", key: "g.id",
	scan: func(r *sql.Rows) (id int64, g GatewayInfo, err error) {
		err = r.Scan(&id, &g.ID, &g.Owner, &g.Address, &g.AuthFP, &g.NextAuthFP, &g.UpdatedAt)
		return id, g, err
	},
	detail: func(ctx context.Context, tx *sql.Tx, g *GatewayInfo) (err error) {
		if g.Clients, err = strings1(ctx, tx, `SELECT subsystem_id FROM gateway_clients WHERE gateway_id = ? ORDER BY subsystem_id`, g.ID); err != nil {
			return err
		}
		if g.AuthFP == "" {
			return nil
		}
		c := CertificateInfo{Fingerprint: g.AuthFP}
		err = tx.QueryRowContext(ctx, `SELECT serial, profile, subject, not_after, COALESCE(revoked_at, '') FROM certificates WHERE fingerprint = ?`, g.AuthFP).
			Scan(&c.Serial, &c.Use, &c.Subject, &c.NotAfter, &c.RevokedAt)
		switch {
		case errors.Is(err, sql.ErrNoRows): // issued elsewhere, or before the registry kept certificates
			return nil
		case err != nil:
			return err
		}
		c.Status = certStatus(c.NotAfter, c.RevokedAt, time.Now())
		g.AuthCert = &c
		return nil
	},
}

var groups = reader[GroupInfo]{
	kind:  "global group",
	from:  `SELECT g.rowid, g.id, g.description FROM global_groups g`,
	rowid: "g.rowid", key: "g.id",
	scan: func(r *sql.Rows) (id int64, g GroupInfo, err error) {
		err = r.Scan(&id, &g.ID, &g.Description)
		return id, g, err
	},
	detail: func(ctx context.Context, tx *sql.Tx, g *GroupInfo) (err error) {
		g.Members, err = strings1(ctx, tx, `SELECT subsystem_id FROM group_members WHERE group_id = ? ORDER BY subsystem_id`, g.ID)
		return err
	},
}

var federations = reader[FederationInfo]{
	kind:  "federated instance",
	from:  `SELECT f.rowid, f.instance, f.anchor, f.inbound_clients, f.updated_at FROM federation f`,
	rowid: "f.rowid", key: "f.instance",
	scan: func(r *sql.Rows) (int64, FederationInfo, error) {
		var id int64
		var f FederationInfo
		var anchor, inbound string
		if err := r.Scan(&id, &f.Instance, &anchor, &inbound, &f.UpdatedAt); err != nil {
			return 0, f, err
		}
		var an conf.Anchor
		if err := json.Unmarshal([]byte(anchor), &an); err != nil {
			return 0, f, fmt.Errorf("registry federation %s: %w", f.Instance, err)
		}
		f.AnchorURL, f.KeyIDs = an.URL, []string{}
		for _, k := range an.Keys {
			f.KeyIDs = append(f.KeyIDs, k.KeyID)
		}
		if err := json.Unmarshal([]byte(inbound), &f.InboundClients); err != nil {
			return 0, f, fmt.Errorf("registry federation %s: %w", f.Instance, err)
		}
		if f.InboundClients == nil {
			f.InboundClients = []string{}
		}
		return id, f, nil
	},
}

var certificates = reader[CertificateInfo]{
	kind:  "certificate",
	from:  `SELECT c.rowid, c.serial, c.profile, c.subject, c.fingerprint, c.not_after, COALESCE(c.revoked_at, ''), c.pem FROM certificates c`,
	rowid: "c.rowid", key: "c.serial",
	scan: func(r *sql.Rows) (id int64, c CertificateInfo, err error) {
		err = r.Scan(&id, &c.Serial, &c.Use, &c.Subject, &c.Fingerprint, &c.NotAfter, &c.RevokedAt, &c.PEM)
		c.Status = certStatus(c.NotAfter, c.RevokedAt, time.Now())
		return id, c, err
	},
}

// Members lists the registered members in the order registered, a page
// at a time.
func (a *Authority) Members(ctx context.Context, after int64, limit int) (Page[MemberInfo], error) {
	return members.page(ctx, a, after, limit)
}

// Member returns a registered member.
func (a *Authority) Member(ctx context.Context, id string) (*MemberInfo, error) {
	return members.one(ctx, a, id)
}

// Subsystems lists the registered subsystems in the order registered, a
// page at a time.
func (a *Authority) Subsystems(ctx context.Context, after int64, limit int) (Page[SubsystemInfo], error) {
	return subsystems.page(ctx, a, after, limit)
}

// Subsystem returns a registered subsystem.
func (a *Authority) Subsystem(ctx context.Context, id string) (*SubsystemInfo, error) {
	return subsystems.one(ctx, a, id)
}

// Gateways lists the registered gateways in the order registered, a page
// at a time.
func (a *Authority) Gateways(ctx context.Context, after int64, limit int) (Page[GatewayInfo], error) {
	return gateways.page(ctx, a, after, limit)
}

// Gateway returns a registered gateway.
func (a *Authority) Gateway(ctx context.Context, id string) (*GatewayInfo, error) {
	return gateways.one(ctx, a, id)
}

// Groups lists the global groups in the order registered, a page at a
// time.
func (a *Authority) Groups(ctx context.Context, after int64, limit int) (Page[GroupInfo], error) {
	return groups.page(ctx, a, after, limit)
}

// Group returns a global group.
func (a *Authority) Group(ctx context.Context, id string) (*GroupInfo, error) {
	return groups.one(ctx, a, id)
}

// Federations lists the federated instances in the order first trusted,
// a page at a time.
func (a *Authority) Federations(ctx context.Context, after int64, limit int) (Page[FederationInfo], error) {
	return federations.page(ctx, a, after, limit)
}

// Federation returns a federated instance.
func (a *Authority) Federation(ctx context.Context, instance string) (*FederationInfo, error) {
	return federations.one(ctx, a, instance)
}

// Certificate returns an issued certificate, with its PEM, by its hex
// serial.
func (a *Authority) Certificate(ctx context.Context, serial string) (*CertificateInfo, error) {
	return certificates.one(ctx, a, strings.ToLower(serial))
}

// manageFunc registers a management API route: its pattern, the call's
// name (metrics, audit log), the role it needs, and its handler.
type manageFunc func(pattern, call, role string, h func(http.ResponseWriter, *http.Request, string) error)

// readRoutes registers the read APIs of the registry: a list (paged) and
// a get by id for each kind. An id is one path segment, percent-encoded
// (VN%2FGOV%2FMOF), or its parts as segments (VN/GOV/MOF).
func (a *Authority) readRoutes(manage manageFunc) {
	readRoute(manage, "members", "member", a.Members, a.Member)
	readRoute(manage, "subsystems", "subsystem", a.Subsystems, a.Subsystem)
	readRoute(manage, "gateways", "gateway", a.Gateways, a.Gateway)
	readRoute(manage, "groups", "group", a.Groups, a.Group)
	readRoute(manage, "federation", "federation", a.Federations, a.Federation)
	manage("GET /api/v1/certificates/{serial}", "get_certificate", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		c, err := a.Certificate(r.Context(), r.PathValue("serial"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, c)
		return nil
	})
}

func readRoute[T any](manage manageFunc, path, one string,
	list func(context.Context, int64, int) (Page[T], error), get func(context.Context, string) (*T, error)) {
	manage("GET /api/v1/"+path, "list_"+path, RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		after, limit, err := pageParams(r)
		if err != nil {
			return err
		}
		p, err := list(r.Context(), after, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	})
	manage("GET /api/v1/"+path+"/{id...}", "get_"+one, RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		id := r.PathValue("id")
		if id == "" {
			return fmt.Errorf("%w: give the id after /api/v1/%s/", errInvalid, path)
		}
		v, err := get(r.Context(), id)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, v)
		return nil
	})
}
