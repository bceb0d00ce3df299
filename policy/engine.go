package policy

import (
	"crypto/sha256"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cedar-policy/cedar-go"

	"github.com/sampan-exchange/sampan/ident"
)

// Engine is an instance's compiled policy: its rules and suspensions as
// Cedar policies, and its services' classes and agreements indexed for
// look-up.
type Engine struct {
	instance string
	version  string
	text     string
	ps       *cedar.PolicySet
	classes  map[ident.ServiceID]*compiledClass
	// agreements by service, then by consumer (subsystem or member).
	agreements map[ident.ServiceID]map[ident.ClientID][]*compiledAgreement
	explain    map[cedar.PolicyID]explanation
	byID       map[string]*Agreement

	// Decisions made, by everything a decision reads (decideKey): the
	// rules are fixed once compiled. Evaluating them cost 5 µs and 34
	// allocations, on each gateway of every exchange. About
	// decideCacheMax are kept; past that all are forgotten.
	decided kept[decideKey, Decision]
}

// decideCacheMax bounds the decisions an Engine keeps: purposes and
// legal bases are the caller's free text, so their variety is not the
// configuration's.
const decideCacheMax = 10000

// decideKey is everything Decide reads from a request. The agreement is
// the one the provider's engine compiled (FindAgreement's), kept by
// identity: its record and text are fixed when compiled, and a new
// configuration compiles new ones, under new keys. A match made some
// other way is decided afresh every time.
type decideKey struct {
	side, purpose, basis string
	client               ident.ClientID
	service              ident.ServiceID
	hasClass             bool
	classID              ident.ServiceID
	class, flags         string
	// The agreement's record, as the rules see it, follows from these
	// two: its own record when active, none otherwise (FindAgreement).
	agreement *compiledAgreement
	state     AgreementState
}

type compiledClass struct {
	ServiceClass
	flags cedar.Set
}

type compiledAgreement struct {
	*Agreement
	rec cedar.Record // the agreement as the policies see it
}

// explanation says what a forbid policy stands for.
type explanation struct {
	rule, requirement string // requirement empty: the rule denies outright
	text              string // rule description or suspension reason
	suspension        bool
}

// Sides of a decision.
const (
	SideProvider = "provider"
	SideConsumer = "consumer"
)

