package opmon

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sampan-exchange/sampan/ident"
)

// Filter selects records for Query. Zero fields select everything.
type Filter struct {
	// From and To bound the request-in time: From <= t < To.
	From, To time.Time
	// Client, Service and ErrorType match exactly.
	Client, Service, ErrorType string
	// Provider, a subsystem in plain form, selects the records of the
	// services it offers.
	Provider string
	// Party, a member or subsystem in plain form, selects the records
	// whose client is Party or whose service Party offers (a member
	// offers none: services belong to subsystems).
	Party string
	// Side is "consumer", "provider" or "" for both.
	Side string
	// Status is the HTTP status given to the caller; 0 for any.
	Status int
	// Succeeded, when not nil, selects succeeded or failed exchanges.
	Succeeded *bool
	// Limit is the page size: default DefaultLimit, at most MaxLimit.
	Limit int
	// After is the Next of the previous page; "" for the first.
	After string
}

// Page is one page of records in (request-in time, id) order.
type Page struct {
	Records []Record
	// Next is the cursor of the following page (Filter.After), "" when
	// this page is the last.
	Next string
}

// Page sizes and the longest filter value accepted.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
	maxValue     = 1024
)

// ErrBadFilter wraps the errors of filters Query refuses: the caller's
// mistake, to report to it (HTTP 400), not a failure of the store.
var ErrBadFilter = errors.New("bad filter")

func badFilter(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadFilter}, args...)...)
}

// cursor is the position after which a page starts.
type cursor struct {
	at, id int64
}

func (c cursor) String() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.at, 10) + "." + strconv.FormatInt(c.id, 10)))
}

func parseCursor(s string) (cursor, error) {
	bad := badFilter("after: not a cursor this store gave")
	if len(s) > 64 {
		return cursor{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return cursor{}, bad
	}
	at, id, ok := strings.Cut(string(b), ".")
	var c cursor
	var err1, err2 error
	c.at, err1 = strconv.ParseInt(at, 10, 64)
	c.id, err2 = strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || c.id < 1 {
		return cursor{}, bad
	}
	return c, nil
}

// query is the SQL (with ? placeholders) and arguments of f's page,
// f.Limit set, with one record more than the page to tell whether another
// follows.
func query(f Filter) (string, []any, error) {
	var where []string
	var args []any
	add := func(cond string, a ...any) {
		where = append(where, cond)
		args = append(args, a...)
	}
	if f.Limit < 1 || f.Limit > MaxLimit {
		return "", nil, badFilter("limit %d is outside 1..%d", f.Limit, MaxLimit)
	}
	if !f.From.IsZero() && !f.To.IsZero() && f.To.Before(f.From) {
		return "", nil, badFilter("to is before from")
	}
	if !f.From.IsZero() {
		add("request_in_at >= ?", f.From.UnixMicro())
	}
	if !f.To.IsZero() {
		add("request_in_at < ?", f.To.UnixMicro())
	}
	for _, v := range []struct{ name, col, value string }{
		{"client", "client", f.Client}, {"service", "service", f.Service}, {"error_type", "error_type", f.ErrorType},
	} {
		if len(v.value) > maxValue {
			return "", nil, badFilter("%s is longer than %d bytes", v.name, maxValue)
		}
		if v.value != "" {
			add(v.col+" = ?", v.value)
		}
	}
	if f.ErrorType != "" {
		add("error_type <> ''") // the condition of opmon_records_error
	}
	// A provider's services are those whose plain form starts with the
	// provider and a slash. substr rather than a range or LIKE: both
	// databases compare it byte for byte (a PostgreSQL collation may
	// order '/' apart, and SQLite's LIKE ignores case).
	if f.Provider != "" {
		p, err := ident.ParseSubsystem(f.Provider)
		if err != nil || len(f.Provider) > maxValue {
			return "", nil, badFilter("provider: not a subsystem")
		}
		prefix := p.String() + "/"
		add("substr(service, 1, ?) = ?", int64(utf8.RuneCountInString(prefix)), prefix)
	}
	if f.Party != "" {
		p, err := ident.ParseClient(f.Party)
		if err != nil || len(f.Party) > maxValue {
			return "", nil, badFilter("party: not a member or subsystem")
		}
		if p.IsSubsystem() {
			prefix := p.String() + "/"
			add("(client = ? OR substr(service, 1, ?) = ?)", p.String(), int64(utf8.RuneCountInString(prefix)), prefix)
		} else {
			add("client = ?", p.String())
		}
	}
	switch f.Side {
	case "":
	case "consumer", "provider":
		add("side = ?", f.Side)
	default:
		return "", nil, badFilter("side %q is neither consumer nor provider", f.Side)
	}
	if f.Status != 0 {
		if f.Status < 100 || f.Status > 599 {
			return "", nil, badFilter("status %d is not an HTTP status", f.Status)
		}
		add("status = ?", int64(f.Status))
		if f.Status >= 400 {
			add("status >= 400") // the condition of opmon_records_status
		}
	}
	if f.Succeeded != nil {
		add("succeeded = ?", *f.Succeeded)
	}
	if f.After != "" {
		c, err := parseCursor(f.After)
		if err != nil {
			return "", nil, err
		}
		add("(request_in_at > ? OR (request_in_at = ? AND id > ?))", c.at, c.at, c.id)
	}
	q := "SELECT id, " + columns + " FROM opmon_records"
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY request_in_at, id LIMIT ?"
	args = append(args, f.Limit+1)
	return q, args, nil
}

// Query returns a page of the records f selects, in (request-in time, id)
// order; following Next pages through them all with neither duplicates nor
// gaps. A filter Query refuses gives an error wrapping ErrBadFilter.
func (s *Store) Query(ctx context.Context, f Filter) (Page, error) {
	if f.Limit == 0 {
		f.Limit = DefaultLimit
	}
	q, args, err := query(f)
	if err != nil {
		return Page{}, err
	}
	rows, err := s.db.QueryContext(ctx, s.db.Q(q), args...)
	if err != nil {
		return Page{}, fmt.Errorf("query monitoring records: %w", err)
	}
	defer rows.Close()
	var p Page
	p.Records = make([]Record, 0, min(f.Limit, 64))
	for rows.Next() {
		var r Record
		var in, status int64
		var detail []byte
		if err := rows.Scan(&r.ID, &in, &r.Side, &r.Client, &r.Service, &status, &r.Succeeded, &r.ErrorType, &detail); err != nil {
			return Page{}, fmt.Errorf("query monitoring records: %w", err)
		}
		r.RequestInAt, r.Status = fromMicros(in), int(status)
		if err := readDetail(&r, detail, in); err != nil {
			return Page{}, fmt.Errorf("query monitoring records: record %d: %w", r.ID, err)
		}
		p.Records = append(p.Records, r)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("query monitoring records: %w", err)
	}
	if len(p.Records) > f.Limit {
		p.Records = p.Records[:f.Limit]
		last := p.Records[f.Limit-1]
		p.Next = cursor{at: micros(last.RequestInAt), id: last.ID}.String()
	}
	return p, nil
}
