// Package policy holds the sovereignty rules of an instance as data — the
// data class and flags of each service, agreements between members,
// national rules and the regulator's suspensions — and compiles them,
// when a configuration loads, into cedar-go policies that decide every
// request. Anything it does not know (an attribute, an operator, a
// reference kind, a flag) rejects the whole document: fail closed.
package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/sampan-exchange/sampan/ident"
)

// Data classes, from least to most protected.
const (
	ClassPublic       = "public"
	ClassInternal     = "internal"
	ClassConfidential = "confidential"
	ClassRestricted   = "restricted"
)

// Flags: categories of Vietnam's Law on Data and personal-data law.
const (
	FlagPersonal          = "personal"
	FlagSensitivePersonal = "sensitive-personal"
	FlagImportant         = "important"
	FlagCore              = "core"
)

// Reference kinds an agreement can cite.
const (
	RefTransferAssessment   = "transfer-assessment"
	RefApproval             = "approval"
	RefComparableProtection = "comparable-protection"
)

// Agreement statuses.
const (
	StatusActive     = "active"
	StatusSuspended  = "suspended"
	StatusTerminated = "terminated"
)

var (
	classes  = []string{ClassPublic, ClassInternal, ClassConfidential, ClassRestricted}
	flags    = []string{FlagPersonal, FlagSensitivePersonal, FlagImportant, FlagCore}
	refKinds = []string{RefTransferAssessment, RefApproval, RefComparableProtection}
	statuses = []string{StatusActive, StatusSuspended, StatusTerminated}
	idRE     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	tokenRE  = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)
)

// Limits on a document, so that a configuration stays small enough to
// fetch and compile quickly.
const (
	MaxAgreements  = 20000
	MaxRules       = 200
	MaxSuspensions = 200
	maxListItems   = 64
	maxText        = 500
)

// Document is the policy part of an instance's shared configuration.
type Document struct {
	Services    []ServiceClass `json:"services,omitempty"`
	Agreements  []Agreement    `json:"agreements,omitempty"`
	Rules       []Rule         `json:"rules,omitempty"`
	Suspensions []Suspension   `json:"suspensions,omitempty"`
}

// ServiceClass declares what kind of data a service handles.
type ServiceClass struct {
	ID    ident.ServiceID `json:"id"`
	Class string          `json:"data_class"`
	Flags []string        `json:"flags,omitempty"`
	// PublicDescription makes the service's description (listMethods,
	// allowedMethods, getOpenAPI) readable by every client with an access
	// right to it. Without it a description goes only where the policy
	// would let the service's data go.
	PublicDescription bool `json:"public_description,omitempty"`
}

// Reference cites an instrument: a transfer-impact assessment, an
// approval, a comparable-protection instrument.
type Reference struct {
	Kind string `json:"kind"`
	Ref  string `json:"ref"`
}

// Agreement lets consumers call services of this instance under terms.
type Agreement struct {
	ID string `json:"id"`
	// Consumers are subsystems or members (of any instance).
	Consumers []string `json:"consumers"`
	// Services are services of this instance.
	Services     []ident.ServiceID `json:"services"`
	Purposes     []string          `json:"purposes"`
	LegalBasis   []string          `json:"legal_basis,omitempty"`
	Destinations []string          `json:"destinations,omitempty"`
	ValidFrom    time.Time         `json:"valid_from"`
	ValidUntil   *time.Time        `json:"valid_until,omitempty"`
	// RetentionDays is how long the consumer may keep what it receives.
	RetentionDays int `json:"retention_days,omitempty"`
	// QuotaPerDay bounds the calls per UTC day under the agreement (0: none).
	QuotaPerDay int64       `json:"quota_per_day,omitempty"`
	References  []Reference `json:"references,omitempty"`
	Responsible []string    `json:"responsible,omitempty"`
	Status      string      `json:"status"`
	// StatusReason is why the agreement was last suspended, resumed or
	// terminated, as the operator said; refusals under a suspended or
	// terminated agreement quote it.
	StatusReason string `json:"status_reason,omitempty"`

	consumers []ident.ClientID
}

