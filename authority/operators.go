package authority

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Failed calls: an address that sent this many calls with a missing,
// unknown, expired or revoked token within the window is answered 429
// until the window ends.
const (
	defaultAuthFailures = 10
	defaultAuthWindow   = time.Minute
)

// loadOperators reads the revoked tokens and sets up throttling.
func (a *Authority) loadOperators(ctx context.Context) error {
	n, w := a.cfg.authFailures, a.cfg.authWindow
	if n == 0 {
		n = defaultAuthFailures
	}
	if w == 0 {
		w = defaultAuthWindow
	}
	a.authThrottle = newThrottle(n, w)
	a.refuseThrottle = newThrottle(n, w)
	a.tsaThrottle = newThrottle(a.cfg.TSARate, time.Minute)
	a.revoked = map[string]bool{}
	rows, err := a.db.QueryContext(ctx, `SELECT token_sha256 FROM revoked_tokens`)
	if err != nil {
		return fmt.Errorf("read revoked operator tokens: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var h string
		if err := rows.Scan(&h); err != nil {
			return fmt.Errorf("read revoked operator tokens: %w", err)
		}
		a.revoked[h] = true
	}
	return rows.Err()
}

// authenticate finds the operator whose token the request carries. why
// says, for the logs only, why a call is not authenticated; o is set when
// the token is known but expired or revoked. Every operator's hash is
// compared, in constant time, whatever matched before.
func (a *Authority) authenticate(r *http.Request) (o *Operator, why string) {
	tok, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !found || tok == "" {
		return nil, "no bearer token"
	}
	h := []byte(HashToken(tok))
	ops := a.config().Operators
	for i := range ops {
		if subtle.ConstantTimeCompare(h, []byte(ops[i].TokenSHA256)) == 1 {
			o = &ops[i]
		}
	}
	switch {
	case o == nil:
		return nil, "unknown token"
	case a.isRevoked(o.TokenSHA256):
		return o, "revoked token"
	case o.ExpiresAt != nil && !time.Now().Before(*o.ExpiresAt):
		return o, "expired token"
	}
	return o, ""
}

func (a *Authority) isRevoked(tokenSHA256 string) bool {
	a.revokedMu.RLock()
	defer a.revokedMu.RUnlock()
	return a.revoked[tokenSHA256]
}

// unauthenticated records a management call without a valid token in
// the process log and the metrics; never in the audit log, which a
// caller without a token must not be able to fill. Neither the token nor
// its hash is written.
func (a *Authority) unauthenticated(r *http.Request, operator, why string) {
	a.log.Warn("management API call refused", "status", http.StatusUnauthorized, "why", why, "operator", operator,
		"client", r.RemoteAddr, "method", r.Method, "path", logPath(r))
	a.metrics.unauthenticated.WithLabelValues(strings.ReplaceAll(why, " ", "_")).Inc()
}

// refused records a management call refused to an authenticated
// operator in the process log and, in a transaction of its own once the
// refused change rolled back, in the audit log with the outcome
// "refused: <reason>" (a 5xx: "failed: <reason>").
func (a *Authority) refused(r *http.Request, operator, call string, status int, reason string) {
	path := logPath(r)
	a.log.Warn("management API call refused", "status", status, "why", reason, "operator", operator,
		"client", r.RemoteAddr, "method", r.Method, "path", path)
	outcome := "refused: " + reason
	if status >= 500 {
		outcome = "failed: " + reason
	}
	ctx := context.WithoutCancel(r.Context())
	err := a.inTx(ctx, func(tx *sql.Tx) error {
		return a.auditOutcome(ctx, tx, operator, strings.ReplaceAll(call, "_", " "), fmt.Sprintf("%s %s from %s", r.Method, path, r.RemoteAddr), outcome)
	})
	if err != nil {
		a.log.Error("audit a refused call", "err", err)
	}
}

// logPath is a request's path, cut to a length fit for a log.
func logPath(r *http.Request) string {
	path := r.URL.Path
	if len(path) > 200 {
		path = path[:200] + "…"
	}
	return path
}

// OperatorView is what GET /api/v1/operators shows of an operator.
type OperatorView struct {
	Name      string     `json:"name"`
	Role      string     `json:"role"`
	ExpiresAt *time.Time `json:"expires_at,omitempty"`
	Revoked   bool       `json:"revoked"`
}

// Operators lists the operators, with their tokens' state.
func (a *Authority) Operators() []OperatorView {
	ops := a.config().Operators
	out := make([]OperatorView, len(ops))
	for i, o := range ops {
		out[i] = OperatorView{Name: o.Name, Role: o.Role, ExpiresAt: o.ExpiresAt, Revoked: a.isRevoked(o.TokenSHA256)}
	}
	return out
}

// RevokeOperator revokes the current token of the named operator, at
// once and for good: a new token needs a new token_sha256 in the
// configuration file, and a reload.
func (a *Authority) RevokeOperator(ctx context.Context, op, name string) error {
	var o *Operator
	ops := a.config().Operators
	for i := range ops {
		if ops[i].Name == name {
			o = &ops[i]
		}
	}
	if o == nil {
		return fmt.Errorf("%w: no operator %q", errNotFound, name)
	}
	err := a.inTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO revoked_tokens (token_sha256, operator, revoked_at) VALUES (?, ?, ?) ON CONFLICT (token_sha256) DO NOTHING`,
			o.TokenSHA256, o.Name, now()); err != nil {
			return err
		}
		return a.audit(ctx, tx, op, "revoke operator token", name)
	})
	if err != nil {
		return err
	}
	a.revokedMu.Lock()
	a.revoked[o.TokenSHA256] = true
	a.revokedMu.Unlock()
	return nil
}
