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
	// calls names the management operations by their pattern, for the
	// management_calls metric.
	calls := map[string]string{}
	manage := func(pattern, call, role string, h func(http.ResponseWriter, *http.Request, string) error) {
		calls[pattern] = call
		mux.HandleFunc(pattern, a.op(role, call, h))
	}
	mux.HandleFunc("GET /conf", a.serveConf)
	mux.HandleFunc("GET /ca.pem", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Write([]byte(a.Current().CACerts[0]))
	})
	mux.HandleFunc("GET /crl", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(*a.crl.Load())
	})
	mux.HandleFunc("GET /crl/{ca}", func(w http.ResponseWriter, r *http.Request) {
		der, ok := (*a.crls.Load())[r.PathValue("ca")]
		if !ok {
			http.Error(w, "no CA "+r.PathValue("ca")+" is listed", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/pkix-crl")
		w.Write(der)
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
	manage("GET /api/v1/configuration", "get_configuration", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		writeJSON(w, http.StatusOK, a.Current())
		return nil
	})
	manage("GET /api/v1/certificates", "list_certificates", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		after, limit, err := pageParams(r)
		if err != nil {
			return err
		}
		p, err := a.Certificates(r.Context(), after, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	})
	manage("GET /api/v1/audit", "read_audit", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		after, limit, err := pageParams(r)
		if err != nil {
			return err
		}
		p, err := a.Audit(r.Context(), after, limit)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, p)
		return nil
	})
	a.readRoutes(manage)
	manage("GET /api/v1/operators", "list_operators", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		writeJSON(w, http.StatusOK, a.Operators())
		return nil
	})
	manage("POST /api/v1/operators/{name}/revoke", "revoke_operator", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RevokeOperator(r.Context(), op, r.PathValue("name")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("name")})
		return nil
	})
	manage("POST /api/v1/members", "add_member", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in MemberInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.AddMember(r.Context(), op, in), in)
	})
	manage("POST /api/v1/subsystems", "add_subsystem", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in SubsystemInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.AddSubsystem(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/subsystems", "put_subsystem", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in SubsystemInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutSubsystem(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/gateways", "put_gateway", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in GatewayInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutGateway(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/groups", "put_group", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in GroupInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutGroup(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/federation", "put_federation", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in FederationInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutFederation(r.Context(), op, in), map[string]string{"federated": in.Anchor.Instance})
	})
	manage("DELETE /api/v1/federation/{instance}", "remove_federation", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RemoveFederation(r.Context(), op, r.PathValue("instance")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"removed": r.PathValue("instance")})
		return nil
	})
	manage("PUT /api/v1/ai/services", "put_ai_service", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in AIServiceInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutAIService(r.Context(), op, in), map[string]string{"registered": in.ID, "model_version": in.ModelCard.ModelVersion})
	})
	manage("GET /api/v1/ai/services", "list_ai_services", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		svcs, bodies, err := a.AIServices(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, AIRegistry{Services: svcs, TestingBodies: bodies})
		return nil
	})
	manage("GET /api/v1/ai/services/{id...}", "get_ai_service", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		svcs, _, err := a.AIServices(r.Context())
		if err != nil {
			return err
		}
		for _, s := range svcs {
			if s.ID == r.PathValue("id") {
				writeJSON(w, http.StatusOK, s)
				return nil
			}
		}
		return fmt.Errorf("%w: AI service %q is not registered", errNotFound, r.PathValue("id"))
	})
	manage("PUT /api/v1/ai/testing-bodies", "put_ai_testing_bodies", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in TestingBodiesInput
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutAITestingBodies(r.Context(), op, in), in)
	})
	manage("POST /api/v1/ai/reports", "submit_ai_report", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in ReportSubmission
		if err := decode(r, &in); err != nil {
			return err
		}
		acc, err := a.SubmitAIReport(r.Context(), op, in)
		return created(w, err, acc)
	})
	manage("POST /api/v1/ai/reports/{digest}/withdraw", "withdraw_ai_report", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in WithdrawInput
		if err := decode(r, &in); err != nil {
			return err
		}
		out, err := a.WithdrawAIReport(r.Context(), op, r.PathValue("digest"), in)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
	manage("GET /api/v1/policy", "get_policy", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		c := a.current.Load().cfg
		writeJSON(w, http.StatusOK, PolicyView{Document: c.Policy, Cedar: c.PolicyEngine().Text(), Version: c.PolicyEngine().Version()})
		return nil
	})
	manage("PUT /api/v1/policy/services", "put_service_class", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.ServiceClass
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutServiceClass(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/policy/agreements", "put_agreement", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.Agreement
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutAgreement(r.Context(), op, in), in)
	})
	manage("POST /api/v1/policy/agreements/{id}/status", "set_agreement_status", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in StatusInput
		if err := decode(r, &in); err != nil {
			return err
		}
		if err := a.SetAgreementStatus(r.Context(), op, r.PathValue("id"), in); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"agreement": r.PathValue("id"), "status": in.Status})
		return nil
	})
	manage("PUT /api/v1/policy/rules", "put_rules", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in []policy.Rule
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutRules(r.Context(), op, in), in)
	})
	manage("PUT /api/v1/policy/suspensions", "put_suspension", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		var in policy.Suspension
		if err := decode(r, &in); err != nil {
			return err
		}
		return created(w, a.PutSuspension(r.Context(), op, in), in)
	})
	manage("DELETE /api/v1/policy/suspensions/{id}", "remove_suspension", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.RemoveSuspension(r.Context(), op, r.PathValue("id")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"resumed": r.PathValue("id")})
		return nil
	})
	manage("POST /api/v1/certificates", "issue_certificate", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
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
	})
	manage("POST /api/v1/certificates/{serial}/revoke", "revoke_certificate", RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
		if err := a.Revoke(r.Context(), op, r.PathValue("serial")); err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]string{"revoked": r.PathValue("serial")})
		return nil
	})
	a.renewRoutes(manage)
	manage("GET /api/v1/rotation", "get_rotation", RoleAuditor, func(w http.ResponseWriter, r *http.Request, op string) error {
		writeJSON(w, http.StatusOK, a.Rotation())
		return nil
	})
	rotationStep := func(path, call string, step func(r *http.Request, op string, in RotateInput) error) {
		manage("POST /api/v1/rotation/"+path, call, RoleAdmin, func(w http.ResponseWriter, r *http.Request, op string) error {
			var in RotateInput
			if err := decodeOptional(r, &in); err != nil {
				return err
			}
			if err := step(r, op, in); err != nil {
				return err
			}
			writeJSON(w, http.StatusOK, a.Rotation())
			return nil
		})
	}
	rotationStep("conf-key/prepare", "prepare_conf_key", func(r *http.Request, op string, in RotateInput) error {
		return a.PrepareConfKey(r.Context(), op)
	})
	rotationStep("conf-key/activate", "activate_conf_key", func(r *http.Request, op string, in RotateInput) error {
		return a.ActivateConfKey(r.Context(), op, in)
	})
	rotationStep("ca/prepare", "prepare_ca", func(r *http.Request, op string, in RotateInput) error {
		return a.PrepareCA(r.Context(), op)
	})
	rotationStep("ca/activate", "activate_ca", func(r *http.Request, op string, in RotateInput) error {
		return a.ActivateCA(r.Context(), op, in)
	})
	rotationStep("ca/retire", "retire_ca", func(r *http.Request, op string, in RotateInput) error {
		return a.RetireCA(r.Context(), op, in)
	})
	rotationStep("conf-key/retire", "retire_conf_key", func(r *http.Request, op string, in RotateInput) error {
		return a.RetireConfKey(r.Context(), op, in)
	})
	return a.metrics.countCalls(calls, ocspGET(mux, a.serveOCSP))
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
// rendering. An auditor may only read; an admin may do everything. A
// call an operator is refused (the role, or a change that fails) is
// written to the audit log; an unauthenticated one only to the process
// log and the metrics.
func (a *Authority) op(need, call string, h func(http.ResponseWriter, *http.Request, string) error) http.HandlerFunc {
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
			a.unauthenticated(r, name, why)
			w.Header().Set("WWW-Authenticate", `Bearer realm="sampan-authority"`)
			writeJSON(w, http.StatusUnauthorized, apiError{"missing, unknown, expired or revoked operator token"})
			return
		}
		name := o.Name
		if need == RoleAdmin && o.Role != RoleAdmin {
			msg := fmt.Sprintf("operator %s (role %s) may not do this", name, o.Role)
			// An auditor cannot fill the audit log: past the failed-call
			// threshold an address's refusals go to the process log only.
			if a.refuseThrottle.take(key, now) > 0 {
				a.log.Debug("management API call refused, not audited (too many refusals from this address)", "status", http.StatusForbidden,
					"operator", name, "client", r.RemoteAddr, "method", r.Method, "path", logPath(r))
			} else {
				a.refused(r, name, call, http.StatusForbidden, msg)
			}
			writeJSON(w, http.StatusForbidden, apiError{msg})
			return
		}
		limit := int64(maxAPIBody)
		if call == "submit_ai_report" {
			limit = maxAIReportBody
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
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
			// A read that fails changes nothing and refuses no right:
			// the process log and the metrics have it.
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				a.refused(r, name, call, status, msg)
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

// decodeOptional is decode for a body that may be left out.
func decodeOptional(r *http.Request, v any) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return fmt.Errorf("%w: request body: %w", errInvalid, err)
	}
	if len(strings.TrimSpace(string(b))) == 0 {
		return nil
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