// Compile validates the document and compiles it for instance inst;
// version names the configuration it came from (e.g. its serial).
func Compile(inst, version string, d *Document) (*Engine, error) {
	if d == nil {
		d = &Document{}
	}
	if err := d.Validate(inst); err != nil {
		return nil, err
	}
	e := &Engine{
		instance:   inst,
		classes:    map[ident.ServiceID]*compiledClass{},
		agreements: map[ident.ServiceID]map[ident.ClientID][]*compiledAgreement{},
		explain:    map[cedar.PolicyID]explanation{},
		byID:       map[string]*Agreement{},
	}
	e.decided.max = decideCacheMax
	for i := range d.Services {
		s := d.Services[i]
		vals := make([]cedar.Value, len(s.Flags))
		for j, f := range s.Flags {
			vals[j] = cedar.String(f)
		}
		e.classes[s.ID] = &compiledClass{ServiceClass: s, flags: cedar.NewSet(vals...)}
	}
	for i := range d.Agreements {
		// A copy: what the rules see of an agreement (its record) and
		// what refusals say of it must not change after compiling, when
		// the document does.
		a := d.Agreements[i].clone()
		ca := &compiledAgreement{Agreement: a, rec: agreementRecord(a)}
		e.byID[a.ID] = a
		for _, s := range a.Services {
			m := e.agreements[s]
			if m == nil {
				m = map[ident.ClientID][]*compiledAgreement{}
				e.agreements[s] = m
			}
			for _, c := range a.consumers {
				m[c] = append(m[c], ca)
			}
		}
	}
	var b strings.Builder
	ps := cedar.NewPolicySet()
	add := func(id, text string) error {
		var p cedar.Policy
		if err := p.UnmarshalCedar([]byte(text)); err != nil {
			return fmt.Errorf("policy: compile %s: %w", id, err)
		}
		ps.Add(cedar.PolicyID(id), &p)
		fmt.Fprintf(&b, "@id(%q)\n%s\n", id, text)
		return nil
	}
	if err := add("base", "permit (principal, action, resource);"); err != nil {
		return nil, err
	}
	for _, r := range d.Rules {
		cond := e.condition(r.When)
		switch r.AppliesAt {
		case SideProvider, SideConsumer:
			cond = fmt.Sprintf(`context.side == %q && %s`, r.AppliesAt, cond)
		}
		// A permit per rule names, in an allowed request's decision, the
		// rules that governed it.
		if err := add("applies/"+r.ID, fmt.Sprintf("permit (principal, action, resource) when { %s };", cond)); err != nil {
			return nil, err
		}
		if r.Effect == "deny" {
			id := "rule/" + r.ID
			if err := add(id, fmt.Sprintf("forbid (principal, action, resource) when { %s };", cond)); err != nil {
				return nil, err
			}
			e.explain[cedar.PolicyID(id)] = explanation{rule: r.ID, text: r.Description}
			continue
		}
		for _, q := range r.Require {
			id := "rule/" + r.ID + "/" + q
			if err := add(id, fmt.Sprintf("forbid (principal, action, resource) when { %s } unless { %s };", cond, requirement(q))); err != nil {
				return nil, err
			}
			e.explain[cedar.PolicyID(id)] = explanation{rule: r.ID, requirement: q, text: r.Description}
		}
	}
	for _, s := range d.Suspensions {
		id := "suspension/" + s.ID
		if err := add(id, fmt.Sprintf("forbid (principal, action, resource) when { %s };", e.condition(s.When))); err != nil {
			return nil, err
		}
		e.explain[cedar.PolicyID(id)] = explanation{rule: s.ID, text: s.Reason, suspension: true}
	}
	e.text = b.String()
	e.ps = ps
	sum := sha256.Sum256([]byte(e.text))
	e.version = fmt.Sprintf("%s/%s/%x", inst, version, sum[:6])
	return e, nil
}

// condition is a When as a Cedar expression.
func (e *Engine) condition(w When) string {
	parts := []string{"true"}
	switch w.Flow {
	case "cross-border":
		parts = append(parts, "context.cross_border")
	case "domestic":
		parts = append(parts, "!context.cross_border")
	}
	if len(w.Classes) > 0 {
		parts = append(parts, fmt.Sprintf("%s.contains(context.class)", cedarList(w.Classes)))
	}
	if len(w.Flags) > 0 {
		parts = append(parts, fmt.Sprintf("context.flags.containsAny(%s)", cedarList(w.Flags)))
	}
	return strings.Join(parts, " && ")
}

// requirement is a requirement as a Cedar expression.
func requirement(q string) string {
	switch q {
	case ReqAgreement:
		return "context.agreement.active"
	case ReqPurposeDeclared:
		return `context.purpose != ""`
	case ReqPurpose:
		return "context.agreement.active && context.agreement.purposes.contains(context.purpose)"
	case ReqLegalBasis:
		return "context.agreement.active && context.agreement.legal_basis.contains(context.legal_basis)"
	case ReqDestination:
		return "context.agreement.active && context.agreement.destinations.contains(context.destination)"
	}
	kind := strings.TrimPrefix(q, reqRefPrefix)
	return fmt.Sprintf("context.agreement.active && context.agreement.references.contains(%q)", kind)
}