// clone returns a copy of a that shares nothing with it.
func (a Agreement) clone() *Agreement {
	a.Consumers, a.Services, a.Purposes = slices.Clone(a.Consumers), slices.Clone(a.Services), slices.Clone(a.Purposes)
	a.LegalBasis, a.Destinations = slices.Clone(a.LegalBasis), slices.Clone(a.Destinations)
	a.References, a.Responsible, a.consumers = slices.Clone(a.References), slices.Clone(a.Responsible), slices.Clone(a.consumers)
	if a.ValidUntil != nil {
		u := *a.ValidUntil
		a.ValidUntil = &u
	}
	return &a
}

// Rule is a national rule. When a request matches When, a "deny" rule
// refuses it; a "require" rule refuses it unless every requirement holds.
type Rule struct {
	ID          string   `json:"id"`
	Description string   `json:"description"`
	AppliesAt   string   `json:"applies_at"` // provider, consumer or both
	When        When     `json:"when"`
	Effect      string   `json:"effect"` // deny or require
	Require     []string `json:"require,omitempty"`
}

// When selects the requests a rule or suspension governs. Within a list,
// any item matches; empty lists match everything.
type When struct {
	Flow    string   `json:"flow"` // cross-border, domestic or any
	Classes []string `json:"classes,omitempty"`
	Flags   []string `json:"flags,omitempty"`
}

// Suspension is the regulator's stop switch: flows it matches stop.
type Suspension struct {
	ID     string    `json:"id"`
	When   When      `json:"when"`
	Reason string    `json:"reason"`
	Since  time.Time `json:"since"`
}

// Requirements a rule may name.
const (
	ReqAgreement       = "agreement"          // an active agreement covers client and service
	ReqPurposeDeclared = "purpose-declared"   // the request declares a purpose
	ReqPurpose         = "purpose"            // the declared purpose is one the agreement allows
	ReqLegalBasis      = "legal-basis"        // the declared legal basis is one the agreement names
	ReqDestination     = "destination-listed" // the agreement lists the other party's jurisdiction
	reqRefPrefix       = "reference:"         // reference:KIND — the agreement cites one
)

var requirements = []string{ReqAgreement, ReqPurposeDeclared, ReqPurpose, ReqLegalBasis, ReqDestination,
	reqRefPrefix + RefTransferAssessment, reqRefPrefix + RefApproval, reqRefPrefix + RefComparableProtection}

func checkList(field string, got, known []string) error {
	if len(got) > maxListItems {
		return fmt.Errorf("%s: more than %d items", field, maxListItems)
	}
	if err := noDuplicates(field, got); err != nil {
		return err
	}
	for i, v := range got {
		if !slices.Contains(known, v) {
			return fmt.Errorf("%s[%d]: unknown value %q (known: %v)", field, i, v, known)
		}
	}
	return nil
}

func checkTokens(field string, got []string) error {
	if len(got) > maxListItems {
		return fmt.Errorf("%s: more than %d items", field, maxListItems)
	}
	if err := noDuplicates(field, got); err != nil {
		return err
	}
	for i, v := range got {
		if !tokenRE.MatchString(v) {
			return fmt.Errorf("%s[%d]: %q must be lower-case letters, digits, '.', '_' or '-'", field, i, v)
		}
	}
	return nil
}

// noDuplicates refuses a list that holds an item twice (ids and
// identifiers compared without regard to case), naming both positions.
func noDuplicates[T any](field string, items []T) error {
	seen := make(map[string]int, len(items))
	for i, it := range items {
		k := strings.ToLower(fmt.Sprint(it))
		if j, dup := seen[k]; dup {
			return fmt.Errorf("%s[%d] duplicates %s[%d] (%q)", field, i, field, j, fmt.Sprint(it))
		}
		seen[k] = i
	}
	return nil
}

