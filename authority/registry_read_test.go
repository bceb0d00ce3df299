package authority

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
)

// readKind is one kind of registry object the read APIs list, with a way
// to register one more of it.
type readKind struct {
	path  string
	key   string // the item's JSON field holding its id
	seed  []string
	add   func(id string) error
	extra func(i int) string // the id of the i-th object added while paging
}

func readKinds(t *testing.T, ta *testAuthority) []readKind {
	api := ta.client(adminToken)
	ctx := t.Context()
	anchor := func(inst string) conf.Anchor { an := *ta.a.Anchor(); an.Instance = inst; return an }
	registry := mustID(t, "VN/GOV/MOF/registry")
	n := func(format string) []string {
		var out []string
		for i := range 7 {
			out = append(out, fmt.Sprintf(format, 50+i))
		}
		return out
	}
	return []readKind{
		{"members", "id", n("VN/GOV/M%d"), func(id string) error {
			mid, err := ident.ParseMember(id)
			if err != nil {
				return err
			}
			return api.AddMember(ctx, MemberInput{ID: mid, Name: "member " + id})
		}, func(i int) string { return fmt.Sprintf("VN/GOV/A%02d", i) }},
		{"subsystems", "id", n("VN/GOV/MOF/s%d"), func(id string) error {
			sid, err := ident.ParseSubsystem(id)
			if err != nil {
				return err
			}
			return api.AddSubsystem(ctx, SubsystemInput{ID: sid})
		}, func(i int) string { return fmt.Sprintf("VN/GOV/MOF/a%02d", i) }},
		{"gateways", "id", n("VN/GOV/MOF/gw%d"), func(id string) error {
			gid, err := ident.ParseGateway(id)
			if err != nil {
				return err
			}
			return api.PutGateway(ctx, GatewayInput{ID: gid, Address: "127.0.0.1:8443"})
		}, func(i int) string { return fmt.Sprintf("VN/GOV/MOF/a%02d", i) }},
		{"groups", "id", n("VN/g%d"), func(id string) error {
			gid, err := ident.ParseGroup(id)
			if err != nil {
				return err
			}
			return api.PutGroup(ctx, GroupInput{ID: gid, Description: "group " + id, Members: []ident.ClientID{registry}})
		}, func(i int) string { return fmt.Sprintf("VN/a%02d", i) }},
		{"federation", "instance", n("SG-x%d"), func(id string) error {
			return api.PutFederation(ctx, FederationInput{Anchor: anchor(id), InboundClients: []ident.ClientID{{Instance: id, Class: "GOV", Code: "ACRA"}}})
		}, func(i int) string { return fmt.Sprintf("SG-a%02d", i) }},
	}
}

// getPageRaw reads one page of a read API as an auditor.
func getPageRaw(t *testing.T, ta *testAuthority, path string, after int64, limit int) Page[map[string]any] {
	t.Helper()
	s, b := ta.raw(t, http.MethodGet, fmt.Sprintf("/api/v1/%s?after=%d&limit=%d", path, after, limit), auditorToken, "")
	var p Page[map[string]any]
	if err := json.Unmarshal([]byte(b), &p); s != 200 || err != nil {
		t.Fatalf("GET %s: %d %s (%v)", path, s, b, err)
	}
	return p
}