// cedarList writes validated tokens as a Cedar set literal.
func cedarList(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

func stringSet(vs []string) cedar.Set {
	vals := make([]cedar.Value, len(vs))
	for i, v := range vs {
		vals[i] = cedar.String(v)
	}
	return cedar.NewSet(vals...)
}

func agreementRecord(a *Agreement) cedar.Record {
	kinds := make([]string, 0, len(a.References))
	for _, r := range a.References {
		kinds = append(kinds, r.Kind)
	}
	return cedar.NewRecord(cedar.RecordMap{
		"active":       cedar.True,
		"purposes":     stringSet(a.Purposes),
		"legal_basis":  stringSet(a.LegalBasis),
		"destinations": stringSet(a.Destinations),
		"references":   stringSet(kinds),
	})
}

var noAgreement = cedar.NewRecord(cedar.RecordMap{
	"active":       cedar.False,
	"purposes":     cedar.NewSet(),
	"legal_basis":  cedar.NewSet(),
	"destinations": cedar.NewSet(),
	"references":   cedar.NewSet(),
})

// Version names the compiled policy: instance, configuration and a hash
// of the policy text.
func (e *Engine) Version() string { return e.version }

// Text returns the compiled Cedar policies, for operators and audits.
func (e *Engine) Text() string { return e.text }

// Agreement returns an agreement by id, or nil.
func (e *Engine) Agreement(id string) *Agreement { return e.byID[id] }

// Class returns a service's declared class.
func (e *Engine) Class(s ident.ServiceID) (*ServiceClass, bool) {
	c, ok := e.classes[s]
	if !ok {
		return nil, false
	}
	return &c.ServiceClass, true
}

// AgreementState says why no usable agreement was found.
type AgreementState string

// States of the agreement found for a request.
const (
	AgreementActive     AgreementState = "active"
	AgreementNone       AgreementState = "none"
	AgreementSuspended  AgreementState = "suspended"
	AgreementTerminated AgreementState = "terminated"
	AgreementExpired    AgreementState = "expired"
	AgreementNotYet     AgreementState = "not yet valid"
)

// Match is the agreement chosen for a request.
type Match struct {
	Agreement *Agreement // nil: none at all
	State     AgreementState
	rec       cedar.Record
	compiled  *compiledAgreement // the agreement as compiled, when FindAgreement made the match
}

// FindAgreement chooses the agreement under which client calls service:
// an active, valid one, preferring one that allows the declared purpose;
// failing that, the nearest to usable, so the refusal can say why.
func (e *Engine) FindAgreement(client ident.ClientID, svc ident.ServiceID, purpose string, now time.Time) Match {
	byConsumer := e.agreements[svc]
	best := Match{State: AgreementNone, rec: noAgreement}
	if byConsumer == nil {
		return best
	}
	consider := func(list []*compiledAgreement) bool {
		for _, a := range list {
			st := a.state(now)
			if st == AgreementActive {
				if best.State != AgreementActive || (purpose != "" && slices.Contains(a.Purposes, purpose) && !slices.Contains(best.Agreement.Purposes, purpose)) {
					best = Match{Agreement: a.Agreement, State: st, rec: a.rec, compiled: a}
				}
				if purpose == "" || slices.Contains(a.Purposes, purpose) {
					return true
				}
				continue
			}
			if rank(st) > rank(best.State) {
				best = Match{Agreement: a.Agreement, State: st, rec: noAgreement, compiled: a}
			}
		}
		return false
	}
	if consider(byConsumer[client]) {
		return best
	}
	if client.IsSubsystem() {
		consider(byConsumer[client.Member()])
	}
	return best
}

// rank orders agreement states from least to most usable.
func rank(s AgreementState) int {
	switch s {
	case AgreementTerminated:
		return 1
	case AgreementExpired:
		return 2
	case AgreementNotYet:
		return 3
	case AgreementSuspended:
		return 4
	case AgreementActive:
		return 5
	}
	return 0
}

func (a *compiledAgreement) state(now time.Time) AgreementState {
	switch {
	case a.Status == StatusSuspended:
		return AgreementSuspended
	case a.Status == StatusTerminated:
		return AgreementTerminated
	case now.Before(a.ValidFrom):
		return AgreementNotYet
	case a.ValidUntil != nil && !now.Before(*a.ValidUntil):
		return AgreementExpired
	}
	return AgreementActive
}

// Request is what a decision needs to know. Client, the provider's
// instance and the side come from verified identities, never from the
// caller's word; Purpose and LegalBasis are what the request declares.
type Request struct {
	Side       string
	Client     ident.ClientID
	Service    ident.ServiceID
	Purpose    string
	LegalBasis string
	// Class is the service's declared class (from the provider's
	// instance); Agreement the agreement found there.
	Class     *ServiceClass
	Agreement Match
}

// Decision is the outcome, as the message log keeps it.
type Decision struct {
	Allow bool
	// Rules are the rules that governed the request (allowed), or those
	// that refused it.
	Rules     []string
	Agreement string
	Version   string
	// Message says, for a refusal, which rule refused and what would be
	// needed.
	Message string
}

var (
	actionCall = cedar.NewEntityUID("Action", "call")
	principal  = cedar.NewEntityUID("Client", "caller")
	resource   = cedar.NewEntityUID("Service", "called")
)

// Decide decides one request under this instance's rules.
func (e *Engine) Decide(r *Request) Decision {
	if r.Agreement.Agreement != nil && r.Agreement.compiled == nil {
		return e.decide(r) // a match FindAgreement did not make
	}
	k := decideKey{side: r.Side, purpose: r.Purpose, basis: r.LegalBasis, client: r.Client, service: r.Service,
		agreement: r.Agreement.compiled, state: r.Agreement.State}
	if c := r.Class; c != nil {
		k.hasClass, k.classID, k.class = true, c.ID, c.Class
		if len(c.Flags) > 0 {
			var b []byte
			for _, f := range c.Flags {
				b = appendPrefixed(b, f)
			}
			k.flags = string(b)
		}
	}
	d, ok := e.decided.get(k)
	if !ok {
		d = e.decide(r)
		e.decided.put(k, d)
	}
	d.Rules = slices.Clone(d.Rules) // the caller's to keep
	return d
}

// decide evaluates the rules.
func (e *Engine) decide(r *Request) Decision {
	d := Decision{Version: e.version}
	if r.Agreement.Agreement != nil && r.Agreement.State == AgreementActive {
		d.Agreement = r.Agreement.Agreement.ID
	}
	if r.Class == nil {
		d.Message = fmt.Sprintf("service %s declares no data class in the shared configuration of %s; the authority's operator must declare one (PUT /api/v1/policy/services)", r.Service, r.Service.Provider.Instance)
		d.Rules = []string{"data-class-required"}
		return d
	}
	other := r.Client.Instance // where the data goes, seen from the provider
	if r.Side == SideConsumer {
		other = r.Service.Provider.Instance
	}
	rec := r.Agreement.rec
	if rec.Len() == 0 {
		rec = noAgreement
	}
	var flagsSet cedar.Set
	if c := e.classes[r.Service]; c != nil {
		flagsSet = c.flags // compiled once with the configuration
	} else {
		flagsSet = stringSet(r.Class.Flags)
	}
	ctx := cedar.NewRecord(cedar.RecordMap{
		"side":         cedar.String(r.Side),
		"cross_border": cedar.Boolean(r.Client.Instance != r.Service.Provider.Instance),
		"destination":  cedar.String(other),
		"class":        cedar.String(r.Class.Class),
		"flags":        flagsSet,
		"purpose":      cedar.String(r.Purpose),
		"legal_basis":  cedar.String(r.LegalBasis),
		"agreement":    rec,
	})
	dec, diag := cedar.Authorize(e.ps, nil, cedar.Request{Principal: principal, Action: actionCall, Resource: resource, Context: ctx})
	if len(diag.Errors) > 0 {
		// A policy that cannot be evaluated refuses: fail closed.
		d.Rules = []string{string(diag.Errors[0].PolicyID)}
		d.Message = fmt.Sprintf("the %s policy could not be evaluated (%s)", e.instance, diag.Errors[0].Message)
		return d
	}
	if dec == cedar.Allow {
		if msg := vocabulary(r); msg != "" {
			d.Rules, d.Message = []string{RuleVocabulary}, msg
			return d
		}
		d.Allow = true
		for _, rs := range diag.Reasons {
			if id, ok := strings.CutPrefix(string(rs.PolicyID), "applies/"); ok {
				d.Rules = append(d.Rules, id)
			}
		}
		slices.Sort(d.Rules)
		return d
	}
	var msgs []string
	for _, rs := range diag.Reasons {
		x := e.explain[rs.PolicyID]
		d.Rules = append(d.Rules, string(rs.PolicyID))
		msgs = append(msgs, e.message(x, r, other))
	}
	slices.Sort(d.Rules)
	slices.Sort(msgs)
	d.Message = strings.Join(slices.Compact(msgs), "; ")
	return d
}

// RuleVocabulary names the refusal of a purpose or legal basis that the
// agreement a request falls under does not declare: what reaches the
// regulators' reports is the agreement's words, never a caller's free
// text.
const RuleVocabulary = "declared-vocabulary"

// vocabulary checks, at the provider's gateway, the declared purpose and
// legal basis against the active agreement the request falls under,
// where it lists them; it returns the refusal's message, or "". The
// agreement is the provider's authority's instrument: its gateway is the
// one that holds callers to it.
func vocabulary(r *Request) string {
	a := r.Agreement.Agreement
	if r.Side != SideProvider || a == nil || r.Agreement.State != AgreementActive {
		return ""
	}
	if r.Purpose != "" && len(a.Purposes) > 0 && !slices.Contains(a.Purposes, r.Purpose) {
		return fmt.Sprintf("%s: purpose %q is not one agreement %s declares (declared: %s)", RuleVocabulary, r.Purpose, a.ID, strings.Join(a.Purposes, ", "))
	}
	if r.LegalBasis != "" && len(a.LegalBasis) > 0 && !slices.Contains(a.LegalBasis, r.LegalBasis) {
		return fmt.Sprintf("%s: legal basis %q is not one agreement %s declares (declared: %s)", RuleVocabulary, r.LegalBasis, a.ID, strings.Join(a.LegalBasis, ", "))
	}
	return ""
}

// message explains one refusal: which rule, and what would be needed.
func (e *Engine) message(x explanation, r *Request, other string) string {
	what := describe(r.Class)
	if x.suspension {
		return fmt.Sprintf("%s: the %s authority has suspended these flows of %s data (%s)", x.rule, e.instance, what, x.text)
	}
	head := fmt.Sprintf("%s rule %s", e.instance, x.rule)
	if x.text != "" {
		head += " (" + x.text + ")"
	}
	ag := r.Agreement
	agName := "the agreement"
	if ag.Agreement != nil {
		agName = "agreement " + ag.Agreement.ID
	}
	noActive := func() string {
		switch ag.State {
		case AgreementNone:
			return fmt.Sprintf("%s requires an active agreement covering %s and %s; none is registered", head, r.Client, r.Service)
		case AgreementSuspended, AgreementTerminated:
			if ag.Agreement != nil && ag.Agreement.StatusReason != "" {
				return fmt.Sprintf("%s requires an active agreement covering %s and %s; %s is %s (%s)", head, r.Client, r.Service, agName, ag.State, ag.Agreement.StatusReason)
			}
			fallthrough
		default:
			return fmt.Sprintf("%s requires an active agreement covering %s and %s; %s is %s", head, r.Client, r.Service, agName, ag.State)
		}
	}
	switch q := x.requirement; {
	case q == "":
		return fmt.Sprintf("%s refuses %s data to %s", head, what, other)
	case q == ReqPurposeDeclared:
		return fmt.Sprintf("%s requires a declared purpose: send the X-Road-Purpose header", head)
	case ag.State != AgreementActive || ag.Agreement == nil:
		return noActive()
	case q == ReqAgreement:
		return noActive()
	case q == ReqPurpose && r.Purpose == "":
		return fmt.Sprintf("%s requires a purpose that %s allows: send the X-Road-Purpose header (allowed: %s)", head, agName, strings.Join(ag.Agreement.Purposes, ", "))
	case q == ReqPurpose:
		return fmt.Sprintf("%s: purpose %q is not one %s allows (allowed: %s)", head, r.Purpose, agName, strings.Join(ag.Agreement.Purposes, ", "))
	case q == ReqLegalBasis:
		return fmt.Sprintf("%s requires a legal basis that %s names: send the X-Road-Legal-Basis header", head, agName)
	case q == ReqDestination:
		return fmt.Sprintf("%s requires %s to list %s as a destination", head, agName, other)
	default:
		return fmt.Sprintf("%s requires %s to cite a %s reference", head, agName, strings.TrimPrefix(q, reqRefPrefix))
	}
}

// describe names a class and its flags: "restricted, personal, core".
func describe(c *ServiceClass) string {
	return strings.Join(append([]string{c.Class}, c.Flags...), ", ")
}
