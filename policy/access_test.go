package policy

import (
	"fmt"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

func TestAccessCompiledToCedar(t *testing.T) {
	one := sub("VN/GOV/HCMC/one-stop")
	other := sub("VN/GOV/DN/one-stop")
	grp, err := ident.ParseGroup("VN/provincial-one-stops")
	if err != nil {
		t.Fatal(err)
	}
	a, err := CompileAccess(companies, []Grant{
		{Subsystem: &one, Endpoint: "GET /companies/*"},
		{Group: &grp, Endpoint: "GET /"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(a.Text(), `principal in Group::"VN/provincial-one-stops"`) {
		t.Errorf("compiled text:\n%s", a.Text())
	}
	for _, c := range []struct {
		name      string
		client    ident.ClientID
		groups    []ident.GroupID
		endpoints []string
		want      bool
	}{
		{"granted endpoint", one, nil, []string{"GET /companies/*"}, true},
		{"no matching endpoint", one, nil, nil, false},
		{"endpoint granted to someone else", other, nil, []string{"GET /companies/*"}, false},
		{"through the group", other, []ident.GroupID{grp}, []string{"GET /"}, true},
		{"group, other endpoint", other, []ident.GroupID{grp}, []string{"GET /companies/*"}, false},
		{"nobody", sub("SG/GOV/SPF/anti-scam"), nil, []string{"GET /"}, false},
	} {
		if got := a.Allowed(c.client, c.groups, c.endpoints); got != c.want {
			t.Errorf("%s: allowed = %v, want %v", c.name, got, c.want)
		}
	}
	// No rights: nothing is allowed.
	none, _ := CompileAccess(companies, nil)
	if none.Allowed(one, nil, []string{"GET /"}) {
		t.Error("a service without rights allowed a call")
	}
	// A pattern cannot break out of its string literal.
	if _, err := CompileAccess(companies, []Grant{{Subsystem: &one, Endpoint: "GET /x\") || true || (\""}}); err != nil {
		t.Fatalf("quoted pattern: %v", err)
	} else if b, _ := CompileAccess(companies, []Grant{{Subsystem: &one, Endpoint: "GET /x\") || true || (\""}}); b.Allowed(one, nil, nil) {
		t.Error("an injected pattern granted access")
	}
	if _, err := CompileAccess(companies, []Grant{{Subsystem: &one, Endpoint: "GET /\x01"}}); err == nil {
		t.Error("a control character was compiled")
	}
}

// BenchmarkAccess is one access decision on a service with 50 rights:
// go test -run=NONE -bench=Access -benchmem ./policy
func BenchmarkAccess(b *testing.B) {
	var grants []Grant
	for i := range 50 {
		c := sub("VN/GOV/M" + strings.Repeat("X", i%5) + string(rune('A'+i%26)) + "/sys")
		grants = append(grants, Grant{Subsystem: &c, Endpoint: "GET /companies/*"})
	}
	one := sub("VN/GOV/HCMC/one-stop")
	grants = append(grants, Grant{Subsystem: &one, Endpoint: "GET /companies/*"})
	a, err := CompileAccess(companies, grants)
	if err != nil {
		b.Fatal(err)
	}
	eps := []string{"GET /companies/*"}
	b.ReportAllocs()
	for b.Loop() {
		if !a.Allowed(one, nil, eps) {
			b.Fatal("denied")
		}
	}
}

// TestAccessDecisionsKeptApart asks one Access the same questions many
// times, in varying order: each answer is the one a fresh Access gives,
// whatever was asked before. Inputs that would run together if simply
// joined are among them.
func TestAccessDecisionsKeptApart(t *testing.T) {
	one, other := sub("VN/GOV/HCMC/one-stop"), sub("VN/GOV/DN/one-stop")
	grp, _ := ident.ParseGroup("VN/provincial-one-stops")
	grp2, _ := ident.ParseGroup("VN/provincial")
	grants := []Grant{
		{Subsystem: &one, Endpoint: "GET /a"},
		{Subsystem: &one, Endpoint: "GET /a;1:b"},
		{Group: &grp, Endpoint: "GET /"},
	}
	type q struct {
		client    ident.ClientID
		groups    []ident.GroupID
		endpoints []string
	}
	qs := []q{
		{one, nil, []string{"GET /a"}},
		{one, nil, []string{"GET /a;1:b"}},
		{one, nil, []string{"GET /a", "b"}},
		{one, nil, []string{"GET /a", "GET /b"}},
		{one, nil, nil},
		{other, nil, []string{"GET /a"}},
		{other, []ident.GroupID{grp}, []string{"GET /"}},
		{other, []ident.GroupID{grp2}, []string{"GET /"}},
		{other, []ident.GroupID{grp2, grp}, []string{"GET /"}},
		{other, []ident.GroupID{grp}, nil},
		{other, nil, []string{"GET /"}},
	}
	want := make([]bool, len(qs))
	allowed := 0
	for i, c := range qs {
		fresh, err := CompileAccess(companies, grants)
		if err != nil {
			t.Fatal(err)
		}
		want[i] = fresh.Allowed(c.client, c.groups, c.endpoints)
		if want[i] {
			allowed++
		}
	}
	if allowed == 0 || allowed == len(qs) {
		t.Fatalf("%d of %d allowed: the cases should mix", allowed, len(qs))
	}
	a, err := CompileAccess(companies, grants)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 5 {
		for j := range qs {
			i := (j*7 + round*3) % len(qs)
			c := qs[i]
			if got := a.Allowed(c.client, c.groups, c.endpoints); got != want[i] {
				t.Fatalf("round %d, question %d: allowed = %v, want %v", round, i, got, want[i])
			}
		}
	}
	if n := a.decided.len(); n != int64(len(qs)) {
		t.Errorf("%d decisions kept, want %d (one per question)", n, len(qs))
	}
	// Past the bound, the decisions kept are forgotten, not added to
	// without end, and answers stay right.
	for i := range accessCacheMax + 10 {
		if a.Allowed(other, nil, []string{fmt.Sprintf("GET /x/%d", i)}) {
			t.Fatal("an endpoint granted to nobody was allowed")
		}
	}
	if n := a.decided.len(); n < 1 || n > accessCacheMax {
		t.Errorf("%d decisions kept, want between 1 and %d", n, accessCacheMax)
	}
	for i, c := range qs {
		if got := a.Allowed(c.client, c.groups, c.endpoints); got != want[i] {
			t.Fatalf("after forgetting, question %d: allowed = %v, want %v", i, got, want[i])
		}
	}
}

func BenchmarkAccessAllowed(b *testing.B) {
	one := sub("VN/GOV/HCMC/one-stop")
	grp, _ := ident.ParseGroup("VN/provincial-one-stops")
	a, err := CompileAccess(companies, []Grant{{Subsystem: &one, Endpoint: "GET /companies/*"}, {Group: &grp, Endpoint: "GET /"}})
	if err != nil {
		b.Fatal(err)
	}
	groups, eps := []ident.GroupID{grp}, []string{"GET /companies/*"}
	b.Run("kept", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !a.Allowed(one, groups, eps) {
				b.Fatal("denied")
			}
		}
	})
	b.Run("evaluated", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if !a.decide(one, groups, eps) {
				b.Fatal("denied")
			}
		}
	})
}
