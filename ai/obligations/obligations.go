// Package obligations holds what each country's rules require of an AI
// service by its risk tier, as data (one JSON file per country, embedded),
// and compiles it: an unknown tier or obligation name refuses the file,
// so no obligation is silently ignored.
package obligations

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// Risk tiers. TierUnclassified is a service whose classification was
// made for another model version than the one registered, or none.
const (
	TierHigh         = "high"
	TierMedium       = "medium"
	TierLow          = "low"
	TierUnclassified = "unclassified"
)

// Tiers are the tiers a provider may declare.
var Tiers = []string{TierHigh, TierMedium, TierLow}

// Obligations the software knows how to check or enforce.
const (
	// ConformityEvaluation: a passing evaluation of the current model
	// version by an accredited testing body, accepted by the authority,
	// before any call is served (the provider's gateway refuses calls
	// otherwise).
	ConformityEvaluation = "conformity-evaluation"
	// HumanOversight: the model card declares how people oversee the
	// service (the authority refuses a registration without it).
	HumanOversight = "human-oversight"
	// Notification: the service is notified to the authority before it
	// is deployed (its registration is the notification).
	Notification = "notification"
	// TransparencyNotice: every answer carries the service's notice
	// (the provider's gateway adds it as a response header).
	TransparencyNotice = "transparency-notice"
	// OperationLogs: operation logs are kept (every call through the
	// exchange is in both gateways' message logs).
	OperationLogs = "operation-logs"
)

var known = []string{ConformityEvaluation, HumanOversight, Notification, TransparencyNotice, OperationLogs}

// Rules are one country's obligations by tier. The authority publishes
// its country's rules in the shared configuration (ai_obligations), so
// every gateway applies them: the provider's gateway its own country's,
// the consumer's gateway its own country's and the provider's.
type Rules struct {
	Country string              `json:"country"`
	Source  string              `json:"source"`
	Tiers   map[string][]string `json:"tiers"`
	// RecognisedEvaluations are the instances whose accredited testing
	// bodies' accepted evaluations meet this country's
	// conformity-evaluation obligation. The country itself is always
	// recognised.
	RecognisedEvaluations []string `json:"recognised_evaluations,omitempty"`
}

// Recognises reports whether an evaluation accepted by instance's
// authority from one of its testing bodies counts under these rules.
func (r *Rules) Recognises(instance string) bool {
	return instance == r.Country || slices.Contains(r.RecognisedEvaluations, instance)
}

// Requires reports whether tier carries obligation ob. An unclassified
// service carries every obligation of the highest tier.
func (r *Rules) Requires(tier, ob string) bool {
	if tier == TierUnclassified || !slices.Contains(Tiers, tier) {
		tier = TierHigh
	}
	return slices.Contains(r.Tiers[tier], ob)
}

//go:embed rules/*.json
var files embed.FS

// Compile checks one country's rules: every tier declared and known,
// every obligation known, no duplicates, no unknown field.
func Compile(b []byte) (*Rules, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var r Rules
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("obligations: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("obligations: trailing data")
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return &r, nil
}

// Validate checks rules decoded by other means (the shared
// configuration, an authority's configuration file) as Compile does.
func (r *Rules) Validate() error {
	if r.Country == "" || len(r.Country) > 32 {
		return fmt.Errorf("obligations: country: want 1 to 32 bytes")
	}
	if len(r.Source) > 1000 {
		return fmt.Errorf("obligations %s: source: longer than 1000 bytes", r.Country)
	}
	if len(r.RecognisedEvaluations) > 32 {
		return fmt.Errorf("obligations %s: recognised_evaluations: more than 32", r.Country)
	}
	for t, obs := range r.Tiers {
		if !slices.Contains(Tiers, t) {
			return fmt.Errorf("obligations %s: tiers.%s: unknown tier (want one of %s)", r.Country, t, strings.Join(Tiers, ", "))
		}
		seen := map[string]bool{}
		for i, ob := range obs {
			if !slices.Contains(known, ob) {
				return fmt.Errorf("obligations %s: tiers.%s[%d]: unknown obligation %q (known: %s)", r.Country, t, i, ob, strings.Join(known, ", "))
			}
			if seen[ob] {
				return fmt.Errorf("obligations %s: tiers.%s[%d]: %q twice", r.Country, t, i, ob)
			}
			seen[ob] = true
		}
	}
	for _, t := range Tiers {
		if _, ok := r.Tiers[t]; !ok {
			return fmt.Errorf("obligations %s: tiers.%s: missing (write [] for none)", r.Country, t)
		}
	}
	for i, c := range r.RecognisedEvaluations {
		if c == "" || len(c) > 32 || strings.ContainsAny(c, "/ ") {
			return fmt.Errorf("obligations %s: recognised_evaluations[%d]: %q is not an instance code", r.Country, i, c)
		}
	}
	return nil
}

var compiled = func() map[string]*Rules {
	m := map[string]*Rules{}
	ents, err := files.ReadDir("rules")
	if err != nil {
		panic(err)
	}
	for _, e := range ents {
		b, err := files.ReadFile("rules/" + e.Name())
		if err != nil {
			panic(err)
		}
		r, err := Compile(b)
		if err != nil {
			panic(err)
		}
		m[r.Country] = r
	}
	return m
}()

// For returns the obligations the project ships for a country (an
// instance code, such as VN): an authority publishes them unless its
// configuration names others. A country without rules is an error: the
// caller refuses rather than assume none apply.
func For(country string) (*Rules, error) {
	r := compiled[country]
	if r == nil {
		return nil, fmt.Errorf("obligations: no AI obligations are defined for %s", country)
	}
	return r, nil
}
