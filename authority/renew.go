package authority

import (
	"context"
	"crypto/x509"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// Renewal of a gateway's certificates in place (docs/design/pki.md,
// "Renewal"): the authority issues new authentication and signing
// certificates against what the registry holds of the gateway — its
// identifier, the host of its registered address, the members it signs
// for — and publishes the new authentication certificate as the
// gateway's next one, which peers accept beside the current one until
// the renewal completes.

// renewMigration keeps the next authentication certificate of a gateway
// whose renewal is under way.
const renewMigration = `ALTER TABLE gateways ADD COLUMN next_auth_fp TEXT;
	CREATE UNIQUE INDEX gateways_next_auth_fp ON gateways (next_auth_fp);`

// maxRenewSignCSRs bounds the signing certificates one renewal asks for.
const maxRenewSignCSRs = 64

// RenewInput asks for new certificates of a registered gateway, each
// from a CSR of a new key. Subjects, hosts and members come from the
// registry; a CSR may only name what the registry holds.
type RenewInput struct {
	// AuthCSR is the CSR of the gateway's next authentication key.
	AuthCSR string `json:"auth_csr,omitempty"`
	// SignCSRs maps a member the gateway signs for (its owner, or the
	// member of a subsystem it serves) to the CSR of its next signing
	// key.
	SignCSRs map[string]string `json:"sign_csrs,omitempty"`
}

// RenewOutput is what a renewal issued.
type RenewOutput struct {
	Gateway string                 `json:"gateway"`
	Auth    *IssuedCert            `json:"auth,omitempty"`
	Sign    map[string]*IssuedCert `json:"sign,omitempty"`
}

// CompleteInput ends a renewal.
type CompleteInput struct {
	// RevokeOld revokes the authentication certificate the renewal
	// replaced.
	RevokeOld bool `json:"revoke_old,omitempty"`
}

// CompleteOutput says what completing a renewal changed.
type CompleteOutput struct {
	Gateway string `json:"gateway"`
	AuthFP  string `json:"auth_cert_sha256"`
	// Revoked is the serial of the replaced certificate, when revoked.
	Revoked string `json:"revoked,omitempty"`
}

// parseGatewayPath reads a gateway identifier from a request path.
func (a *Authority) parseGatewayPath(s string) (ident.GatewayID, error) {
	gid, err := ident.ParseGateway(s)
	if err != nil {
		return gid, fmt.Errorf("%w: gateway: %w", errInvalid, err)
	}
	if err := gid.ValidateCanonical(); err != nil {
		return gid, fmt.Errorf("%w: gateway: %w", errInvalid, err)
	}
	if gid.Instance != a.cfg.Instance {
		return gid, fmt.Errorf("%w: gateway: %s is not a gateway of %s", errInvalid, gid, a.cfg.Instance)
	}
	return gid, nil
}

// renewCSR is one certificate a renewal asks for, checked against the
// registry.
type renewCSR struct {
	profile string
	subject string
	csr     *x509.CertificateRequest
	t       pki.Template
	p       pki.Profile
}

// Renew issues new certificates to a registered gateway that holds an
// authentication certificate: an authentication certificate for the
// gateway's identifier and the host of its registered address, and
// signing certificates for members it signs for. The new authentication
// certificate becomes the gateway's next one (conf.Gateway.NextAuthFP):
// peers accept it beside the current one until CompleteRenewal. Each
// CSR must be of a key never certified before. All or nothing, audited.
func (a *Authority) Renew(ctx context.Context, op, gateway string, in RenewInput) (*RenewOutput, error) {
	out, err := a.renew(ctx, op, gateway, in)
	if in.AuthCSR != "" {
		a.metrics.certIssued("auth", err)
	}
	if len(in.SignCSRs) > 0 {
		a.metrics.certIssued("sign", err)
	}
	return out, err
}

func (a *Authority) renew(ctx context.Context, op, gateway string, in RenewInput) (*RenewOutput, error) {
	gid, err := a.parseGatewayPath(gateway)
	if err != nil {
		return nil, err
	}
	if in.AuthCSR == "" && len(in.SignCSRs) == 0 {
		return nil, fmt.Errorf("%w: auth_csr, sign_csrs: give at least one CSR", errInvalid)
	}
	if len(in.SignCSRs) > maxRenewSignCSRs {
		return nil, fmt.Errorf("%w: sign_csrs: more than %d", errInvalid, maxRenewSignCSRs)
	}
	validity := a.config().CertValidity.D()
	var reqs []renewCSR
	if in.AuthCSR != "" {
		csr, err := pki.ParseCSR([]byte(in.AuthCSR))
		if err != nil {
			return nil, fmt.Errorf("%w: auth_csr: %w", errInvalid, err)
		}
		r := renewCSR{profile: "auth", subject: gid.String(), csr: csr, p: pki.ProfileAuth,
			t: pki.Template{Validity: validity, CommonName: gid.String(), URIs: []string{pki.GatewayURI(gid.String())}}}
		if err := checkCSRNames(csr, r.subject, r.t.URIs[0], true); err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	members := make([]string, 0, len(in.SignCSRs))
	for m := range in.SignCSRs {
		members = append(members, m)
	}
	sort.Strings(members)
	for _, m := range members {
		mid, err := ident.ParseMember(m)
		if err != nil {
			return nil, fmt.Errorf("%w: sign_csrs[%q]: %w", errInvalid, m, err)
		}
		csr, err := pki.ParseCSR([]byte(in.SignCSRs[m]))
		if err != nil {
			return nil, fmt.Errorf("%w: sign_csrs[%q]: %w", errInvalid, m, err)
		}
		r := renewCSR{profile: "sign", subject: mid.String(), csr: csr, p: pki.ProfileSign,
			t: pki.Template{Validity: validity, CommonName: mid.String(), URIs: []string{pki.MemberURI(mid.String())}}}
		if err := checkCSRNames(csr, r.subject, r.t.URIs[0], false); err != nil {
			return nil, err
		}
		reqs = append(reqs, r)
	}
	out := &RenewOutput{Gateway: gid.String()}
	var serials []string
	err = a.change(ctx, op, "renew gateway certificates", gid.String(), func(tx *sql.Tx) error {
		var addr string
		var authFP, nextFP sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT address, auth_fp, next_auth_fp FROM gateways WHERE id = ?`, gid.String()).Scan(&addr, &authFP, &nextFP)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: gateway %s is not registered", errNotFound, gid)
		}
		if err != nil {
			return err
		}
		if !authFP.Valid {
			return fmt.Errorf("%w: gateway %s holds no authentication certificate yet: issue its first one (POST /api/v1/certificates)", errConflict, gid)
		}
		if nextFP.Valid && in.AuthCSR != "" {
			if serial, revoked, err := certByFP(ctx, tx, nextFP.String); err != nil {
				return err
			} else if !revoked {
				return fmt.Errorf("%w: a renewal of %s is under way (next authentication certificate %s): complete it (POST /api/v1/gateways/{id}/renew/complete) or revoke that certificate first", errConflict, gid, serial)
			}
		}
		signs, err := signsFor(ctx, tx, gid)
		if err != nil {
			return err
		}
		for i := range reqs {
			r := &reqs[i]
			if r.p == pki.ProfileAuth {
				if r.t.DNSNames, r.t.IPs, err = certHosts(r.csr, nil, addr); err != nil {
					return err
				}
			} else if !slices.Contains(signs, r.subject) {
				return fmt.Errorf("%w: sign_csrs[%q]: gateway %s signs for %s only", errInvalid, r.subject, gid, strings.Join(signs, ", "))
			}
			keyFP := pki.KeyFingerprint(r.csr.RawSubjectPublicKeyInfo)
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM certificates WHERE key_fp = ?`, keyFP).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return fmt.Errorf("%w: %s csr of %s: this key is already certified; a renewal needs a new key", errInvalid, r.profile, r.subject)
			}
			cert, err := a.issuingCA().Issue(r.csr.PublicKey, r.p, r.t)
			if err != nil {
				return err
			}
			ic := &IssuedCert{
				Certificate: string(pki.EncodeCert(cert.Raw)),
				Serial:      fmt.Sprintf("%x", cert.SerialNumber),
				SHA256:      pki.Fingerprint(cert.Raw),
				NotAfter:    cert.NotAfter.UTC().Format(time.RFC3339),
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO certificates (serial, profile, subject, fingerprint, not_after, pem, key_fp) VALUES (?, ?, ?, ?, ?, ?, ?)`,
				ic.Serial, r.profile, r.subject, ic.SHA256, ic.NotAfter, ic.Certificate, keyFP); err != nil {
				return err
			}
			if err := a.audit(ctx, tx, op, "issue "+r.profile+" certificate", r.subject+" "+ic.Serial+" (renewal of "+gid.String()+")"); err != nil {
				return err
			}
			serials = append(serials, ic.Serial)
			if r.p == pki.ProfileAuth {
				out.Auth = ic
				if _, err := tx.ExecContext(ctx, `UPDATE gateways SET next_auth_fp = ?, updated_at = ? WHERE id = ?`, ic.SHA256, now(), gid.String()); err != nil {
					return err
				}
			} else {
				if out.Sign == nil {
					out.Sign = map[string]*IssuedCert{}
				}
				out.Sign[r.subject] = ic
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("gateway certificates renewed", "operator", op, "gateway", gid.String(), "serials", strings.Join(serials, ","))
	return out, nil
}

// certByFP returns the serial of the certificate with fingerprint fp
// and whether it is revoked.
func certByFP(ctx context.Context, tx *sql.Tx, fp string) (string, bool, error) {
	var serial string
	var revoked sql.NullString
	err := tx.QueryRowContext(ctx, `SELECT serial, revoked_at FROM certificates WHERE fingerprint = ?`, fp).Scan(&serial, &revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return "", true, nil
	}
	return serial, revoked.Valid, err
}

// signsFor lists the members a gateway signs for: its owner and the
// members of the subsystems it serves, sorted.
func signsFor(ctx context.Context, tx *sql.Tx, gid ident.GatewayID) ([]string, error) {
	out := []string{gid.Owner().String()}
	rows, err := tx.QueryContext(ctx, `SELECT DISTINCT s.member_id FROM gateway_clients c JOIN subsystems s ON s.id = c.subsystem_id WHERE c.gateway_id = ?`, gid.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			return nil, err
		}
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	sort.Strings(out)
	return out, rows.Err()
}

// CompleteRenewal ends a gateway's renewal once the gateway uses its new
// authentication certificate: the next certificate becomes the
// registered one and the replaced one is no longer accepted by peers
// (revoked too, when asked). Audited.
func (a *Authority) CompleteRenewal(ctx context.Context, op, gateway string, in CompleteInput) (*CompleteOutput, error) {
	gid, err := a.parseGatewayPath(gateway)
	if err != nil {
		return nil, err
	}
	out := &CompleteOutput{Gateway: gid.String()}
	err = a.change(ctx, op, "complete gateway renewal", gid.String(), func(tx *sql.Tx) error {
		var old, next sql.NullString
		err := tx.QueryRowContext(ctx, `SELECT auth_fp, next_auth_fp FROM gateways WHERE id = ?`, gid.String()).Scan(&old, &next)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: gateway %s is not registered", errNotFound, gid)
		}
		if err != nil {
			return err
		}
		if !next.Valid {
			return fmt.Errorf("%w: no renewal of %s is under way", errConflict, gid)
		}
		if _, revoked, err := certByFP(ctx, tx, next.String); err != nil {
			return err
		} else if revoked {
			return fmt.Errorf("%w: the next authentication certificate of %s is revoked: renew again", errConflict, gid)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE gateways SET auth_fp = next_auth_fp, next_auth_fp = NULL, updated_at = ? WHERE id = ?`, now(), gid.String()); err != nil {
			return err
		}
		out.AuthFP = next.String
		if in.RevokeOld && old.Valid {
			var serial string
			err := tx.QueryRowContext(ctx, `SELECT serial FROM certificates WHERE fingerprint = ? AND revoked_at IS NULL`, old.String).Scan(&serial)
			if err != nil && !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			if serial != "" {
				if _, err := tx.ExecContext(ctx, `UPDATE certificates SET revoked_at = ? WHERE serial = ?`, now(), serial); err != nil {
					return err
				}
				if err := a.audit(ctx, tx, op, "revoke certificate", serial+" (replaced by the renewal of "+gid.String()+")"); err != nil {
					return err
				}
				out.Revoked = serial
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	a.log.Info("gateway renewal completed", "operator", op, "gateway", gid.String(), "auth_cert_sha256", out.AuthFP, "revoked", out.Revoked)
	return out, nil
}

// renewRoutes adds the renewal calls to the management API.
func (a *Authority) renewRoutes(manage func(pattern, call, role string, h func(http.ResponseWriter, *http.Request, string) error)) {
	manage("POST /api/v1/gateways/{id}/renew", "renew_gateway", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in RenewInput
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := a.Renew(r.Context(), op, r.PathValue("id"), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, out)
		return nil
	})
	manage("POST /api/v1/gateways/{id}/renew/complete", "complete_gateway_renewal", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in CompleteInput
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := a.CompleteRenewal(r.Context(), op, r.PathValue("id"), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// gatewayPath is the API path of a gateway's resource: the identifier
// is one path segment.
func gatewayPath(id ident.GatewayID, rest string) string {
	return "/api/v1/gateways/" + url.PathEscape(id.String()) + rest
}

// RenewGateway asks for new certificates of a registered gateway.
func (c *Client) RenewGateway(ctx context.Context, id ident.GatewayID, in RenewInput) (*RenewOutput, error) {
	var out RenewOutput
	if err := c.do(ctx, http.MethodPost, gatewayPath(id, "/renew"), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// CompleteRenewal ends a gateway's renewal: its next authentication
// certificate becomes the registered one.
func (c *Client) CompleteRenewal(ctx context.Context, id ident.GatewayID, in CompleteInput) (*CompleteOutput, error) {
	var out CompleteOutput
	if err := c.do(ctx, http.MethodPost, gatewayPath(id, "/renew/complete"), in, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
