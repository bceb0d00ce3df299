package policy

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
)

var (
	now       = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	persons   = svc("VN/GOV/MPS/residents/persons")
	scam      = svc("VN/GOV/MPS/cybercrime/scam-reports")
	companies = svc("VN/GOV/MOF/business-registry/companies")
	stats     = svc("VN/GOV/GSO/statistics/census")
	hcmc      = sub("VN/GOV/HCMC/one-stop")
	spf       = sub("SG/GOV/SPF/anti-scam")
	sgScam    = svc("SG/GOV/SPF/anti-scam/scam-reports")
	mps       = sub("VN/GOV/MPS/cybercrime")
)

func svc(s string) ident.ServiceID {
	id, err := ident.ParseService(s)
	if err != nil {
		panic(err)
	}
	return id
}

func sub(s string) ident.ClientID {
	id, err := ident.ParseSubsystem(s)
	if err != nil {
		panic(err)
	}
	return id
}

func vnServices() []ServiceClass {
	return []ServiceClass{
		{ID: persons, Class: ClassRestricted, Flags: []string{FlagPersonal, FlagCore}},
		{ID: scam, Class: ClassConfidential, Flags: []string{FlagPersonal}},
		{ID: companies, Class: ClassPublic},
		{ID: stats, Class: ClassInternal, Flags: []string{FlagImportant}},
	}
}

// agreementIn returns an agreement for both test clients and all the test
// services in the given state ("" for none).
func agreementIn(state string) []Agreement {
	if state == "absent" {
		return nil
	}
	a := Agreement{
		ID: "A-1", Consumers: []string{hcmc.String(), spf.String()},
		Services:     []ident.ServiceID{persons, scam, companies, stats},
		Purposes:     []string{"p-ok"},
		Destinations: []string{"SG"},
		ValidFrom:    now.Add(-24 * time.Hour),
		References:   []Reference{{RefTransferAssessment, "TIA-1"}, {RefApproval, "APP-1"}},
		Status:       StatusActive,
	}
	switch state {
	case "suspended":
		a.Status, a.StatusReason = StatusSuspended, "safeguards under review"
	case "expired":
		until := now.Add(-time.Hour)
		a.ValidFrom, a.ValidUntil = now.Add(-48*time.Hour), &until
	}
	return []Agreement{a}
}

