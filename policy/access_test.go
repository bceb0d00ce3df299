package policy

import (
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
