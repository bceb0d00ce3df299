package gateway

import (
	"context"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/r1"
)

// maxDeclared bounds the purpose and legal-basis headers.
const maxDeclared = 128

// declared reads the purpose and legal basis a request declares.
func declared(h http.Header, typ string) (purpose, basis string, e *r1.Error) {
	purpose, basis = strings.TrimSpace(h.Get(r1.HeaderPurpose)), strings.TrimSpace(h.Get(r1.HeaderLegalBasis))
	for name, v := range map[string]string{r1.HeaderPurpose: purpose, r1.HeaderLegalBasis: basis} {
		if len(v) > maxDeclared || strings.IndexFunc(v, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return "", "", r1.New(typ, "%s must be printable text of at most %d bytes", name, maxDeclared)
		}
	}
	return purpose, basis, nil
}

// decide makes this gateway's decision on a request under its own
// instance's rules (own), with the service's class and the agreement
// taken from the provider's instance (prov). client and service come from
// verified identities.
func (g *Gateway) decide(side string, own, prov *confState, client ident.ClientID, svc ident.ServiceID, purpose, basis string) (policy.Decision, *msglog.Decision) {
	pe := prov.cfg.PolicyEngine()
	class, _ := pe.Class(svc)
	if class == nil && side == policy.SideConsumer {
		// Whether the service exists and what it holds is for the
		// provider's gateway to say (it refuses services without a class).
		// This gateway still applies its own rules and suspensions that
		// do not depend on the class.
		class = &policy.ServiceClass{ID: svc}
	}
	now := g.now()
	d := own.cfg.PolicyEngine().Decide(&policy.Request{
		Side: side, Client: client, Service: svc, Purpose: purpose, LegalBasis: basis,
		Class: class, Agreement: pe.FindAgreement(client, svc, purpose, now),
	})
	ld := &msglog.Decision{
		Allow: d.Allow, Rules: d.Rules, Agreement: d.Agreement, PolicyVersion: d.Version,
		CrossBorder: client.Instance != svc.Provider.Instance, Purpose: purpose, LegalBasis: basis, Message: d.Message,
	}
	if ld.Rules == nil {
		ld.Rules = []string{}
	}
	if side == policy.SideProvider {
		ld.Destination = client.Instance
	} else {
		ld.Destination = svc.Provider.Instance
	}
	if class != nil {
		ld.DataClass, ld.Flags = class.Class, class.Flags
	}
	if a := pe.Agreement(d.Agreement); a != nil {
		for _, r := range a.References {
			ld.References = append(ld.References, r.Kind+": "+r.Ref)
		}
		ld.RetentionDays = a.RetentionDays
	}
	return d, ld
}

// logDenial keeps a refused request in the message log, so that refusals
// are evidence too. A failure to log it is reported but the refusal stands.
func (g *Gateway) logDenial(ctx context.Context, rec *msglog.Record) {
	rec.Kind = msglog.KindDenial
	rec.ResponseAt = time.Now().UTC()
	if err := g.mlog.Append(context.WithoutCancel(ctx), rec); err != nil {
		g.log.Error("refusal not logged", "x_road_id", rec.XRoadID, "err", err)
	}
}

// checkQuota counts a call under its agreement at the provider's gateway.
func (g *Gateway) checkQuota(ctx context.Context, prov *confState, agreementID string) *r1.Error {
	if agreementID == "" {
		return nil
	}
	a := prov.cfg.PolicyEngine().Agreement(agreementID)
	if a == nil || a.QuotaPerDay <= 0 {
		return nil
	}
	limit := a.QuotaPerDay
	ok, n, err := g.mlog.CountCall(ctx, agreementID, g.now(), limit)
	if err != nil {
		return r1.Wrap(err, r1.TypeServerInternal, "counting calls under agreement %s failed", agreementID)
	}
	if !ok {
		return r1.New(r1.TypeServerPolicyDenied, "agreement %s allows %d calls per day; %d have been made today (UTC)", agreementID, limit, n)
	}
	return nil
}
