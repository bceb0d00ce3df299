package authority

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"
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
}

// AuditEntry is one line of the audit log: who did what, when, and how
// it ended (refusals included).
type AuditEntry struct {
	ID       int64  `json:"id"`
	At       string `json:"at"`
	Operator string `json:"operator"`
	Action   string `json:"action"`
	Detail   string `json:"detail"`
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
		c.Status = "valid"
		if t, err := time.Parse(time.RFC3339, c.NotAfter); err == nil && now.After(t) {
			c.Status = "expired"
		}
		if c.RevokedAt != "" {
			c.Status = "revoked"
		}
		out.Items, last = append(out.Items, c), id
	}
	return out, rows.Err()
}

// Audit lists the audit log, oldest first, a page at a time.
func (a *Authority) Audit(ctx context.Context, after int64, limit int) (Page[AuditEntry], error) {
	out := Page[AuditEntry]{Items: []AuditEntry{}}
	rows, err := a.db.QueryContext(ctx, `SELECT rowid, at, operator, action, detail FROM audit_log WHERE rowid > ? ORDER BY rowid LIMIT ?`, after, limit+1)
	if err != nil {
		return out, fmt.Errorf("read the audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e AuditEntry
		if err := rows.Scan(&e.ID, &e.At, &e.Operator, &e.Action, &e.Detail); err != nil {
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
