package gateway

import (
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
)

// aiConf is a configuration of instance with one member, its subsystem
// "svc" (an AI service "classify" when ai is set) and the given
// obligations.
func aiConf(t *testing.T, instance string, rules *obligations.Rules, ai *conf.AIService, testers ...ident.ClientID) *conf.Config {
	t.Helper()
	ca, err := pki.NewCA(instance + " test CA")
	if err != nil {
		t.Fatal(err)
	}
	m := ident.ClientID{Instance: instance, Class: "GOV", Code: "AGENCY"}
	lab := ident.ClientID{Instance: instance, Class: "ORG", Code: "LAB"}
	now := time.Now().UTC()
	c := &conf.Config{
		FormatVersion: conf.FormatVersion, Instance: instance, Serial: 1, GeneratedAt: now, ExpiresAt: now.Add(time.Hour),
		CACerts:       []string{string(pki.EncodeCert(ca.Cert.Raw))},
		Members:       []conf.Member{{ID: m, Name: "Agency", Subsystems: []string{"svc"}}, {ID: lab, Name: "Lab", Subsystems: []string{"evaluator"}}},
		Gateways:      []conf.Gateway{},
		GlobalGroups:  []conf.GlobalGroup{},
		AIObligations: rules, AITestingBodies: testers,
	}
	if ai != nil {
		c.AIServices = []conf.AIService{*ai}
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	return c
}

func rulesFor(country string, recognised ...string) *obligations.Rules {
	return &obligations.Rules{Country: country, RecognisedEvaluations: recognised, Tiers: map[string][]string{
		"high":   {obligations.ConformityEvaluation},
		"medium": {obligations.TransparencyNotice},
		"low":    {},
	}}
}

// TestAIGateDecisions: a call is decided under every configuration's
// rules: none published refuses; a conformity evaluation counts only
// where its testing body's instance is recognised; the provider's
// testing bodies may call unevaluated; either country's notice applies.
func TestAIGateDecisions(t *testing.T) {
	digest := strings.Repeat("ab", 32)
	lab := ident.ClientID{Instance: "VN", Class: "ORG", Code: "LAB"}
	svc, _ := ident.ParseService("VN/GOV/AGENCY/svc/classify")
	client, _ := ident.ParseClient("SG/GOV/POLICE/app")
	evaluator, _ := ident.ParseClient("VN/ORG/LAB/evaluator")
	entry := func(tier string, evaluated bool) *conf.AIService {
		a := &conf.AIService{ID: "VN/GOV/AGENCY/svc/classify", Tier: tier, ModelVersion: "m1", ModelCardDigest: digest, Notified: true}
		if evaluated {
			a.Evaluated, a.EvaluatedBy = digest, lab
		}
		return a
	}
	sgRecognisesVN, sgAlone := aiConf(t, "SG", rulesFor("SG", "VN"), nil), aiConf(t, "SG", rulesFor("SG"), nil)
	sgMediumNotice := rulesFor("SG", "VN")
	sgMediumNotice.Tiers["low"] = []string{obligations.TransparencyNotice}
	for _, c := range []struct {
		name     string
		provider *conf.Config
		consumer *conf.Config
		client   ident.ClientID
		want     string // error message part; "" allowed
		notice   bool
		evalCall bool
	}{
		{"evaluated, recognised", aiConf(t, "VN", rulesFor("VN"), entry("high", true), lab), sgRecognisesVN, client, "", false, false},
		{"evaluated, not recognised by the consumer's country", aiConf(t, "VN", rulesFor("VN"), entry("high", true), lab), sgAlone, client, "SG's AI rules do not recognise evaluations from VN", false, false},
		{"not evaluated", aiConf(t, "VN", rulesFor("VN"), entry("high", false), lab), sgRecognisesVN, client, "which SG's AI rules require", false, false},
		{"not evaluated, the provider's testing body", aiConf(t, "VN", rulesFor("VN"), entry("high", false), lab), sgRecognisesVN, evaluator, "", false, true},
		{"not evaluated, a testing body no longer accredited", aiConf(t, "VN", rulesFor("VN"), entry("high", false)), sgRecognisesVN, evaluator, "which SG's AI rules require", false, false},
		{"unclassified is held to high", aiConf(t, "VN", rulesFor("VN"), entry("unclassified", false), lab), sgRecognisesVN, client, "no risk classification", false, false},
		{"no obligations published by the consumer's country", aiConf(t, "VN", rulesFor("VN"), entry("low", false), lab), aiConf(t, "SG", nil, nil), client, "SG publishes no AI obligations", false, false},
		{"no obligations published by the provider's country", aiConf(t, "VN", nil, entry("low", false), lab), sgRecognisesVN, client, "VN publishes no AI obligations", false, false},
		{"medium: the notice", aiConf(t, "VN", rulesFor("VN"), entry("medium", false), lab), sgRecognisesVN, client, "", true, false},
		{"low: the consumer's country wants a notice", aiConf(t, "VN", rulesFor("VN"), entry("low", false), lab), aiConf(t, "SG", sgMediumNotice, nil), client, "", true, false},
		{"low: no notice", aiConf(t, "VN", rulesFor("VN"), entry("low", false), lab), sgRecognisesVN, client, "", false, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			v, e := aiGate(c.provider, []*conf.Config{c.consumer, c.provider}, c.client, svc, r1.TypeClientAINotEvaluated)
			if c.want != "" {
				if e == nil || e.Type != r1.TypeClientAINotEvaluated || !strings.Contains(e.Message, c.want) {
					t.Fatalf("got %v, want a refusal saying %q", e, c.want)
				}
				return
			}
			if e != nil {
				t.Fatalf("refused: %v", e)
			}
			if (v.notice != "") != c.notice || v.evaluation != c.evalCall || v.svc == nil {
				t.Errorf("verdict %+v, want notice %v, evaluation call %v", v, c.notice, c.evalCall)
			}
		})
	}
	// A service that is not a registered AI service is not decided here.
	other, _ := ident.ParseService("VN/GOV/AGENCY/svc/other")
	if v, e := aiGate(aiConf(t, "VN", nil, nil), nil, client, other, r1.TypeClientAINotEvaluated); e != nil || v.svc != nil {
		t.Errorf("a service that is not an AI service: %+v, %v", v, e)
	}
}