// TestRegistryPagingUnderInserts: each kind pages in registration order
// while objects are added between the pages (with ids that sort before
// every one there) and, for federation, the first one is removed after
// it was read: every object there before paging began is read once, none
// twice.
func TestRegistryPagingUnderInserts(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	registerMOF(t, ta)
	for _, k := range readKinds(t, ta) {
		t.Run(k.path, func(t *testing.T) {
			for _, id := range k.seed {
				if err := k.add(id); err != nil {
					t.Fatal(err)
				}
			}
			// Besides the additions between pages, others at any time.
			bg := make(chan error, 1)
			go func() {
				for i := range 10 {
					if err := k.add(k.extra(200 + i)); err != nil {
						bg <- err
						return
					}
				}
				bg <- nil
			}()
			defer func() {
				if err := <-bg; err != nil {
					t.Errorf("concurrent insert: %v", err)
				}
			}()
			seen := map[string]int{}
			after, added := int64(0), 0
			for pages := 0; ; pages++ {
				if pages > 50 {
					t.Fatal("paging does not end")
				}
				p := getPageRaw(t, ta, k.path, after, 2)
				for _, it := range p.Items {
					seen[it[k.key].(string)]++
				}
				if p.Next == 0 {
					break
				}
				if p.Next <= after {
					t.Fatalf("next %d after %d", p.Next, after)
				}
				after = p.Next
				if err := k.add(k.extra(added)); err != nil {
					t.Fatal(err)
				}
				added++
				if k.path == "federation" && pages == 0 {
					if err := ta.client(adminToken).RemoveFederation(t.Context(), k.seed[0]); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, id := range k.seed {
				if seen[id] != 1 {
					t.Errorf("%s read %d times, want once (seen %v)", id, seen[id], seen)
				}
			}
			for id, n := range seen {
				if n > 1 {
					t.Errorf("%s read %d times", id, n)
				}
			}
		})
	}
}

// TestRegistryReadAPIs: each kind is read by id, percent-encoded as one
// path segment or as its parts, with the fields the registry holds; an
// unknown id is a 404 naming it; auditors and admins read, a caller
// without a valid token is refused and reads nothing.
func TestRegistryReadAPIs(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.authFailures = 1000 })
	api := registerMOF(t, ta)
	ctx := t.Context()
	mps := mustID(t, "VN/GOV/MPS/residents")
	if err := api.AddSubsystem(ctx, SubsystemInput{ID: mps, Gateways: []ident.GatewayID{{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}}}); err != nil {
		t.Fatal(err)
	}
	issued := issueGateway(t, ta, api)
	gid, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	sub := mustID(t, "VN/GOV/MOF/registry")
	if err := api.PutGateway(ctx, GatewayInput{ID: gid, Address: "127.0.0.1:8443", AuthFP: pki.Fingerprint(issued.c.Raw), Clients: []ident.ClientID{sub, mps}}); err != nil {
		t.Fatal(err)
	}
	if err := api.PutGroup(ctx, GroupInput{ID: ident.GroupID{Instance: "VN", Code: "police"}, Description: "police", Members: []ident.ClientID{mps}}); err != nil {
		t.Fatal(err)
	}
	an := *ta.a.Anchor()
	an.Instance = "SG"
	if err := api.PutFederation(ctx, FederationInput{Anchor: an, InboundClients: []ident.ClientID{mustID(t, "SG/GOV/ACRA")}}); err != nil {
		t.Fatal(err)
	}

	aud := ta.client(auditorToken)
	m, err := aud.Member(ctx, "VN/GOV/MOF")
	if err != nil || m.Name != "MOF" || m.Subsystems != 1 || m.CreatedAt == "" {
		t.Errorf("member: %+v %v", m, err)
	}
	s, err := aud.Subsystem(ctx, mps.String())
	if err != nil || s.Member != "VN/GOV/MPS" || strings.Join(s.Gateways, ",") != "VN/GOV/MOF/gw1" || strings.Join(s.ServedBy, ",") != "VN/GOV/MOF/gw1" {
		t.Errorf("subsystem: %+v %v", s, err)
	}
	g, err := aud.Gateway(ctx, gid.String())
	if err != nil || g.Owner != "VN/GOV/MOF" || g.Address != "127.0.0.1:8443" || g.AuthFP != pki.Fingerprint(issued.c.Raw) ||
		g.AuthCert == nil || g.AuthCert.Serial != issued.serial || g.AuthCert.Status != "valid" || g.AuthCert.NotAfter == "" ||
		strings.Join(g.Clients, ",") != "VN/GOV/MOF/registry,VN/GOV/MPS/residents" || g.UpdatedAt == "" {
		t.Errorf("gateway: %+v %v", g, err)
	}
	gr, err := aud.Group(ctx, "VN/police")
	if err != nil || gr.Description != "police" || strings.Join(gr.Members, ",") != mps.String() {
		t.Errorf("group: %+v %v", gr, err)
	}
	f, err := aud.Federation(ctx, "SG")
	if err != nil || f.AnchorURL != an.URL || len(f.KeyIDs) != 1 || f.KeyIDs[0] != an.Keys[0].KeyID || strings.Join(f.InboundClients, ",") != "SG/GOV/ACRA" || f.UpdatedAt == "" {
		t.Errorf("federation: %+v %v", f, err)
	}
	c, err := aud.Certificate(ctx, strings.ToUpper(issued.serial))
	if err != nil || c.Serial != issued.serial || c.Status != "valid" || !strings.Contains(c.PEM, "BEGIN CERTIFICATE") {
		t.Errorf("certificate: %+v %v", c, err)
	}
	if p, err := aud.Certificates(ctx, 0, 10); err != nil || len(p.Items) != 1 || p.Items[0].PEM != "" {
		t.Errorf("the certificate list carries PEM: %+v %v", p, err)
	}

	// The parts as path segments, and the whole id as one.
	for _, path := range []string{"/api/v1/gateways/VN/GOV/MOF/gw1", "/api/v1/gateways/" + url.PathEscape("VN/GOV/MOF/gw1")} {
		if s, b := ta.raw(t, http.MethodGet, path, adminToken, ""); s != 200 || !strings.Contains(b, `"id": "VN/GOV/MOF/gw1"`) {
			t.Errorf("GET %s: %d %s", path, s, b)
		}
	}
	for _, tc := range []struct{ path, id string }{
		{"members", "VN/GOV/NOPE"}, {"subsystems", "VN/GOV/MOF/nope"}, {"gateways", "VN/GOV/MOF/gw9"},
		{"groups", "VN/nope"}, {"federation", "XX"}, {"certificates", "abc123"},
	} {
		s, b := ta.raw(t, http.MethodGet, "/api/v1/"+tc.path+"/"+url.PathEscape(tc.id), auditorToken, "")
		var e apiError
		if json.Unmarshal([]byte(b), &e); s != 404 || !strings.Contains(e.Error, tc.id) {
			t.Errorf("%s %s: %d %s, want 404 naming it", tc.path, tc.id, s, b)
		}
	}
	if s, b := ta.raw(t, http.MethodGet, "/api/v1/members/", auditorToken, ""); s != 400 {
		t.Errorf("empty id: %d %s, want 400", s, b)
	}

	for _, path := range []string{"members", "subsystems", "gateways", "groups", "federation",
		"members/VN%2FGOV%2FMOF", "subsystems/VN%2FGOV%2FMOF%2Fregistry", "gateways/VN%2FGOV%2FMOF%2Fgw1", "groups/VN%2Fpolice", "federation/SG",
		"certificates/" + issued.serial} {
		for _, tc := range []struct {
			token string
			want  int
		}{{auditorToken, 200}, {adminToken, 200}, {"", 401}, {wrongToken, 401}} {
			s, b := ta.raw(t, http.MethodGet, "/api/v1/"+path, tc.token, "")
			if s != tc.want {
				t.Errorf("GET %s with token %q: %d, want %d", path, tc.token, s, tc.want)
			}
			if tc.want == 401 && (strings.Contains(b, "MOF") || strings.Contains(b, "SG")) {
				t.Errorf("GET %s refused, yet answered %s", path, b)
			}
		}
	}
	for _, q := range []string{"?limit=0", "?limit=1001", "?after=-1"} {
		if s, b := ta.raw(t, http.MethodGet, "/api/v1/members"+q, auditorToken, ""); s != 400 {
			t.Errorf("members%s: %d %s, want 400", q, s, b)
		}
	}
}
