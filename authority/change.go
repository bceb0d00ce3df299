package authority

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/pki"
)

// Every write to the registry runs in one transaction under the
// authority's write lock, so that writers never meet SQLite's busy state
// and the published configuration follows the commits in order. A change
// and the configuration it produces commit together: the next document is
// built, validated, signed and measured inside the change's transaction,
// so a change that would make a document gateways refuse (invalid, or
// larger than conf.MaxDocumentSize) is refused and changes nothing, and a
// change that committed has been published.

// commit applies f, records the change in the audit log (when op is set)
// and publishes the resulting configuration, all or nothing. The error is
// about the change; a failure to refresh the CRL after the commit is
// logged, returned apart as crlErr, and retried at the next publication.
func (a *Authority) commit(ctx context.Context, op, action, detail string, f func(tx *sql.Tx) error) (crlErr error, err error) {
	var next *published
	var crlNum int64
	err = a.txLocked(ctx, func(tx *sql.Tx) error {
		if f != nil {
			if err := f(tx); err != nil {
				return err
			}
		}
		if op != "" {
			if err := a.audit(ctx, tx, op, action, detail); err != nil {
				return err
			}
		}
		var err error
		next, crlNum, err = a.prepare(ctx, tx)
		return err
	}, func() {
		a.current.Store(next)
		a.metrics.publications.Inc()
		if crlErr = a.publishCRL(context.WithoutCancel(ctx), crlNum); crlErr != nil {
			a.log.Error("publish CRL after a change; the next publication retries", "serial", next.serial, "err", crlErr)
		}
	})
	if err != nil {
		return nil, err
	}
	a.log.Debug("configuration published", "serial", next.serial, "expires_at", next.cfg.ExpiresAt)
	return crlErr, nil
}

// change is commit for the management API: what committed is reported
// as done.
func (a *Authority) change(ctx context.Context, op, action, detail string, f func(tx *sql.Tx) error) error {
	_, err := a.commit(ctx, op, action, detail, f)
	return err
}

// prepare builds, validates and signs the configuration the registry in
// tx describes, with the next serial and CRL number.
func (a *Authority) prepare(ctx context.Context, tx *sql.Tx) (*published, int64, error) {
	var serial uint64
	var crlNum int64
	if err := tx.QueryRowContext(ctx, `SELECT serial, crl_number FROM conf_state WHERE id = 1`).Scan(&serial, &crlNum); err != nil {
		return nil, 0, err
	}
	c, err := a.snapshot(ctx, tx)
	if err != nil {
		return nil, 0, err
	}
	at := time.Now().UTC().Truncate(time.Millisecond)
	serial = nextSerial(serial, at)
	crlNum++
	c.Serial = serial
	c.GeneratedAt = at
	c.ExpiresAt = c.GeneratedAt.Add(a.config().ConfValidity.D())
	c.CACerts = nil
	for _, ca := range a.cas.Load().listed() {
		c.CACerts = append(c.CACerts, string(pki.EncodeCert(ca.Cert.Raw)))
	}
	c.TSACerts = []string{string(pki.EncodeCert(a.tsa.cert.Raw))}
	c.TSAURL = strings.TrimSuffix(a.cfg.PublicURL, "/") + "/tsa"
	c.NextKeys = a.announcedConfKeys()
	if err := c.Validate(); err != nil {
		return nil, 0, fmt.Errorf("%w: the configuration would not be valid: %w", errInvalid, err)
	}
	doc, err := conf.Sign(c, a.signer)
	if err != nil {
		return nil, 0, err
	}
	if max := a.maxConfSize(); len(doc) > max {
		return nil, 0, fmt.Errorf("%w: the signed configuration would be %d bytes, more than the %d gateways accept", errTooLarge, len(doc), max)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE conf_state SET serial = ?, crl_number = ? WHERE id = 1`, serial, crlNum); err != nil {
		return nil, 0, err
	}
	return &published{doc: doc, serial: serial, etag: fmt.Sprintf(`"%d"`, serial), cfg: c}, crlNum, nil
}

// nextSerial is the serial of a configuration generated at t after one
// with serial prev: the time in milliseconds since 1970, or prev+1 when
// that is not above prev. Serials so follow the clock, and an authority
// restored from a backup continues above every serial it published while
// its clock was sane, even though the backup holds an older serial
// (docs/design/backup.md).
func nextSerial(prev uint64, t time.Time) uint64 {
	if ms := t.UnixMilli(); ms > 0 && uint64(ms) > prev {
		return uint64(ms)
	}
	return prev + 1
}

// maxConfSize is the largest signed configuration the authority
// publishes: what gateways accept, unless a test set it lower.
func (a *Authority) maxConfSize() int {
	if a.cfg.maxConfSize > 0 {
		return a.cfg.maxConfSize
	}
	return conf.MaxDocumentSize
}

// txLocked runs f in a transaction under the write lock and, once the
// transaction committed, after (when set) still under the lock.
func (a *Authority) txLocked(ctx context.Context, f func(tx *sql.Tx) error, after func()) error {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	tx, err := a.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if after != nil {
		after()
	}
	return nil
}

// inTx runs f in a transaction under the write lock.
func (a *Authority) inTx(ctx context.Context, f func(tx *sql.Tx) error) error {
	return a.txLocked(ctx, f, nil)
}
