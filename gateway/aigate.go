package gateway

import (
	"fmt"

	"github.com/sampan-exchange/sampan/ai/obligations"
	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// RuleAIEvaluationCall is added to the rules of a gateway's logged
// decision for a call the AI gate lets through only because its client
// belongs to an accredited testing body: the message log shows it as an
// evaluation call.
const RuleAIEvaluationCall = "ai-evaluation-call"

// HeaderAINotice carries a registered AI service's transparency notice
// on its answers; HeaderAIModelCard the SHA-256 of the model card
// registered for it. The provider's gateway sets the notice its
// country's rules require; the consumer's gateway sets both from the
// provider's published registration, so a client sees them whatever
// the provider's gateway sent.
const (
	HeaderAINotice    = r1.HeaderAINotice
	HeaderAIModelCard = r1.HeaderAIModelCard
)

// aiVerdict is what the AI gate decided for an allowed call.
type aiVerdict struct {
	svc    *conf.AIService // nil: not a registered AI service
	notice string          // the notice the answer carries, if any
	// evaluation: the call is served only because its client belongs to
	// an accredited testing body of the provider's instance.
	evaluation bool
}

// aiGate decides a call to svc under the AI obligations of each of the
// configurations in rulesOf (the deciding gateway's own instance and,
// at a consumer's gateway, the provider's): a registered AI service is
// served only when every one of them publishes obligations, and a
// conformity evaluation that any of them requires was accepted by the
// provider's authority for the registered model version and card, from
// a testing body whose instance that country recognises. A client of
// an accredited testing body of the provider's instance may call it
// unevaluated: that is how it is evaluated. A transparency notice any
// of them requires goes on the answer. errType is the r1 error type of
// the deciding side.
func aiGate(provider *conf.Config, rulesOf []*conf.Config, client ident.ClientID, svc ident.ServiceID, errType string) (aiVerdict, *r1.Error) {
	ai := provider.AIService(svc)
	if ai == nil {
		return aiVerdict{}, nil
	}
	v := aiVerdict{svc: ai}
	tester := provider.IsAITestingBody(client.Member())
	for _, cfg := range rulesOf {
		rules := cfg.AIObligations
		if rules == nil {
			return v, r1.New(errType, "service %s is a registered AI service, but %s publishes no AI obligations, so it is not served", svc, cfg.Instance)
		}
		if rules.Requires(ai.Tier, obligations.TransparencyNotice) {
			v.notice = ai.Notice
			if v.notice == "" {
				v.notice = fmt.Sprintf("AI-generated answer: service %s, model %s", svc.String(), ai.ModelVersion)
			}
		}
		if !rules.Requires(ai.Tier, obligations.ConformityEvaluation) {
			continue
		}
		if ai.Evaluated != "" && rules.Recognises(ai.EvaluatedBy.Instance) {
			continue
		}
		if tester {
			v.evaluation = true
			continue
		}
		switch {
		case ai.Evaluated != "":
			return v, r1.New(errType, "service %s (model %s) was evaluated by %s, but %s's AI rules do not recognise evaluations from %s", svc, ai.ModelVersion, ai.EvaluatedBy, cfg.Instance, ai.EvaluatedBy.Instance)
		case ai.Tier == obligations.TierUnclassified:
			return v, r1.New(errType, "service %s (model %s) has no risk classification for model version %s and no accepted passing evaluation for it, which %s's AI rules require: the provider classifies the new version, or an accredited testing body evaluates it", svc, ai.ModelVersion, ai.ModelVersion, cfg.Instance)
		default:
			return v, r1.New(errType, "service %s (model %s) is %s risk and has no accepted passing evaluation for model version %s, which %s's AI rules require: have an accredited testing body evaluate it", svc, ai.ModelVersion, ai.Tier, ai.ModelVersion, cfg.Instance)
		}
	}
	return v, nil
}
