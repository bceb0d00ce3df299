package authority

import (
	"context"
	"crypto/x509"
	"database/sql"
	"encoding/asn1"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// oidCommonName is the only subject attribute a CSR may carry.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// checkCSRNames refuses a CSR that names anything but its subject: the
// common name, when given, must be the subject's identifier; no other
// subject attribute, no e-mail address, no URI but the subject's own;
// DNS names and IP addresses only for an authentication certificate
// (certHosts then checks them against the registration).
func checkCSRNames(csr *x509.CertificateRequest, id, uri string, hosts bool) error {
	for _, at := range csr.Subject.Names {
		if !at.Type.Equal(oidCommonName) {
			return fmt.Errorf("%w: csr: subject attribute %s is not allowed; the subject is the common name %s alone", errInvalid, at.Type, id)
		}
	}
	if cn := csr.Subject.CommonName; cn != "" && cn != id {
		return fmt.Errorf("%w: csr: common name %q is not the subject %s", errInvalid, cn, id)
	}
	if len(csr.EmailAddresses) > 0 {
		return fmt.Errorf("%w: csr: e-mail addresses are not allowed", errInvalid)
	}
	for _, u := range csr.URIs {
		if u.String() != uri {
			return fmt.Errorf("%w: csr: URI %q does not name %s", errInvalid, u, id)
		}
	}
	if !hosts && (len(csr.DNSNames) > 0 || len(csr.IPAddresses) > 0) {
		return fmt.Errorf("%w: csr: a signing certificate names no hosts", errInvalid)
	}
	return nil
}

// certHosts returns the DNS names and IP addresses of a gateway's
// authentication certificate: those the CSR and the request's hosts ask
// for, each of which must be the host of the gateway's registered
// address; that host when none is asked for.
func certHosts(csr *x509.CertificateRequest, hosts []string, addr string) ([]string, []net.IP, error) {
	regHost, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("registered address %q: %w", addr, err)
	}
	regIP := net.ParseIP(regHost)
	asked := slices.Clone(hosts)
	asked = append(asked, csr.DNSNames...)
	for _, ip := range csr.IPAddresses {
		asked = append(asked, ip.String())
	}
	if len(asked) == 0 {
		asked = []string{regHost}
	}
	var dns []string
	var ips []net.IP
	for _, h := range asked {
		if ip := net.ParseIP(h); ip != nil {
			if regIP == nil || !ip.Equal(regIP) {
				return nil, nil, fmt.Errorf("%w: hosts: %s is not the registered host of the gateway (%s)", errInvalid, h, regHost)
			}
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		if err := ident.ValidatePart("host", h); err != nil {
			return nil, nil, fmt.Errorf("%w: hosts: %q is not a host name or IP address", errInvalid, h)
		}
		if regIP != nil || !strings.EqualFold(h, regHost) {
			return nil, nil, fmt.Errorf("%w: hosts: %s is not the registered host of the gateway (%s)", errInvalid, h, regHost)
		}
		if !slices.Contains(dns, strings.ToLower(h)) {
			dns = append(dns, strings.ToLower(h))
		}
	}
	return dns, ips, nil
}

// checkKeyUnused refuses a key already certified to another subject or
// for another profile: one key is one gateway's, or one member's
// signing key, never two.
func checkKeyUnused(ctx context.Context, tx *sql.Tx, keyFP, profile, subject string) error {
	var p, s string
	err := tx.QueryRowContext(ctx, `SELECT profile, subject FROM certificates WHERE key_fp = ? AND (profile <> ? OR subject <> ?) LIMIT 1`, keyFP, profile, subject).Scan(&p, &s)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return err
	}
	return fmt.Errorf("%w: csr: this key is already certified (%s) to %s; use a new key", errConflict, p, s)
}

// fillKeyFingerprints records the key fingerprint of certificates issued
// before fingerprints were kept.
func (a *Authority) fillKeyFingerprints(ctx context.Context) error {
	rows, err := a.db.QueryContext(ctx, `SELECT serial, pem FROM certificates WHERE key_fp IS NULL`)
	if err != nil {
		return fmt.Errorf("read issued certificates: %w", err)
	}
	fps := map[string]string{}
	for rows.Next() {
		var serial, pemText string
		if err := rows.Scan(&serial, &pemText); err != nil {
			rows.Close()
			return fmt.Errorf("read issued certificates: %w", err)
		}
		c, err := pki.ParseCertPEM([]byte(pemText))
		if err != nil {
			rows.Close()
			return fmt.Errorf("issued certificate %s: %w", serial, err)
		}
		fps[serial] = pki.KeyFingerprint(c.RawSubjectPublicKeyInfo)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read issued certificates: %w", err)
	}
	for serial, fp := range fps {
		if _, err := a.db.ExecContext(ctx, `UPDATE certificates SET key_fp = ? WHERE serial = ?`, fp, serial); err != nil {
			return fmt.Errorf("record key fingerprint: %w", err)
		}
	}
	return nil
}

