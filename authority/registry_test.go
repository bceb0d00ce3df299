package authority

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/conf"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/policy"
)

// refusal is one management call that must be refused with a status and
// an error naming the field, and must leave the configuration as it was.
type refusal struct {
	name, method, path, body string
	status                   int
	want                     string // in the error message
}

func (ta *testAuthority) expectRefusals(t *testing.T, cases []refusal) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			serial := ta.a.Current().Serial
			status, body := ta.raw(t, tc.method, tc.path, adminToken, tc.body)
			var e apiError
			json.Unmarshal([]byte(body), &e)
			if status != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("got %d %q, want %d and an error containing %q", status, e.Error, tc.status, tc.want)
			}
			if got := ta.a.Current().Serial; got != serial {
				t.Errorf("serial moved from %d to %d", serial, got)
			}
		})
	}
}

func mustID(t *testing.T, s string) ident.ClientID {
	t.Helper()
	id, err := ident.ParseClient(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// registerGateway issues an authentication certificate for gw and
// registers the gateway with the given clients.
func (ta *testAuthority) registerGateway(t *testing.T, gw string, clients ...string) error {
	t.Helper()
	api := ta.client(adminToken)
	gid, _ := ident.ParseGateway(gw)
	in := GatewayInput{ID: gid, Address: "127.0.0.1:8443"}
	for _, g := range ta.a.Current().Gateways {
		if g.ID == gid {
			in.AuthFP = g.AuthFP // registered and certified already
		}
	}
	if in.AuthFP == "" {
		// Registered first, certified for its registered address, then
		// bound to its certificate with its clients.
		if err := api.PutGateway(t.Context(), in); err != nil {
			return err
		}
		key, _ := pki.GenerateKey(pki.ECDSAP256)
		csr, _ := pki.NewCSR(key, gw)
		cert, err := api.Issue(t.Context(), IssueInput{Profile: "auth", Subject: gw, CSR: string(csr), Hosts: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		in.AuthFP = cert.SHA256
	}
	for _, c := range clients {
		in.Clients = append(in.Clients, mustID(t, c))
	}
	return api.PutGateway(t.Context(), in)
}

// seed registers MOF and MPS with a subsystem each.
func seed(t *testing.T, ta *testAuthority) {
	t.Helper()
	api := ta.client(adminToken)
	for _, m := range []string{"VN/GOV/MOF", "VN/GOV/MPS"} {
		if err := api.AddMember(t.Context(), MemberInput{ID: mustID(t, m), Name: m}); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range []string{"VN/GOV/MOF/business-registry", "VN/GOV/MPS/residents"} {
		if err := api.AddSubsystem(t.Context(), SubsystemInput{ID: mustID(t, s)}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDuplicatesAndFieldPositions(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	seed(t, ta)
	api := ta.client(adminToken)
	svc, _ := ident.ParseService("VN/GOV/MOF/business-registry/companies")
	if err := api.PutServiceClass(t.Context(), policy.ServiceClass{ID: svc, Class: policy.ClassPublic}); err != nil {
		t.Fatal(err)
	}
	// An agreement whose id sorts first, so that the registry's own
	// order differs from the request's.
	if err := api.PutAgreement(t.Context(), policy.Agreement{ID: "A-first", Consumers: []string{"VN/GOV/MPS"}, Services: []ident.ServiceID{svc},
		Purposes: []string{"audit"}, ValidFrom: time.Now().UTC(), Status: policy.StatusActive}); err != nil {
		t.Fatal(err)
	}
	if err := ta.registerGateway(t, "VN/GOV/MOF/gw1", "VN/GOV/MOF/business-registry"); err != nil {
		t.Fatal(err)
	}
	rule := func(id, effect string) string {
		return fmt.Sprintf(`{"id":%q,"description":"","applies_at":"provider","when":{"flow":"any"},"effect":%q}`, id, effect)
	}
	agreement := func(id, consumers, purposes string) string {
		return fmt.Sprintf(`{"id":%q,"consumers":%s,"services":["VN/GOV/MOF/business-registry/companies"],"purposes":%s,"valid_from":"2026-01-01T00:00:00Z","status":"active"}`, id, consumers, purposes)
	}
	ta.expectRefusals(t, []refusal{
		{"rule id twice", "PUT", "/api/v1/policy/rules", "[" + rule("r0", "deny") + "," + rule("r1", "deny") + "," + rule("r2", "deny") + "," + rule("r1", "deny") + "]",
			400, "rules[3].id duplicates rules[1].id"},
		{"rule id twice in other case", "PUT", "/api/v1/policy/rules", "[" + rule("core", "deny") + "," + rule("CORE", "deny") + "]",
			400, "rules[1].id duplicates rules[0].id"},
		{"rule error at its own position", "PUT", "/api/v1/policy/rules", "[" + rule("z", "deny") + "," + rule("b", "deny") + "," + rule("a", "allow") + "]",
			400, "rules[2].effect: unknown value"},
		{"agreement consumer twice", "PUT", "/api/v1/policy/agreements", agreement("Z-second", `["VN/GOV/MPS","VN/GOV/MOF","VN/GOV/MPS"]`, `["audit"]`),
			400, "consumers[2] duplicates consumers[0]"},
		{"agreement field named in the request's terms", "PUT", "/api/v1/policy/agreements", agreement("Z-second", `["VN/GOV/MPS"]`, `["audit","Bad Purpose"]`),
			400, `purposes[1]: "Bad Purpose" must be`},
		{"agreement id in other case", "PUT", "/api/v1/policy/agreements", agreement("a-FIRST", `["VN/GOV/MPS"]`, `["audit"]`),
			409, "a-FIRST differs only in case from the registered agreement A-first"},
		{"gateway client twice", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/gw1","address":"127.0.0.1:8443","auth_cert_sha256":"` + ta.a.Current().Gateways[0].AuthFP +
			`","clients":["VN/GOV/MOF/business-registry","VN/GOV/MOF/business-registry"]}`, 400, "clients[1] duplicates clients[0]"},
		{"group member twice", "PUT", "/api/v1/groups", `{"id":"VN/g1","description":"","members":["VN/GOV/MOF/business-registry","VN/GOV/MPS/residents","VN/GOV/MOF/business-registry"]}`,
			400, "members[2] duplicates members[0]"},
		{"subsystem gateway twice", "PUT", "/api/v1/subsystems", `{"id":"VN/GOV/MPS/residents","gateways":["VN/GOV/MOF/gw1","VN/GOV/MOF/gw1"]}`,
			400, "gateways[1] duplicates gateways[0]"},
	})
}

func TestIdentifiersCanonical(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	seed(t, ta)
	if err := ta.registerGateway(t, "VN/GOV/MOF/gw1"); err != nil {
		t.Fatal(err)
	}
	if err := ta.client(adminToken).PutGroup(t.Context(), GroupInput{ID: ident.GroupID{Instance: "VN", Code: "provinces"}}); err != nil {
		t.Fatal(err)
	}
	member := func(id string) string { return fmt.Sprintf(`{"id":%q,"name":"x"}`, id) }
	sub := func(id string) string { return fmt.Sprintf(`{"id":%q}`, id) }
	ta.expectRefusals(t, []refusal{
		{"member in other case", "POST", "/api/v1/members", member("VN/GOV/mof"), 409, "VN/GOV/mof differs only in case from the registered VN/GOV/MOF"},
		{"Cyrillic letter", "POST", "/api/v1/members", member("VN/GOV/M\u041eF"), 400, "member code contains"},
		{"full-width letters", "POST", "/api/v1/members", member("VN/GOV/\uff2d\uff2f\uff26"), 400, "member code contains"},
		{"dotted capital I", "POST", "/api/v1/members", member("VN/GOV/MOF\u0130"), 400, "member code contains"},
		{"character outside the set", "POST", "/api/v1/members", member("VN/GOV/A~B"), 400, "member code contains '~'"},
		{"dot as a part", "POST", "/api/v1/subsystems", sub("VN/GOV/MOF/."), 400, `subsystem code may not be "."`},
		{"dot-dot as a part", "POST", "/api/v1/subsystems", sub("VN/GOV/MOF/.."), 400, `subsystem code may not be ".."`},
		{"subsystem in other case", "POST", "/api/v1/subsystems", sub("VN/GOV/MOF/Business-Registry"), 409, "differs only in case"},
		{"group in other case", "PUT", "/api/v1/groups", `{"id":"VN/Provinces","description":"","members":[]}`, 409, "differs only in case"},
		{"gateway in other case", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/GW1","address":"127.0.0.1:8443","auth_cert_sha256":"` + strings.Repeat("ab", 32) + `","clients":[]}`,
			409, "differs only in case"},
		{"gateway address with a path", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/gw2","address":"evil.example/x:443","auth_cert_sha256":"` + strings.Repeat("ab", 32) + `","clients":[]}`,
			400, "address:"},
		{"gateway address with a signed port", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/gw2","address":"gw.example:+443","auth_cert_sha256":"` + strings.Repeat("ab", 32) + `","clients":[]}`,
			400, "address:"},
	})
}

func TestCheckAddress(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"127.0.0.1:8443", true},
		{"[::1]:443", true},
		{"gw1.mof.gov.vn:443", true},
		{"gw1.mof.gov.vn.:443", true},
		{"localhost:1", true},
		{"gw.example:65535", true},
		{"gw.example", false},
		{"gw.example:0", false},
		{"gw.example:65536", false},
		{"gw.example:+443", false},
		{"gw.example:0443", false},
		{":443", false},
		{"0.0.0.0:443", false},
		{"[::]:443", false},
		{"[fe80::1%eth0]:443", false},
		{"224.0.0.1:443", false},
		{"gw example:443", false},
		{"gw_1.example:443", false},
		{"-gw.example:443", false},
		{"g\u0432.example:443", false},
		{"user@gw.example:443", false},
		{"gw.example/path:443", false},
		{"1.2.3:443", false},
		{strings.Repeat("a", 64) + ".example:443", false},
	} {
		if err := checkAddress(tc.in); (err == nil) != tc.ok {
			t.Errorf("checkAddress(%q) = %v, want ok %v", tc.in, err, tc.ok)
		}
	}
}

func TestGatewayServesOtherMembersOnlyWhenNamed(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	seed(t, ta)
	api := ta.client(adminToken)
	residents := mustID(t, "VN/GOV/MPS/residents")
	gw := ident.GatewayID{Instance: "VN", Class: "GOV", Code: "MOF", Name: "gw1"}
	if err := ta.registerGateway(t, gw.String(), "VN/GOV/MOF/business-registry"); err != nil {
		t.Fatal(err)
	}
	serial := ta.a.Current().Serial
	err := ta.registerGateway(t, gw.String(), "VN/GOV/MOF/business-registry", "VN/GOV/MPS/residents")
	if err == nil || !strings.Contains(err.Error(), "clients[1]: VN/GOV/MPS/residents belongs to VN/GOV/MPS, whose registration of it does not name gateway VN/GOV/MOF/gw1") {
		t.Fatalf("MOF's gateway listed MPS's subsystem unasked: %v", err)
	}
	if c := ta.a.Current(); c.Serial != serial || len(c.HostedBy(residents)) != 0 {
		t.Fatalf("refusal changed the configuration")
	}
	// MPS names MOF's gateway as a provider of its subsystem: now it may.
	if err := api.PutSubsystem(t.Context(), SubsystemInput{ID: residents, Gateways: []ident.GatewayID{gw}}); err != nil {
		t.Fatal(err)
	}
	if err := ta.registerGateway(t, gw.String(), "VN/GOV/MOF/business-registry", "VN/GOV/MPS/residents"); err != nil {
		t.Fatal(err)
	}
	if h := ta.a.Current().HostedBy(residents); len(h) != 1 || h[0].ID != gw {
		t.Fatalf("hosted by %v", h)
	}
	// MPS cannot take the naming back while the gateway serves it.
	err = api.PutSubsystem(t.Context(), SubsystemInput{ID: residents})
	if err == nil || !strings.Contains(err.Error(), "409") {
		t.Fatalf("withdrawing a serving gateway: %v", err)
	}
}

func TestFieldLimits(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	seed(t, ta)
	if err := ta.client(adminToken).PutAgreement(t.Context(), policy.Agreement{ID: "ag1", Consumers: []string{"VN/GOV/MPS"},
		Services: []ident.ServiceID{{Provider: mustID(t, "VN/GOV/MOF/business-registry"), Code: "companies"}}, Purposes: []string{"audit"},
		ValidFrom: time.Now().UTC(), Status: policy.StatusActive}); err != nil && !strings.Contains(err.Error(), "not") {
		t.Fatal(err)
	}
	many := func(n int, f func(i int) string) string {
		s := make([]string, n)
		for i := range s {
			s[i] = f(i)
		}
		return "[" + strings.Join(s, ",") + "]"
	}
	ta.expectRefusals(t, []refusal{
		{"member name too long", "POST", "/api/v1/members", `{"id":"VN/GOV/A","name":"` + strings.Repeat("x", maxNameLen+1) + `"}`, 400, "name: must be 1 to 255 bytes"},
		{"member name blank", "POST", "/api/v1/members", `{"id":"VN/GOV/A","name":"   "}`, 400, "name: must not be blank"},
		{"member name with a control character", "POST", "/api/v1/members", `{"id":"VN/GOV/A","name":"a\u001b[31mb"}`, 400, "name: holds the control character"},
		{"group description too long", "PUT", "/api/v1/groups", `{"id":"VN/g","description":"` + strings.Repeat("x", maxDescriptionLen+1) + `","members":[]}`, 400, "description: at most 500 bytes"},
		{"too many group members", "PUT", "/api/v1/groups", `{"id":"VN/g","description":"","members":` + many(maxGroupMembers+1, func(i int) string { return fmt.Sprintf(`"SG/GOV/M/s%d"`, i) }) + `}`,
			400, "members: more than 10000 items"},
		{"too many gateway clients", "PUT", "/api/v1/gateways", `{"id":"VN/GOV/MOF/gw1","address":"127.0.0.1:1","auth_cert_sha256":"` + strings.Repeat("ab", 32) + `","clients":` +
			many(maxGatewayClients+1, func(i int) string { return fmt.Sprintf(`"VN/GOV/MOF/s%d"`, i) }) + `}`, 400, "clients: more than 1000 items"},
		{"too many subsystem gateways", "PUT", "/api/v1/subsystems", `{"id":"VN/GOV/MPS/residents","gateways":` +
			many(maxSubsystemGateways+1, func(i int) string { return fmt.Sprintf(`"VN/GOV/MOF/gw%d"`, i) }) + `}`, 400, "gateways: more than 16 items"},
		{"status reason too long", "POST", "/api/v1/policy/agreements/ag1/status", `{"status":"suspended","reason":"` + strings.Repeat("x", maxReasonLen+1) + `"}`, 400, "reason: must be 1 to 500 bytes"},
		{"agreement responsible too long", "PUT", "/api/v1/policy/agreements", `{"id":"ag2","consumers":["VN/GOV/MPS"],"services":["VN/GOV/MOF/business-registry/companies"],"purposes":["a"],"valid_from":"2026-01-01T00:00:00Z","status":"active","responsible":["` +
			strings.Repeat("x", 501) + `"]}`, 400, "responsible[0]: required, at most 500"},
		{"too many agreement references", "PUT", "/api/v1/policy/agreements", `{"id":"ag2","consumers":["VN/GOV/MPS"],"services":["VN/GOV/MOF/business-registry/companies"],"purposes":["a"],"valid_from":"2026-01-01T00:00:00Z","status":"active","references":` +
			many(65, func(i int) string { return `{"kind":"approval","ref":"x"}` }) + `}`, 400, "references: more than 64 items"},
		{"rule description too long", "PUT", "/api/v1/policy/rules", `[{"id":"r","description":"` + strings.Repeat("x", 501) + `","applies_at":"provider","when":{"flow":"any"},"effect":"deny"}]`,
			400, "rules[0].description: more than 500"},
		{"body larger than 1 MiB", "POST", "/api/v1/members", `{"id":"VN/GOV/A","name":"` + strings.Repeat("x", maxAPIBody) + `"}`, 400, "request body"},
		{"key in other case", "POST", "/api/v1/members", `{"ID":"VN/GOV/A","name":"a"}`, 400, `key must be written "id"`},
		{"key given twice", "POST", "/api/v1/members", `{"id":"VN/GOV/A","name":"a","name":"b"}`, 400, "field name: key given twice"},
	})
}

// TestConfigurationSizeBound: a change that would make the signed
// configuration larger than gateways accept is refused, and the serial
// stays.
func TestConfigurationSizeBound(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "", func(c *Config) { c.maxConfSize = 6000 })
	api := ta.client(adminToken)
	var refused error
	var i int
	for i = 0; i < 50 && refused == nil; i++ {
		serial := ta.a.Current().Serial
		refused = api.AddMember(t.Context(), MemberInput{ID: mustID(t, fmt.Sprintf("VN/GOV/M%d", i)), Name: strings.Repeat("n", 200)})
		if refused != nil && ta.a.Current().Serial != serial {
			t.Errorf("serial moved from %d to %d on refusal", serial, ta.a.Current().Serial)
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), "413") || !strings.Contains(refused.Error(), "more than the 6000 gateways accept") {
		t.Fatalf("never refused, or refused for another reason: %v", refused)
	}
	if len(ta.a.current.Load().doc) > 6000 {
		t.Errorf("published %d bytes", len(ta.a.current.Load().doc))
	}
	if ta.a.Current().Member(mustID(t, fmt.Sprintf("VN/GOV/M%d", i-1))) != nil {
		t.Error("the refused member is in the configuration")
	}
	// The refusal changed nothing in the registry either.
	var n int
	if err := ta.a.db.QueryRowContext(t.Context(), `SELECT count(*) FROM members WHERE id = ?`, fmt.Sprintf("VN/GOV/M%d", i-1)).Scan(&n); err != nil || n != 0 {
		t.Errorf("the refused member was committed (%d, %v)", n, err)
	}
}

// TestParallelRegistrations sends 20 registrations at once over HTTP:
// each gets a correct answer and the registry holds them all.
func TestParallelRegistrations(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	const n = 20
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = ta.client(adminToken).AddMember(t.Context(), MemberInput{ID: mustID(t, fmt.Sprintf("VN/COM/C%02d", i)), Name: "company"})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	if got := len(ta.a.Current().Members); got != n {
		t.Fatalf("%d members published, want %d", got, n)
	}
	// The same registration 20 times at once: one success, 19 conflicts,
	// no server error.
	statuses := make([]int, n)
	for i := range n {
		wg.Go(func() {
			statuses[i], _ = ta.raw(t, http.MethodPost, "/api/v1/members", adminToken, `{"id":"VN/GOV/SAME","name":"same"}`)
		})
	}
	wg.Wait()
	count := map[int]int{}
	for _, s := range statuses {
		count[s]++
	}
	if count[201] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v, want one 201 and %d 409", count, n-1)
	}
}

func TestFederationLimits(t *testing.T) {
	ta := startAuthority(t, t.TempDir(), "")
	an := *ta.a.Anchor()
	an.Instance = "SG"
	long := an
	long.Keys = append([]conf.AnchorKey{}, an.Keys...)
	long.Keys[0].KeyID = strings.Repeat("k", maxKeyIDLen+1)
	many := make([]string, maxInboundClients+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"SG/GOV/M%d"`, i)
	}
	ta.expectRefusals(t, []refusal{
		{"key id too long", "PUT", "/api/v1/federation", `{"anchor":` + mustJSON(t, &long) + `}`, 400, "anchor.keys[0].kid: longer than 128 bytes"},
		{"inbound client twice", "PUT", "/api/v1/federation", `{"anchor":` + mustJSON(t, &an) + `,"inbound_clients":["SG/GOV/ACRA","SG/GOV/SPF","SG/GOV/ACRA"]}`, 400,
			"inbound_clients[2] duplicates inbound_clients[0]"},
		{"too many inbound clients", "PUT", "/api/v1/federation", `{"anchor":` + mustJSON(t, &an) + `,"inbound_clients":[` + strings.Join(many, ",") + `]}`, 400,
			"inbound_clients: more than 10000 items"},
	})
}
