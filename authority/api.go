package authority

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
)

// maxAPIBody bounds a management API request body.
const maxAPIBody = 1 << 20

// Handler returns the authority's HTTP handler: the public endpoints
// (configuration, CA certificate, CRL, health) and the management API under
// /api/v1/, which requires an operator's bearer token.
func (a *Authority) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /conf", a.serveConf)
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write([]byte(a.Current().CACerts[0]))
	})
	mux.HandleFunc("GET /crl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(*a.crl.Load())
	})
	mux.HandleFunc("POST /ocsp", a.serveOCSP)
	mux.HandleFunc("POST /tsa", a.serveTSA)
	mux.HandleFunc("GET /tsa.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write(pki.EncodeCert(a.tsa.cert.Raw))
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "serial": a.current.Load().serial})
	})
	mux.HandleFunc("GET /api/v1/configuration", a.op(RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		writeJSON(w, http.StatusOK, a.Current())
		return nil
	}))
	mux.HandleFunc("GET /api/v1/operators", a.op(RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		writeJSON(w, http.StatusOK, a.Operators())
		return nil
	}))
	mux.HandleFunc("POST /api/v1/operators/{name}/revoke", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RevokeOperator(r.Context(), op, r.PathValue("name")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("name")})
		return nil
	}))
	mux.HandleFunc("POST /api/v1/members", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in MemberInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.AddMember(r.Context(), op, in), in)
	}))
	mux.HandleFunc("POST /api/v1/subsystems", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in SubsystemInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.AddSubsystem(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/subsystems", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in SubsystemInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutSubsystem(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/gateways", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in GatewayInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutGateway(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/groups", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in GroupInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutGroup(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/federation", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in FederationInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutFederation(r.Context(), op, in), map[string]string{"federated": in.Anchor.Instance})
	}))
	mux.HandleFunc("DELETE /api/v1/federation/{instance}", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RemoveFederation(r.Context(), op, r.PathValue("instance")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("instance")})
		return nil
	}))
	mux.HandleFunc("GET /api/v1/policy", a.op(RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		c := a.current.Load().cfg
		writeJSON(w, http.StatusOK, PolicyView{Document: c.Policy, Cedar: c.PolicyEngine().Text(), Version: c.PolicyEngine().Version()})
		return nil
	}))
	mux.HandleFunc("PUT /api/v1/policy/services", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.ServiceClass
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutServiceClass(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/policy/agreements", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.Agreement
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutAgreement(r.Context(), op, in), in)
	}))
	mux.HandleFunc("POST /api/v1/policy/agreements/{id}/status", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in StatusInput
		if err := decode(r, &in); err != nil {
			return err
		}
		if err := a.SetAgreementStatus(r.Context(), op, r.PathValue("id"), in); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"agreement": r.PathValue("id"), "status": in.Status})
		return nil
	}))
	mux.HandleFunc("PUT /api/v1/policy/rules", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in []policy.Rule
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutRules(r.Context(), op, in), in)
	}))
	mux.HandleFunc("PUT /api/v1/policy/suspensions", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.Suspension
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutSuspension(r.Context(), op, in), in)
	}))
	mux.HandleFunc("DELETE /api/v1/policy/suspensions/{id}", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RemoveSuspension(r.Context(), op, r.PathValue("id")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"resumed": r.PathValue("id")})
		return nil
	}))
	mux.HandleFunc("POST /api/v1/certificates", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in IssueInput
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := a.Issue(r.Context(), op, in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, out)
		return nil
	}))
	mux.HandleFunc("POST /api/v1/certificates/{serial}/revoke", a.op(RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.Revoke(r.Context(), op, r.PathValue("serial")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("serial")})
		return nil
	}))
	return ocspGET(mux, a.serveOCSP)
}

func (a *Authority) serveConf(w http.ResponseWriter, r *http.Request) {
	p := a.current.Load()
	w.Header().Set("ETag", p.etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == p.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/jose")
	w.Write(p.doc)
}

// apiError is the management API's error body.
type apiError struct {
	Error string `json:"error"`
}

// op wraps a management handler with operator authentication and error
// rendering. An auditor may only read; an admin may do everything.
func (a *Authority) op(need string, h func(http.ResponseWriter, *http.Request, string) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, now := clientKey(r), time.Now()
		if d := a.authThrottle.blocked(key, now); d > 0 {
			a.log.Debug("management API call throttled", "client", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("Retry-After", retryAfter(d))
			writeJSON(w, http.StatusTooManyRequests, apiError{"too many failed calls from this address; retry later"})
			return
		}
		o, why := a.authenticate(r)
		if why != "" {
			a.authThrottle.add(key, now)
			name := ""
			if o != nil {
				name = o.Name
			}
			a.refused(r, name, http.StatusUnauthorized, why)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sampan-authority"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"missing, unknown, expired or revoked operator token"})
			return
		}
		name := o.Name
		if need == RoleAdmin && o.Role != RoleAdmin {
			a.refused(r, name, http.StatusForbidden, "role "+o.Role)
			writeJSON(w, http.StatusForbidden, apiError{fmt.Sprintf("operator %s (role %s) may not do this", name, o.Role)})
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
		if err := h(w, r, name); err != nil {
			status := http.StatusInternalServerError
			msg := "internal error"
			switch {
			case errors.Is(err, errInvalid):
				status, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), errInvalid.Error()+": ")
			case errors.Is(err, errConflict):
				status, msg = http.StatusConflict, strings.TrimPrefix(err.Error(), errConflict.Error()+": ")
			case errors.Is(err, errTooLarge):
				status, msg = http.StatusRequestEntityTooLarge, strings.TrimPrefix(err.Error(), errTooLarge.Error()+": ")
			case errors.Is(err, errNotFound):
				status, msg = http.StatusNotFound, strings.TrimPrefix(err.Error(), errNotFound.Error()+": ")
			default:
				a.log.Error("management API", "path", r.URL.Path, "operator", name, "err", err)
			}
			writeJSON(w, status, apiError{msg})
		}
	}
}

func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%w: request body: %w", errInvalid, err)
	}
	if err := cfg.Decode(b, v); err != nil {
		return fmt.Errorf("%w: request body: %w", errInvalid, err)
	}
	return nil
}

func created(w http.ResponseWriter, err error, v any) error {
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, v)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