// checkAuthCert checks that fp, when given, is the fingerprint of an
// unrevoked authentication certificate this authority issued to gateway
// id. A gateway is registered without one before its certificate is
// issued (the certificate names only what the registration holds).
func checkAuthCert(ctx context.Context, tx *sql.Tx, fp string, id ident.GatewayID) error {
	if fp == "" {
		return nil
	}
	var subj, profile string
	var revoked sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT subject, profile, revoked_at FROM certificates WHERE fingerprint = ?`, fp).Scan(&subj, &profile, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%w: auth_cert_sha256: no certificate with this fingerprint was issued by this authority", errInvalid)
	}
	if err != nil {
		return err
	}
	if profile != "auth" || subj != id.String() || revoked.Valid {
		return fmt.Errorf("%w: auth_cert_sha256: the certificate is not a valid authentication certificate of %s", errInvalid, id)
	}
	return nil
}

// pkiMigration lets a gateway be registered before its authentication
// certificate is issued (gateways.auth_fp may be NULL: SQLite cannot drop
// a NOT NULL, so the table is rebuilt, its clients' table with it, as a
// foreign key would otherwise empty it), and keeps the fingerprint of
// every certified key.
const pkiMigration = `CREATE TABLE gateways_v2 (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL REFERENCES members(id),
		address TEXT NOT NULL,
		auth_fp TEXT UNIQUE,
		updated_at TEXT NOT NULL
	);
	INSERT INTO gateways_v2 (id, owner_id, address, auth_fp, updated_at) SELECT id, owner_id, address, auth_fp, updated_at FROM gateways;
	CREATE TABLE gateway_clients_v2 (
		gateway_id TEXT NOT NULL REFERENCES gateways_v2(id) ON DELETE CASCADE,
		subsystem_id TEXT NOT NULL REFERENCES subsystems(id),
		PRIMARY KEY (gateway_id, subsystem_id)
	);
	INSERT INTO gateway_clients_v2 (gateway_id, subsystem_id) SELECT gateway_id, subsystem_id FROM gateway_clients;
	DROP TABLE gateway_clients;
	DROP TABLE gateways;
	ALTER TABLE gateways_v2 RENAME TO gateways;
	ALTER TABLE gateway_clients_v2 RENAME TO gateway_clients;
	ALTER TABLE certificates ADD COLUMN key_fp TEXT;
	CREATE INDEX certificates_key_fp ON certificates (key_fp);`

// pkiRollback undoes pkiMigration. A gateway registered without an
// authentication certificate cannot go back to a table that requires one:
// the rollback then fails on the NOT NULL and changes nothing.
const pkiRollback = `DROP INDEX certificates_key_fp;
	ALTER TABLE certificates DROP COLUMN key_fp;
	CREATE TABLE gateways_v1 (
		id TEXT PRIMARY KEY,
		owner_id TEXT NOT NULL REFERENCES members(id),
		address TEXT NOT NULL,
		auth_fp TEXT NOT NULL UNIQUE,
		updated_at TEXT NOT NULL
	);
	INSERT INTO gateways_v1 (id, owner_id, address, auth_fp, updated_at) SELECT id, owner_id, address, auth_fp, updated_at FROM gateways;
	CREATE TABLE gateway_clients_v1 (
		gateway_id TEXT NOT NULL REFERENCES gateways_v1(id) ON DELETE CASCADE,
		subsystem_id TEXT NOT NULL REFERENCES subsystems(id),
		PRIMARY KEY (gateway_id, subsystem_id)
	);
	INSERT INTO gateway_clients_v1 (gateway_id, subsystem_id) SELECT gateway_id, subsystem_id FROM gateway_clients;
	DROP TABLE gateway_clients;
	DROP TABLE gateways;
	ALTER TABLE gateways_v1 RENAME TO gateways;
	ALTER TABLE gateway_clients_v1 RENAME TO gateway_clients;`