// uniqueID checks the form of the id of list[i] and that no earlier item
// of the list has it (in any case), naming both positions.
func uniqueID(list string, i int, what, id string, seen map[string]int) error {
	if !idRE.MatchString(id) {
		return fmt.Errorf("%s[%d].id: %q must be 1-64 letters, digits, '.', '_' or '-' (a %s id)", list, i, id, what)
	}
	k := strings.ToLower(id)
	if j, dup := seen[k]; dup {
		return fmt.Errorf("%s[%d].id duplicates %s[%d].id (%q)", list, i, list, j, id)
	}
	seen[k] = i
	return nil
}

func (w *When) validate(field string) error {
	switch w.Flow {
	case "cross-border", "domestic", "any":
	case "":
		return fmt.Errorf("%s.flow: required (cross-border, domestic or any)", field)
	default:
		return fmt.Errorf("%s.flow: unknown value %q (cross-border, domestic or any)", field, w.Flow)
	}
	if err := checkList(field+".classes", w.Classes, classes); err != nil {
		return err
	}
	return checkList(field+".flags", w.Flags, flags)
}

// Validate checks a document of instance inst; errors name the field.
func (d *Document) Validate(inst string) error {
	if len(d.Agreements) > MaxAgreements || len(d.Rules) > MaxRules || len(d.Suspensions) > MaxSuspensions {
		return fmt.Errorf("policy: more than %d agreements, %d rules or %d suspensions", MaxAgreements, MaxRules, MaxSuspensions)
	}
	seen := map[string]int{}
	for i := range d.Services {
		s := &d.Services[i]
		f := fmt.Sprintf("policy.services[%d]", i)
		if err := s.ID.Validate(); err != nil {
			return fmt.Errorf("%s.id: %w", f, err)
		}
		if s.ID.Provider.Instance != inst {
			return fmt.Errorf("%s.id: %s is not a service of instance %s", f, s.ID, inst)
		}
		if j, dup := seen[strings.ToLower(s.ID.String())]; dup {
			return fmt.Errorf("%s.id duplicates policy.services[%d].id (%s)", f, j, s.ID)
		}
		seen[strings.ToLower(s.ID.String())] = i
		if !slices.Contains(classes, s.Class) {
			return fmt.Errorf("%s.data_class: unknown value %q (known: %v)", f, s.Class, classes)
		}
		if err := checkList(f+".flags", s.Flags, flags); err != nil {
			return err
		}
	}
	seen = map[string]int{}
	for i := range d.Agreements {
		a := &d.Agreements[i]
		f := fmt.Sprintf("policy.agreements[%d]", i)
		if err := uniqueID("policy.agreements", i, "agreement", a.ID, seen); err != nil {
			return err
		}
		if len(a.Consumers) == 0 || len(a.Consumers) > maxListItems {
			return fmt.Errorf("%s.consumers: 1 to %d members or subsystems", f, maxListItems)
		}
		if err := noDuplicates(f+".consumers", a.Consumers); err != nil {
			return err
		}
		a.consumers = a.consumers[:0]
		for j, c := range a.Consumers {
			id, err := ident.ParseSubsystem(c)
			if err != nil {
				id, err = ident.ParseMember(c)
			}
			if err != nil {
				return fmt.Errorf("%s.consumers[%d]: %q is neither a member nor a subsystem", f, j, c)
			}
			a.consumers = append(a.consumers, id)
		}
		if len(a.Services) == 0 || len(a.Services) > maxListItems {
			return fmt.Errorf("%s.services: 1 to %d services", f, maxListItems)
		}
		if err := noDuplicates(f+".services", a.Services); err != nil {
			return err
		}
		for j, s := range a.Services {
			if err := s.Validate(); err != nil || s.Provider.Instance != inst {
				return fmt.Errorf("%s.services[%d]: %q is not a service of instance %s", f, j, s, inst)
			}
		}
		if len(a.Purposes) == 0 {
			return fmt.Errorf("%s.purposes: at least one purpose", f)
		}
		if err := checkTokens(f+".purposes", a.Purposes); err != nil {
			return err
		}
		if err := checkTokens(f+".legal_basis", a.LegalBasis); err != nil {
			return err
		}
		if len(a.Destinations) > maxListItems {
			return fmt.Errorf("%s.destinations: more than %d items", f, maxListItems)
		}
		if err := noDuplicates(f+".destinations", a.Destinations); err != nil {
			return err
		}
		for j, dst := range a.Destinations {
			if ident.ValidateInstance(dst) != nil {
				return fmt.Errorf("%s.destinations[%d]: %q is not an instance code", f, j, dst)
			}
		}
		if a.ValidFrom.IsZero() {
			return fmt.Errorf("%s.valid_from: required", f)
		}
		if a.ValidUntil != nil && !a.ValidUntil.After(a.ValidFrom) {
			return fmt.Errorf("%s.valid_until: must be after valid_from", f)
		}
		if a.RetentionDays < 0 || a.QuotaPerDay < 0 {
			return fmt.Errorf("%s: retention_days and quota_per_day must not be negative", f)
		}
		if len(a.References) > maxListItems {
			return fmt.Errorf("%s.references: more than %d items", f, maxListItems)
		}
		for j, r := range a.References {
			if !slices.Contains(refKinds, r.Kind) {
				return fmt.Errorf("%s.references[%d].kind: unknown value %q (known: %v)", f, j, r.Kind, refKinds)
			}
			if r.Ref == "" || len(r.Ref) > maxText {
				return fmt.Errorf("%s.references[%d].ref: required, at most %d characters", f, j, maxText)
			}
		}
		if len(a.Responsible) > maxListItems {
			return fmt.Errorf("%s.responsible: more than %d", f, maxListItems)
		}
		for j, p := range a.Responsible {
			if p == "" || len(p) > maxText {
				return fmt.Errorf("%s.responsible[%d]: required, at most %d characters", f, j, maxText)
			}
		}
		if !slices.Contains(statuses, a.Status) {
			return fmt.Errorf("%s.status: unknown value %q (known: %v)", f, a.Status, statuses)
		}
		if len(a.StatusReason) > maxText || strings.ContainsFunc(a.StatusReason, unicode.IsControl) {
			return fmt.Errorf("%s.status_reason: at most %d characters, no control characters", f, maxText)
		}
	}
	seen = map[string]int{}
	for i := range d.Rules {
		r := &d.Rules[i]
		f := fmt.Sprintf("policy.rules[%d]", i)
		if err := uniqueID("policy.rules", i, "rule", r.ID, seen); err != nil {
			return err
		}
		if len(r.Description) > maxText {
			return fmt.Errorf("%s.description: more than %d characters", f, maxText)
		}
		switch r.AppliesAt {
		case "provider", "consumer", "both":
		default:
			return fmt.Errorf("%s.applies_at: unknown value %q (provider, consumer or both)", f, r.AppliesAt)
		}
		if err := r.When.validate(f + ".when"); err != nil {
			return err
		}
		switch r.Effect {
		case "deny":
			if len(r.Require) > 0 {
				return fmt.Errorf("%s.require: a deny rule has no requirements", f)
			}
		case "require":
			if len(r.Require) == 0 {
				return fmt.Errorf("%s.require: a require rule needs at least one requirement", f)
			}
			if err := checkList(f+".require", r.Require, requirements); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s.effect: unknown value %q (deny or require)", f, r.Effect)
		}
	}
	seen = map[string]int{}
	for i := range d.Suspensions {
		s := &d.Suspensions[i]
		f := fmt.Sprintf("policy.suspensions[%d]", i)
		if err := uniqueID("policy.suspensions", i, "suspension", s.ID, seen); err != nil {
			return err
		}
		if err := s.When.validate(f + ".when"); err != nil {
			return err
		}
		if len(s.When.Classes) == 0 && len(s.When.Flags) == 0 {
			return fmt.Errorf("%s.when: name the data classes or flags it suspends", f)
		}
		if s.Reason == "" || len(s.Reason) > maxText {
			return fmt.Errorf("%s.reason: required, at most %d characters", f, maxText)
		}
	}
	return nil
}