func vnEngine(t testing.TB, state string) *Engine {
	t.Helper()
	rules, err := National("VN")
	if err != nil {
		t.Fatal(err)
	}
	e, err := Compile("VN", "7", &Document{Services: vnServices(), Agreements: agreementIn(state), Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func decide(e, provider *Engine, side string, client ident.ClientID, s ident.ServiceID, purpose string) Decision {
	class, _ := provider.Class(s)
	return e.Decide(&Request{Side: side, Client: client, Service: s, Purpose: purpose, Class: class,
		Agreement: provider.FindAgreement(client, s, purpose, now)})
}

// TestDecisionTable: every VN rule × (domestic, cross-border) ×
// (agreement active, suspended, expired, absent) × (purpose declared and
// allowed, missing, not allowed), at the provider's gateway, against what
// the rules say in plain words.
func TestDecisionTable(t *testing.T) {
	type svcCase struct {
		name string
		id   ident.ServiceID
		// allowed says what the rules of DESIGN §4 allow.
		allowed func(crossBorder, active bool, purposeOK bool) bool
		rule    string // the rule that refuses, when one does
	}
	services := []svcCase{
		{"core personal (persons)", persons, func(xb, active, ok bool) bool { return !xb && active && ok }, ""},
		{"personal (scam reports)", scam, func(xb, active, ok bool) bool { return active && ok }, ""},
		{"important (census)", stats, func(xb, active, ok bool) bool { return !xb || active }, ""},
		{"public (companies)", companies, func(xb, active, ok bool) bool { return true }, ""},
	}
	for _, state := range []string{"active", "suspended", "expired", "absent"} {
		e := vnEngine(t, state)
		for _, sc := range services {
			for _, flow := range []string{"domestic", "cross-border"} {
				client := hcmc
				if flow == "cross-border" {
					client = spf
				}
				for _, purpose := range []string{"p-ok", "", "p-other"} {
					name := fmt.Sprintf("%s/%s/agreement %s/purpose %q", sc.name, flow, state, purpose)
					t.Run(name, func(t *testing.T) {
						d := decide(e, e, SideProvider, client, sc.id, purpose)
						// A purpose the active agreement does not declare is
						// refused whatever the rules need.
						want := sc.allowed(flow == "cross-border", state == "active", purpose == "p-ok") && (state != "active" || purpose != "p-other")
						if d.Allow != want {
							t.Fatalf("allow = %v, want %v (rules %v: %s)", d.Allow, want, d.Rules, d.Message)
						}
						if !d.Allow && (d.Message == "" || len(d.Rules) == 0) {
							t.Fatalf("a refusal without rules or message: %+v", d)
						}
						if d.Allow && state == "active" && sc.id != companies && d.Agreement != "A-1" {
							t.Errorf("allowed under agreement %q, want A-1", d.Agreement)
						}
						if !strings.HasPrefix(d.Version, "VN/7/") {
							t.Errorf("version %q", d.Version)
						}
					})
				}
			}
		}
	}
}

// Purposes and legal bases reach the regulators' reports: under an
// agreement that declares them, a request may declare only those, even
// where no rule asks for one (public data here).
func TestDeclaredVocabulary(t *testing.T) {
	rules, err := National("VN")
	if err != nil {
		t.Fatal(err)
	}
	ags := agreementIn("active")
	ags[0].LegalBasis = []string{"decree-13-2023"}
	e, err := Compile("VN", "9", &Document{Services: vnServices(), Agreements: ags, Rules: rules})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		purpose, basis string
		allow          bool
		want           string
	}{
		{"p-ok", "decree-13-2023", true, ""},
		{"", "", true, ""},
		{"p-ok", "", true, ""},
		{"p-other", "", false, `purpose "p-other" is not one agreement A-1 declares (declared: p-ok)`},
		{"p-ok", "whatever-law", false, `legal basis "whatever-law" is not one agreement A-1 declares (declared: decree-13-2023)`},
	} {
		class, _ := e.Class(companies)
		d := e.Decide(&Request{Side: SideProvider, Client: hcmc, Service: companies, Purpose: c.purpose, LegalBasis: c.basis, Class: class,
			Agreement: e.FindAgreement(hcmc, companies, c.purpose, now)})
		if d.Allow != c.allow || !strings.Contains(d.Message, c.want) {
			t.Errorf("purpose %q, basis %q: allow %v (%s), want %v (%s)", c.purpose, c.basis, d.Allow, d.Message, c.allow, c.want)
		}
		if !d.Allow && !slices.Equal(d.Rules, []string{RuleVocabulary}) {
			t.Errorf("purpose %q, basis %q: refused by %v", c.purpose, c.basis, d.Rules)
		}
	}
}

// The consumer's gateway decides under its own country's rules: VN
// requires a declared purpose for personal data, whatever the flow.
func TestConsumerSide(t *testing.T) {
	vn := vnEngine(t, "active")
	sgRules, _ := National("SG")
	sg, err := Compile("SG", "3", &Document{
		Services: []ServiceClass{{ID: sgScam, Class: ClassConfidential, Flags: []string{FlagPersonal}}},
		Agreements: []Agreement{{ID: "SG-1", Consumers: []string{"VN/GOV/MPS"}, Services: []ident.ServiceID{sgScam}, Purposes: []string{"scam-investigation"},
			Destinations: []string{"VN"}, ValidFrom: now.Add(-time.Hour), References: []Reference{{RefComparableProtection, "MoU"}}, Status: StatusActive}},
		Rules: sgRules,
	})
	if err != nil {
		t.Fatal(err)
	}
	// MPS (VN) calls SPF (SG): VN decides as consumer, SG as provider.
	for _, c := range []struct {
		purpose          string
		vnAllow, sgAllow bool
	}{
		{"scam-investigation", true, true},
		{"", false, true}, // SG's provider rule asks no purpose; VN's consumer rule does
		// Neither country's rules name the purpose, but the agreement
		// declares its purposes: the provider's side refuses another.
		{"marketing", true, false},
	} {
		if d := decide(vn, sg, SideConsumer, mps, sgScam, c.purpose); d.Allow != c.vnAllow {
			t.Errorf("VN consumer, purpose %q: %+v", c.purpose, d)
		}
		if d := decide(sg, sg, SideProvider, mps, sgScam, c.purpose); d.Allow != c.sgAllow {
			t.Errorf("SG provider, purpose %q: %+v", c.purpose, d)
		}
	}
	// The agreement found through the member matches a subsystem of it.
	if d := decide(sg, sg, SideProvider, mps, sgScam, "scam-investigation"); d.Agreement != "SG-1" {
		t.Errorf("agreement %q", d.Agreement)
	}
	// SG refuses when the agreement does not list the destination.
	sg2, _ := Compile("SG", "4", &Document{
		Services: []ServiceClass{{ID: sgScam, Class: ClassConfidential, Flags: []string{FlagPersonal}}},
		Agreements: []Agreement{{ID: "SG-1", Consumers: []string{"VN/GOV/MPS"}, Services: []ident.ServiceID{sgScam}, Purposes: []string{"scam-investigation"},
			Destinations: []string{"TH"}, ValidFrom: now.Add(-time.Hour), References: []Reference{{RefComparableProtection, "MoU"}}, Status: StatusActive}},
		Rules: sgRules,
	})
	d := decide(sg2, sg2, SideProvider, mps, sgScam, "scam-investigation")
	if d.Allow || !strings.Contains(d.Message, "to list VN as a destination") {
		t.Errorf("destination not listed: %+v", d)
	}
}

func TestMessagesSayWhatIsNeeded(t *testing.T) {
	for _, c := range []struct {
		state, purpose string
		client         ident.ClientID
		s              ident.ServiceID
		want           []string
	}{
		{"active", "p-ok", spf, persons, []string{"vn-core-stays", "core data never leaves Vietnam", "restricted, personal, core", "to SG"}},
		{"absent", "p-ok", spf, scam, []string{"requires an active agreement", "none is registered"}},
		{"suspended", "p-ok", spf, scam, []string{"agreement A-1 is suspended (safeguards under review)"}},
		{"expired", "p-ok", spf, scam, []string{"agreement A-1 is expired"}},
		{"active", "", spf, scam, []string{"send the X-Road-Purpose header", "allowed: p-ok"}},
		{"active", "p-other", spf, scam, []string{`purpose "p-other" is not one agreement A-1 allows`}},
	} {
		d := decide(vnEngine(t, c.state), vnEngine(t, c.state), SideProvider, c.client, c.s, c.purpose)
		for _, w := range c.want {
			if d.Allow || !strings.Contains(d.Message, w) {
				t.Errorf("%s/%q: message %q lacks %q", c.state, c.purpose, d.Message, w)
			}
		}
	}
	// A service without a declared class is refused.
	e := vnEngine(t, "active")
	d := decide(e, e, SideProvider, hcmc, svc("VN/GOV/MOF/business-registry/undeclared"), "p-ok")
	if d.Allow || !strings.Contains(d.Message, "declares no data class") {
		t.Errorf("undeclared service: %+v", d)
	}
}

// The stop switch: a suspension of cross-border confidential flows stops
// them even under an active agreement, and leaves domestic ones alone.
func TestSuspension(t *testing.T) {
	rules, _ := National("VN")
	e, err := Compile("VN", "8", &Document{Services: vnServices(), Agreements: agreementIn("active"), Rules: rules,
		Suspensions: []Suspension{{ID: "stop-1", When: When{Flow: "cross-border", Classes: []string{ClassConfidential}}, Reason: "data breach under investigation", Since: now}}})
	if err != nil {
		t.Fatal(err)
	}
	d := decide(e, e, SideProvider, spf, scam, "p-ok")
	if d.Allow || d.Rules[0] != "suspension/stop-1" || !strings.Contains(d.Message, "data breach under investigation") {
		t.Errorf("suspended flow: %+v", d)
	}
	if d := decide(e, e, SideProvider, hcmc, scam, "p-ok"); !d.Allow {
		t.Errorf("domestic flow stopped: %+v", d)
	}
}

// Anything unknown rejects the document, naming it.
func TestUnknownRejected(t *testing.T) {
	base := `{"services":[{"id":"VN/GOV/MPS/residents/persons","data_class":"restricted","flags":["personal"]}],
	  "rules":[{"id":"r1","applies_at":"provider","when":{"flow":"cross-border","flags":["personal"]},"effect":"require","require":["agreement"]}]}`
	if d, err := DecodeDocument([]byte(base)); err != nil {
		t.Fatal(err)
	} else if _, err := Compile("VN", "1", d); err != nil {
		t.Fatalf("base document: %v", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"flow":"cross-border"`, `"flow":"cross-border","country":"SG"`, `unknown field "country"`},
		{`"flow":"cross-border"`, `"flow":"sideways"`, `flow: unknown value "sideways"`},
		{`"require":["agreement"]`, `"require":["reference:blessing"]`, `unknown value "reference:blessing"`},
		{`"effect":"require"`, `"effect":"maybe"`, `effect: unknown value "maybe"`},
		{`"flags":["personal"]}]`, `"flags":["secret"]}]`, `unknown value "secret"`},
		{`"data_class":"restricted"`, `"data_class":"top-secret"`, `data_class: unknown value "top-secret"`},
		{`"applies_at":"provider"`, `"applies_at":"everywhere"`, `applies_at: unknown value`},
		{`"VN/GOV/MPS/residents/persons"`, `"SG/GOV/MPS/residents/persons"`, `not a service of instance VN`},
	} {
		doc := strings.Replace(base, c.from, c.to, 1)
		d, err := DecodeDocument([]byte(doc))
		if err == nil {
			_, err = Compile("VN", "1", d)
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one naming %q", c.to, err, c.want)
		}
	}
	bad := agreementIn("active")
	bad[0].Status = "pending"
	if _, err := Compile("VN", "1", &Document{Agreements: bad}); err == nil || !strings.Contains(err.Error(), `status: unknown value "pending"`) {
		t.Errorf("unknown status: %v", err)
	}
	bad = agreementIn("suspended")
	bad[0].StatusReason = "line one\nforged line"
	if _, err := Compile("VN", "1", &Document{Agreements: bad}); err == nil || !strings.Contains(err.Error(), `status_reason: at most 500 characters, no control characters`) {
		t.Errorf("status reason with a newline: %v", err)
	}
	bad = agreementIn("active")
	bad[0].References = []Reference{{"blessing", "x"}}
	if _, err := Compile("VN", "1", &Document{Agreements: bad}); err == nil || !strings.Contains(err.Error(), `kind: unknown value "blessing"`) {
		t.Errorf("unknown reference kind: %v", err)
	}
}

// BenchmarkDecide is one decision (agreement look-up and policy
// evaluation) with 1,000 agreements in the configuration:
// go test -run=NONE -bench=Decide -benchmem ./policy
func BenchmarkDecide(b *testing.B) {
	rules, _ := National("VN")
	var ags []Agreement
	for i := range 1000 {
		a := agreementIn("active")[0]
		a.ID = fmt.Sprintf("A-%d", i)
		a.Consumers = []string{fmt.Sprintf("SG/GOV/M%d/sub", i)}
		ags = append(ags, a)
	}
	ags[500].Consumers = []string{spf.String()}
	e, err := Compile("VN", "1", &Document{Services: vnServices(), Agreements: ags, Rules: rules})
	if err != nil {
		b.Fatal(err)
	}
	class, _ := e.Class(scam)
	// kept: a decision made before (the usual case); evaluated: the
	// rules evaluated afresh, as for a request unlike any before.
	for _, tc := range []struct {
		name   string
		decide func(*Request) Decision
	}{{"kept", e.Decide}, {"evaluated", e.decide}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d := tc.decide(&Request{Side: SideProvider, Client: spf, Service: scam, Purpose: "p-ok", Class: class,
					Agreement: e.FindAgreement(spf, scam, "p-ok", now)})
				if !d.Allow {
					b.Fatal(d.Message)
				}
			}
		})
	}
}

// A service whose class the consumer's gateway does not know is still
// subject to its rules that do not depend on the class.
func TestUnknownClassStillMeetsClassFreeRules(t *testing.T) {
	e, err := Compile("SG", "1", &Document{Rules: []Rule{{ID: "sg-no-export", AppliesAt: SideConsumer, When: When{Flow: "cross-border"}, Effect: "deny"}}})
	if err != nil {
		t.Fatal(err)
	}
	d := e.Decide(&Request{Side: SideConsumer, Client: spf, Service: persons, Class: &ServiceClass{ID: persons}})
	if d.Allow || !strings.Contains(d.Message, "sg-no-export") {
		t.Fatalf("%+v", d)
	}
}

// TestDecisionsKeptMatchFresh asks one engine every combination of side,
// client, service, class, purpose, legal basis and agreement state, over
// and over in varying order, and checks each answer against the one an
// engine that has decided nothing before gives. Changing a kept answer's
// rules must not change the next.
func TestDecisionsKeptMatchFresh(t *testing.T) {
	type q struct {
		state string
		r     Request
	}
	// The national rules and one that wants a legal basis the agreement
	// names, for internal data.
	rules, err := National("VN")
	if err != nil {
		t.Fatal(err)
	}
	rules = append(rules, Rule{ID: "vn-test-basis", AppliesAt: "both", When: When{Flow: "any", Classes: []string{ClassInternal}},
		Effect: "require", Require: []string{ReqLegalBasis}})
	engine := func() *Engine {
		e, err := Compile("VN", "7", &Document{Services: vnServices(), Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	unknown := svc("VN/GOV/XYZ/registry/things") // no class in the deciding engine: the request's class counts
	var qs []q
	for _, state := range []string{"active", "suspended", "expired", "absent"} {
		ags := agreementIn(state)
		if len(ags) > 0 {
			ags[0].LegalBasis = []string{"decree-13"}
			ags[0].Services = append(ags[0].Services, unknown)
		}
		prov, err := Compile("VN", "7", &Document{Services: vnServices(), Agreements: ags, Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		// The same agreement is active 30 hours earlier: one agreement,
		// two states.
		for _, at := range []time.Time{now, now.Add(-30 * time.Hour), now.Add(-72 * time.Hour)} {
			for _, side := range []string{SideProvider, SideConsumer} {
				for _, client := range []ident.ClientID{hcmc, spf, mps} {
					for _, s := range []ident.ServiceID{persons, scam, companies, stats, sgScam, unknown} {
						for _, purpose := range []string{"", "p-ok", "p-other"} {
							for _, basis := range []string{"", "decree-13", "decree-99"} {
								classes := []*ServiceClass{nil}
								if c, _ := prov.Class(s); c != nil {
									classes[0] = c
								} else if side == SideConsumer {
									classes[0] = &ServiceClass{ID: s} // as a consumer's gateway does
								}
								if s == unknown {
									classes = []*ServiceClass{
										{ID: s, Class: ClassRestricted},
										{ID: s, Class: ClassRestricted, Flags: []string{FlagCore}},
										{ID: s, Class: ClassInternal},
									}
								}
								for _, class := range classes {
									qs = append(qs, q{state, Request{Side: side, Client: client, Service: s, Purpose: purpose, LegalBasis: basis,
										Class: class, Agreement: prov.FindAgreement(client, s, purpose, at)}})
								}
							}
						}
					}
				}
			}
		}
	}

	kept := engine()
	want := make([]Decision, len(qs))
	allowed := 0
	for i, c := range qs {
		want[i] = engine().Decide(&c.r)
		if want[i].Allow {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(qs) {
		t.Fatalf("%d of %d allowed: the questions should mix", allowed, len(qs))
	}
	for round := range 3 {
		for j := range qs {
			i := (j*37 + round*11) % len(qs)
			got := kept.Decide(&qs[i].r)
			if !reflect.DeepEqual(got, want[i]) {
				t.Fatalf("round %d, question %d (%s, %+v): got %+v, want %+v", round, i, qs[i].state, qs[i].r, got, want[i])
			}
			if len(got.Rules) > 0 {
				got.Rules[0] = "changed by the caller"
			}
		}
	}
	// Purposes are the caller's free text: past the bound, the decisions
	// kept are forgotten, not added to without end.
	r := qs[0].r
	for i := range decideCacheMax + 10 {
		r.Purpose = fmt.Sprintf("p-%d", i)
		kept.Decide(&r)
	}
	if n := kept.decided.len(); n < 1 || n > decideCacheMax {
		t.Errorf("%d decisions kept, want between 1 and %d", n, decideCacheMax)
	}
	if got := kept.Decide(&qs[1].r); !reflect.DeepEqual(got, want[1]) {
		t.Errorf("after forgetting: got %+v, want %+v", got, want[1])
	}
}

// TestDecisionsKeptAcrossDocuments: a kept decision is never given for
// an agreement it was not made under — one compiled again from a changed
// document, one changed after compiling, or a match made by hand.
func TestDecisionsKeptAcrossDocuments(t *testing.T) {
	rules, err := National("VN")
	if err != nil {
		t.Fatal(err)
	}
	doc := &Document{Services: vnServices(), Agreements: agreementIn("active"), Rules: rules}
	prov1, err := Compile("VN", "7", doc)
	if err != nil {
		t.Fatal(err)
	}
	// The same document, its transfer assessment withdrawn, compiled again.
	doc.Agreements[0].References = doc.Agreements[0].References[1:]
	prov2, err := Compile("VN", "8", doc)
	if err != nil {
		t.Fatal(err)
	}
	// And changed again after compiling: prov1 and prov2 must not see it.
	doc.Agreements[0].Purposes = append(doc.Agreements[0].Purposes, "p-new")
	doc.Agreements[0].References = nil

	// What an engine says of an agreement is what it compiled.
	if a := prov1.Agreement("A-1"); slices.Contains(a.Purposes, "p-new") || len(a.References) != 2 {
		t.Errorf("a change to the document after compiling reached the engine: %+v", a)
	}
	class, _ := prov1.Class(scam)
	req := func(m Match, purpose string) *Request {
		return &Request{Side: SideProvider, Client: spf, Service: scam, Purpose: purpose, Class: class, Agreement: m}
	}
	reqs := []*Request{
		req(prov1.FindAgreement(spf, scam, "p-ok", now), "p-ok"),
		req(prov2.FindAgreement(spf, scam, "p-ok", now), "p-ok"),
		req(prov1.FindAgreement(spf, scam, "p-new", now), "p-new"),
		req(Match{Agreement: prov1.Agreement("A-1"), State: AgreementActive}, "p-ok"),
		req(Match{Agreement: &Agreement{ID: "X-1"}, State: AgreementExpired}, "p-ok"),
		req(Match{Agreement: &Agreement{ID: "X-2"}, State: AgreementExpired}, "p-ok"),
	}
	// A match said to be active, with no agreement, is refused (it used
	// to panic while the refusal was worded).
	if d := prov1.Decide(req(Match{State: AgreementActive}, "p-ok")); d.Allow {
		t.Errorf("an active match without an agreement was allowed: %+v", d)
	}
	fresh := func(r *Request) Decision {
		e, err := Compile("VN", "1", &Document{Services: vnServices(), Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		return e.Decide(r)
	}
	want := make([]Decision, len(reqs))
	for i, r := range reqs {
		want[i] = fresh(r)
	}
	if !want[0].Allow || want[1].Allow || want[2].Allow || want[3].Allow || want[4].Allow || want[5].Allow {
		t.Fatalf("fresh decisions %+v: want only the first allowed (the second lacks its assessment, the third's purpose came later, the last three have no compiled agreement)", want)
	}
	if want[4].Message == want[5].Message {
		t.Fatalf("two agreements made by hand are refused in the same words: %q", want[4].Message)
	}
	for _, order := range [][]int{{0, 1, 2, 3, 4, 5}, {5, 4, 3, 2, 1, 0}, {1, 3, 5, 0, 2, 4}} {
		kept, err := Compile("VN", "1", &Document{Services: vnServices(), Rules: rules})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 {
			for _, i := range order {
				if got := kept.Decide(reqs[i]); !reflect.DeepEqual(got, want[i]) {
					t.Errorf("order %v, request %d: got %+v, want %+v", order, i, got, want[i])
				}
			}
		}
	}
}
