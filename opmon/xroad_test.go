package opmon

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
)

// opData wraps search criteria and an output spec in the request element,
// the om prefix bound to the protocol's namespace and id to the
// identifiers'.
func opData(inner string) string {
	return `<om:getSecurityServerOperationalData xmlns:om="` + NamespaceOpMonitoring + `" xmlns:id="` + NamespaceIdentifiers + `">` +
		inner + `</om:getSecurityServerOperationalData>`
}

func criteria(from, to, extra string) string {
	return `<om:searchCriteria><om:recordsFrom>` + from + `</om:recordsFrom><om:recordsTo>` + to + `</om:recordsTo>` + extra + `</om:searchCriteria>`
}

const subsystemXML = `<om:client id:objectType="SUBSYSTEM"><id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass>` +
	`<id:memberCode>MOF</id:memberCode><id:subsystemCode>registry</id:subsystemCode></om:client>`

func TestParseOperationalDataRequest(t *testing.T) {
	mof := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
	for _, tc := range []struct {
		name, body string
		want       OperationalDataRequest
	}{
		{"interval", opData(criteria("1480512828", "1480512832", "")), OperationalDataRequest{RecordsFrom: 1480512828, RecordsTo: 1480512832}},
		{"one second, declaration, comments, white space",
			"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- c -->" + opData("\n  "+criteria(" 5 ", "+5", "")+"\n") + "\n<!-- end -->\n",
			OperationalDataRequest{RecordsFrom: 5, RecordsTo: 5}},
		{"subsystem", opData(criteria("1", "2", subsystemXML)), OperationalDataRequest{RecordsFrom: 1, RecordsTo: 2, Client: mof}},
		{"member", opData(criteria("1", "2", `<om:client id:objectType="MEMBER"><id:xRoadInstance>VN</id:xRoadInstance><id:memberClass>GOV</id:memberClass><id:memberCode>MOF</id:memberCode></om:client>`)),
			OperationalDataRequest{RecordsFrom: 1, RecordsTo: 2, Client: mof.Member()}},
		{"output spec, repeats dropped", opData(criteria("1", "2", "") + `<om:outputSpec><om:outputField>serviceCode</om:outputField><om:outputField> succeeded </om:outputField><om:outputField>serviceCode</om:outputField></om:outputSpec>`),
			OperationalDataRequest{RecordsFrom: 1, RecordsTo: 2, OutputFields: []string{"serviceCode", "succeeded"}}},
		{"empty output spec", opData(criteria("1", "2", "") + `<om:outputSpec/>`), OperationalDataRequest{RecordsFrom: 1, RecordsTo: 2}},
		{"default namespace", `<getSecurityServerOperationalData xmlns="` + NamespaceOpMonitoring + `"><searchCriteria><recordsFrom>3</recordsFrom><recordsTo>4</recordsTo></searchCriteria></getSecurityServerOperationalData>`,
			OperationalDataRequest{RecordsFrom: 3, RecordsTo: 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseOperationalDataRequest(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestParseRefusals: hostile and malformed bodies are refused with an
// error wrapping ErrInvalidRequest that says what is wrong.
func TestParseRefusals(t *testing.T) {
	ok := criteria("1", "2", "")
	many := strings.Repeat("<om:outputField>serviceCode</om:outputField>", maxOutputFields+1)
	deep := strings.Repeat("<a>", 5000) + strings.Repeat("</a>", 5000)
	for _, tc := range []struct {
		name, body, want string
		health           bool
	}{
		{name: "entity definitions (billion laughs)", want: "document type declarations",
			body: `<?xml version="1.0"?><!DOCTYPE om [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` + opData(criteria("&b;", "2", ""))},
		{name: "external entity", want: "document type declarations",
			body: `<!DOCTYPE om [<!ENTITY x SYSTEM "file:///etc/passwd">]>` + opData(criteria("&x;", "2", ""))},
		{name: "undefined entity", want: "not well-formed", body: opData(criteria("&x;", "2", ""))},
		{name: "processing instruction", want: "processing instruction", body: opData(`<?php echo 1; ?>` + ok)},
		{name: "late XML declaration", want: "processing instruction", body: "<!-- c --> <?xml version=\"1.0\"?>" + opData(ok)},
		{name: "other encoding", want: "not well-formed", body: `<?xml version="1.0" encoding="ISO-8859-1"?>` + opData(ok)},
		{name: "too large", want: "larger than", body: opData(ok + strings.Repeat(" ", maxRequestBody))},
		{name: "deep nesting", want: "not in the namespace", body: opData(deep)},
		{name: "deep nesting in a value", want: "child elements are not allowed", body: opData(criteria("1"+deep, "2", ""))},
		{name: "too many output fields", want: "more than 64 outputField", body: opData(ok + "<om:outputSpec>" + many + "</om:outputSpec>")},
		{name: "empty", want: "empty body", body: "  "},
		{name: "wrong root", want: "not {" + NamespaceOpMonitoring + "}getSecurityServerOperationalData", body: `<om:getSecurityServerHealthData xmlns:om="` + NamespaceOpMonitoring + `"/>`},
		{name: "wrong namespace", want: "the body is {urn:x}getSecurityServerOperationalData", body: `<getSecurityServerOperationalData xmlns="urn:x"/>`},
		{name: "child in no namespace", want: "not in the namespace", body: `<om:getSecurityServerOperationalData xmlns:om="` + NamespaceOpMonitoring + `"><searchCriteria/></om:getSecurityServerOperationalData>`},
		{name: "no search criteria", want: "searchCriteria is missing", body: opData("")},
		{name: "unknown element", want: "unknown element bogus", body: opData(ok + "<om:bogus/>")},
		{name: "twice", want: "searchCriteria given twice", body: opData(ok + ok)},
		{name: "out of order", want: "searchCriteria must come before outputSpec", body: opData("<om:outputSpec/>" + ok)},
		{name: "recordsTo missing", want: "recordsTo is missing", body: opData(`<om:searchCriteria><om:recordsFrom>1</om:recordsFrom></om:searchCriteria>`)},
		{name: "recordsTo before recordsFrom", want: "recordsTo 4 is before recordsFrom 9", body: opData(criteria("9", "4", ""))},
		{name: "negative", want: "recordsFrom -1 is negative", body: opData(criteria("-1", "4", ""))},
		{name: "not a number", want: `searchCriteria.recordsTo: "2x" is not an integer`, body: opData(criteria("1", "2x", ""))},
		{name: "overflow", want: "is not an integer", body: opData(criteria("1", "99999999999999999999", ""))},
		{name: "unknown output field", want: `unknown outputField "passwordHash"`, body: opData(ok + "<om:outputSpec><om:outputField>passwordHash</om:outputField></om:outputSpec>")},
		{name: "text beside elements", want: "text beside child elements", body: opData("hello" + ok)},
		{name: "content after the element", want: "content after the request element", body: opData(ok) + "<x/>"},
		{name: "attribute", want: "attribute onload not allowed", body: `<om:getSecurityServerOperationalData xmlns:om="` + NamespaceOpMonitoring + `" onload="x">` + ok + `</om:getSecurityServerOperationalData>`},
		{name: "cut short", want: "not well-formed", body: opData(ok)[:60]},
		{name: "client of type SERVICE", want: `objectType "SERVICE" is neither MEMBER nor SUBSYSTEM`, body: opData(criteria("1", "2", strings.Replace(subsystemXML, `"SUBSYSTEM"`, `"SERVICE"`, 1)))},
		{name: "client without objectType", want: `objectType "" is neither`, body: opData(criteria("1", "2", strings.Replace(subsystemXML, ` id:objectType="SUBSYSTEM"`, "", 1)))},
		{name: "subsystem without its code", want: "a SUBSYSTEM needs a subsystemCode", body: opData(criteria("1", "2", strings.Replace(subsystemXML, "<id:subsystemCode>registry</id:subsystemCode>", "", 1)))},
		{name: "member with a subsystem code", want: "a MEMBER has no subsystemCode", body: opData(criteria("1", "2", strings.Replace(subsystemXML, `"SUBSYSTEM"`, `"MEMBER"`, 1)))},
		{name: "member code missing", want: "memberCode is missing", body: opData(criteria("1", "2", strings.Replace(subsystemXML, "<id:memberCode>MOF</id:memberCode>", "", 1)))},
		{name: "identifier part with a slash", want: `searchCriteria.client: invalid identifier: member code contains '/'`, body: opData(criteria("1", "2", strings.Replace(subsystemXML, ">MOF<", ">M/OF<", 1)))},
		{name: "identifier part too long", want: "longer than 1024 bytes", body: opData(criteria("1", "2", strings.Replace(subsystemXML, ">MOF<", ">"+strings.Repeat("M", 2000)+"<", 1)))},
		{name: "identifier part in the wrong namespace", want: "not in the namespace " + NamespaceIdentifiers, body: opData(criteria("1", "2", strings.Replace(subsystemXML, "id:memberCode", "om:memberCode", 2)))},
		{name: "health: DTD", health: true, want: "document type declarations", body: `<!DOCTYPE x>` + healthData("")},
		{name: "health: unknown element", health: true, want: "filterCriteria: unknown element server", body: healthData("<om:filterCriteria><om:server/></om:filterCriteria>")},
		{name: "health: client twice", health: true, want: "client given twice", body: healthData("<om:filterCriteria>" + subsystemXML + subsystemXML + "</om:filterCriteria>")},
		{name: "health: bad client", health: true, want: "filterCriteria.client: objectType", body: healthData("<om:filterCriteria>" + strings.Replace(subsystemXML, `"SUBSYSTEM"`, `"GLOBALGROUP"`, 1) + "</om:filterCriteria>")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.health {
				_, err = ParseHealthDataRequest(strings.NewReader(tc.body))
			} else {
				_, err = ParseOperationalDataRequest(strings.NewReader(tc.body))
			}
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("got %v, want an error wrapping ErrInvalidRequest", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to say %q", err, tc.want)
			}
		})
	}
}

func healthData(inner string) string {
	return `<om:getSecurityServerHealthData xmlns:om="` + NamespaceOpMonitoring + `" xmlns:id="` + NamespaceIdentifiers + `">` +
		inner + `</om:getSecurityServerHealthData>`
}

func TestParseHealthDataRequest(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		want       HealthDataRequest
	}{
		{"empty", healthData(""), HealthDataRequest{}},
		{"empty element", `<getSecurityServerHealthData xmlns="` + NamespaceOpMonitoring + `"/>`, HealthDataRequest{}},
		{"empty filter", healthData("<om:filterCriteria/>"), HealthDataRequest{}},
		{"client", healthData("<om:filterCriteria>" + subsystemXML + "</om:filterCriteria>"),
			HealthDataRequest{Client: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseHealthDataRequest(strings.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// specOutputFields is the outputSpec field list of PR-OPMON section 2.
var specOutputFields = []string{
	"monitoringDataTs", "securityServerInternalIp", "securityServerType", "requestInTs", "requestOutTs",
	"responseInTs", "responseOutTs", "clientXRoadInstance", "clientMemberClass", "clientMemberCode",
	"clientSubsystemCode", "serviceXRoadInstance", "serviceMemberClass", "serviceMemberCode", "serviceSubsystemCode",
	"serviceCode", "restMethod", "restPath", "serviceVersion", "representedPartyClass", "representedPartyCode",
	"messageId", "messageUserId", "messageIssue", "messageProtocolVersion", "clientSecurityServerAddress",
	"serviceSecurityServerAddress", "requestSize", "requestMimeSize", "requestAttachmentCount", "responseSize",
	"responseMimeSize", "responseAttachmentCount", "succeeded", "serviceType", "faultCode", "faultString",
	"statusCode", "xRoadVersion",
}

// TestOutputFieldNames: the accepted names are the specification's and
// xRequestId (which X-Road's payload carries too), and every key a full
// record's JSON has is one of them.
func TestOutputFieldNames(t *testing.T) {
	want := append(slices.Clone(specOutputFields), "xRequestId")
	slices.Sort(want)
	got := slices.Sorted(slices.Values(OutputFields))
	if !slices.Equal(got, want) {
		t.Fatalf("OutputFields %v\nwant %v", got, want)
	}
	var j jsonRecord
	j.record(fullRecord(1))
	var m map[string]any
	if err := json.Unmarshal(j.b, &m); err != nil {
		t.Fatalf("%s: %v", j.b, err)
	}
	for k := range m {
		if !slices.Contains(OutputFields, k) {
			t.Errorf("record key %q is not an output field", k)
		}
	}
}

// xroadStore opens a store holding recs, written and read back through a
// reopen (so that all are stored), with the clock at now.
func xroadStore(t *testing.T, dsn string, now time.Time, recs []*Record) *Store {
	t.Helper()
	dir := t.TempDir()
	clock := func() time.Time { return now }
	s := openStore(t, dir, dsn, Options{Clock: clock})
	for _, r := range recs {
		s.Add(r)
	}
	if err := s.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, dsn, Options{Clock: clock})
	t.Cleanup(func() { s.Close(t.Context()) })
	return s
}

// opDataResponse is the response element as a client reads it.
type opDataResponse struct {
	XMLName         xml.Name `xml:"http://x-road.eu/xsd/op-monitoring.xsd getSecurityServerOperationalDataResponse"`
	RecordsCount    int      `xml:"http://x-road.eu/xsd/op-monitoring.xsd recordsCount"`
	Records         string   `xml:"http://x-road.eu/xsd/op-monitoring.xsd records"`
	NextRecordsFrom *int64   `xml:"http://x-road.eu/xsd/op-monitoring.xsd nextRecordsFrom"`
}

// render answers req and returns the response element and the records of
// the attachment.
func render(t *testing.T, s *Store, req OperationalDataRequest, opts XRoadOptions) (opDataResponse, []map[string]any) {
	t.Helper()
	var att bytes.Buffer
	body, err := s.RenderOperationalData(t.Context(), &att, req, opts)
	if err != nil {
		t.Fatal(err)
	}
	var resp opDataResponse
	if err := xml.Unmarshal(body, &resp); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if resp.Records != "cid:"+RecordsContentID {
		t.Errorf("records refers to %q", resp.Records)
	}
	zr, err := gzip.NewReader(&att)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	var payload struct {
		Records []map[string]any `json:"records"`
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&payload); err != nil || payload.Records == nil {
		t.Fatalf("payload %s: %v", raw, err)
	}
	if resp.RecordsCount != len(payload.Records) {
		t.Errorf("recordsCount %d, attachment has %d", resp.RecordsCount, len(payload.Records))
	}
	return resp, payload.Records
}

// at is a provider-side record of service svc from client at the second
// sec after t0 plus ms milliseconds.
func at(sec, ms int, client, svc string) *Record {
	in := t0.Add(time.Duration(sec)*time.Second + time.Duration(ms)*time.Millisecond)
	return &Record{Side: "provider", Gateway: "VN/GOV/MOF/gw1", RequestInAt: in, ResponseOutAt: in.Add(5 * time.Millisecond),
		Client: client, Service: svc, Protocol: "r1", Status: 200, Succeeded: true, RequestID: fmt.Sprintf("%d.%d", sec, ms)}
}

const (
	hcmc     = "VN/GOV/HCMC/one-stop"
	registry = "VN/GOV/MOF/registry/companies"
	tax      = "VN/GOV/MOT/tax/returns/v2"
)

// ids are the xRequestId of records in order.
func ids(recs []map[string]any) []string {
	var out []string
	for _, r := range recs {
		out = append(out, fmt.Sprint(r["xRequestId"]))
	}
	return out
}

func TestRenderOperationalData(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		sec := t0.Unix()
		now := t0.Add(time.Hour)
		s := xroadStore(t, dsn, now, []*Record{
			at(9, 999, hcmc, registry), // before the interval
			at(10, 0, hcmc, registry),
			at(10, 500, "VN/GOV/MOT/tax", registry),
			at(11, 0, hcmc, tax),
			at(12, 0, "VN/GOV/MOF/registry", tax),                        // the registry as a client
			at(13, 0, "VN/GOV/HCMC", tax),                                // a member as a client
			at(14, 0, hcmc, "VN/GOV/MOF/registry2/companies"),            // another subsystem, the same prefix
			at(14, 500, "VN/GOV/MOT/tax", "VN/GOV/HCMC/one-stop/status"), // a service of a subsystem of HCMC
			at(15, 999, hcmc, registry),
			at(16, 0, hcmc, registry), // after the interval
		})
		base := OperationalDataRequest{RecordsFrom: sec + 10, RecordsTo: sec + 15}
		registryID := ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "registry"}
		for _, tc := range []struct {
			name string
			req  OperationalDataRequest
			opts XRoadOptions
			want []string
		}{
			{"seconds from and to included", base, XRoadOptions{}, []string{"10.0", "10.500", "11.0", "12.0", "13.0", "14.0", "14.500", "15.999"}},
			{"one second", OperationalDataRequest{RecordsFrom: sec + 10, RecordsTo: sec + 10}, XRoadOptions{}, []string{"10.0", "10.500"}},
			{"services of a provider", OperationalDataRequest{RecordsFrom: sec + 10, RecordsTo: sec + 15, Client: registryID}, XRoadOptions{},
				[]string{"10.0", "10.500", "15.999"}},
			{"a member provides nothing", OperationalDataRequest{RecordsFrom: sec + 10, RecordsTo: sec + 15, Client: registryID.Member()}, XRoadOptions{}, nil},
			{"restricted to a party: as client or provider", base, XRoadOptions{Restrict: registryID}, []string{"10.0", "10.500", "12.0", "15.999"}},
			{"restricted to a party: client and provider", base, XRoadOptions{Restrict: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOT", Subsystem: "tax"}},
				[]string{"10.500", "11.0", "12.0", "13.0", "14.500"}},
			{"restricted to a member: its own records, not its subsystems'", base, XRoadOptions{Restrict: ident.ClientID{Instance: "VN", Class: "GOV", Code: "HCMC"}},
				[]string{"13.0"}},
			{"restricted and filtered", OperationalDataRequest{RecordsFrom: sec + 10, RecordsTo: sec + 15, Client: registryID},
				XRoadOptions{Restrict: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOT", Subsystem: "tax"}}, []string{"10.500"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				tc.opts.Now = now
				resp, recs := render(t, s, tc.req, tc.opts)
				if got := ids(recs); !slices.Equal(got, tc.want) {
					t.Fatalf("records %v, want %v", got, tc.want)
				}
				if resp.NextRecordsFrom != nil {
					t.Fatalf("nextRecordsFrom %d, want none", *resp.NextRecordsFrom)
				}
			})
		}
	})
}

// TestRenderAvailability: records of the last AvailableAfter are not
// answered: an interval starting there is refused, one ending there is
// cut and nextRecordsFrom says where to go on.
func TestRenderAvailability(t *testing.T) {
	sec := t0.Unix()
	now := t0.Add(100*time.Second + 300*time.Millisecond) // available before sec+40
	s := xroadStore(t, "", now, []*Record{at(38, 0, hcmc, registry), at(39, 999, hcmc, registry), at(40, 0, hcmc, registry)})
	_, err := s.RenderOperationalData(t.Context(), io.Discard, OperationalDataRequest{RecordsFrom: sec + 40, RecordsTo: sec + 50}, XRoadOptions{Now: now})
	if !errors.Is(err, ErrInvalidRequest) || !strings.Contains(err.Error(), "not available yet") {
		t.Fatalf("from now-60s: got %v", err)
	}
	resp, recs := render(t, s, OperationalDataRequest{RecordsFrom: sec + 38, RecordsTo: sec + 1000}, XRoadOptions{Now: now})
	if got := ids(recs); !slices.Equal(got, []string{"38.0", "39.999"}) {
		t.Fatalf("records %v", got)
	}
	if resp.NextRecordsFrom == nil || *resp.NextRecordsFrom != sec+40 {
		t.Fatalf("nextRecordsFrom %v, want %d", resp.NextRecordsFrom, sec+40)
	}
	// The offset is a setting.
	_, recs = render(t, s, OperationalDataRequest{RecordsFrom: sec + 38, RecordsTo: sec + 40}, XRoadOptions{Now: now, AvailableAfter: 30 * time.Second})
	if len(recs) != 3 {
		t.Fatalf("with a 30 s offset: %d records, want 3", len(recs))
	}
	for _, req := range []OperationalDataRequest{{RecordsFrom: 5, RecordsTo: 4}, {RecordsFrom: -1, RecordsTo: 4}, {RecordsFrom: 1, RecordsTo: 2, OutputFields: []string{"nope"}}} {
		if _, err := s.RenderOperationalData(t.Context(), io.Discard, req, XRoadOptions{Now: now}); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%+v: got %v, want ErrInvalidRequest", req, err)
		}
	}
}

// TestRenderPaging: MaxRecords records, plus the rest of the last one's
// second, then nextRecordsFrom is the second after; following it reaches
// every record once.
func TestRenderPaging(t *testing.T) {
	sec := t0.Unix()
	now := t0.Add(time.Hour)
	var recs []*Record
	for _, r := range [][2]int{{100, 0}, {101, 1}, {101, 2}, {101, 3}, {102, 0}, {105, 0}, {105, 1}, {107, 0}} {
		recs = append(recs, at(r[0], r[1], hcmc, registry))
	}
	s := xroadStore(t, "", now, recs)
	opts := XRoadOptions{Now: now, MaxRecords: 3}
	var all []string
	var nexts []int64
	req := OperationalDataRequest{RecordsFrom: sec + 100, RecordsTo: sec + 107}
	for range 10 {
		resp, got := render(t, s, req, opts)
		all = append(all, ids(got)...)
		if resp.NextRecordsFrom == nil {
			break
		}
		nexts = append(nexts, *resp.NextRecordsFrom-sec)
		req.RecordsFrom = *resp.NextRecordsFrom
	}
	if want := []int64{102, 106}; !slices.Equal(nexts, want) {
		t.Errorf("nextRecordsFrom %v, want %v (after t0)", nexts, want)
	}
	if want := []string{"100.0", "101.1", "101.2", "101.3", "102.0", "105.0", "105.1", "107.0"}; !slices.Equal(all, want) {
		t.Errorf("records %v, want %v", all, want)
	}
	// Exactly MaxRecords and nothing after: no nextRecordsFrom.
	resp, got := render(t, s, OperationalDataRequest{RecordsFrom: sec + 102, RecordsTo: sec + 105}, opts)
	if len(got) != 3 || resp.NextRecordsFrom != nil {
		t.Errorf("exactly MaxRecords: %d records, next %v", len(got), resp.NextRecordsFrom)
	}
	// A page cut inside recordsTo's bound: the next starts after the
	// last second given.
	resp, got = render(t, s, OperationalDataRequest{RecordsFrom: sec + 100, RecordsTo: sec + 101}, XRoadOptions{Now: now, MaxRecords: 1})
	if len(got) != 1 || resp.NextRecordsFrom == nil || *resp.NextRecordsFrom != sec+101 {
		t.Errorf("MaxRecords 1: %d records, next %v", len(got), resp.NextRecordsFrom)
	}
}

// TestRenderRecordFields: a record in X-Road's names, values as computed
// by hand; with an output spec, only the fields asked for.
func TestRenderRecordFields(t *testing.T) {
	now := t0.Add(time.Hour)
	consumer := fullRecord(1) // request in at t0+1s
	consumer.Service = "VN/GOV/MOF/business-registry/companies/v1"
	provider := fullRecord(2)
	provider.Side, provider.Status, provider.Succeeded, provider.ErrorType, provider.ErrorMessage = "provider", 200, true, "", ""
	provider.RepresentedParty = "COM/0100109106"
	s := xroadStore(t, "", now, []*Record{consumer, provider})
	ms := t0.UnixMilli()
	_, recs := render(t, s, OperationalDataRequest{RecordsFrom: t0.Unix(), RecordsTo: t0.Unix() + 2}, XRoadOptions{Now: now})
	if len(recs) != 2 {
		t.Fatalf("%d records", len(recs))
	}
	n := func(v int64) json.Number { return json.Number(fmt.Sprint(v)) }
	want := map[string]any{
		"monitoringDataTs": n(t0.Unix() + 1), "securityServerType": "Client",
		"requestInTs": n(ms + 1000), "requestOutTs": n(ms + 1001), "responseInTs": n(ms + 1030), "responseOutTs": n(ms + 1031),
		"clientXRoadInstance": "VN", "clientMemberClass": "GOV", "clientMemberCode": "HCMC", "clientSubsystemCode": "one-stop",
		"serviceXRoadInstance": "VN", "serviceMemberClass": "GOV", "serviceMemberCode": "MOF", "serviceSubsystemCode": "business-registry",
		"serviceCode": "companies", "serviceVersion": "v1",
		"restMethod": "POST", "restPath": "/companies/0100109106?q=1",
		"representedPartyCode": "VN/COM/123",
		"messageId":            "xrid-1", "messageUserId": "EE:alice", "messageIssue": "ticket 7", "messageProtocolVersion": "r1", "xRequestId": "req-1",
		"clientSecurityServerAddress": "VN/GOV/HCMC/gw1", "serviceSecurityServerAddress": "VN/GOV/MOF/gw1",
		"requestSize": n(1<<40 + 1), "responseSize": n(4096), "succeeded": false, "serviceType": "REST",
		"faultCode": "Server.ServerProxy.ServiceFailed", "faultString": "backend: connection refused; \"quoted\"\nnewline", "statusCode": n(502),
	}
	if !reflect.DeepEqual(recs[0], want) {
		t.Errorf("consumer record:\n got %v\nwant %v", recs[0], want)
	}
	p := recs[1]
	for k, v := range map[string]any{"securityServerType": "Producer", "clientSecurityServerAddress": "VN/GOV/MOF/gw1",
		"serviceSecurityServerAddress": "VN/GOV/HCMC/gw1", "representedPartyClass": "COM", "representedPartyCode": "0100109106", "succeeded": true} {
		if p[k] != v {
			t.Errorf("provider record %s = %v, want %v", k, p[k], v)
		}
	}
	for _, k := range []string{"faultCode", "faultString", "securityServerInternalIp", "requestMimeSize", "xRoadVersion"} {
		if _, ok := p[k]; ok {
			t.Errorf("provider record has %s", k)
		}
	}

	_, recs = render(t, s, OperationalDataRequest{RecordsFrom: t0.Unix(), RecordsTo: t0.Unix() + 2,
		OutputFields: []string{"succeeded", "requestInTs", "securityServerInternalIp"}}, XRoadOptions{Now: now})
	for i, r := range recs {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range r {
				if !yield(k) {
					return
				}
			}
		})
		if !slices.Equal(keys, []string{"requestInTs", "succeeded"}) {
			t.Errorf("record %d with an output spec: keys %v", i, keys)
		}
	}
}

// healthResponse is the health data element as a client reads it.
type healthResponse struct {
	Startup  int64 `xml:"http://x-road.eu/xsd/op-monitoring.xsd monitoringStartupTimestamp"`
	Period   int   `xml:"http://x-road.eu/xsd/op-monitoring.xsd statisticsPeriodSeconds"`
	Services []struct {
		Service struct {
			Type      string `xml:"http://x-road.eu/xsd/identifiers objectType,attr"`
			Instance  string `xml:"http://x-road.eu/xsd/identifiers xRoadInstance"`
			Class     string `xml:"http://x-road.eu/xsd/identifiers memberClass"`
			Code      string `xml:"http://x-road.eu/xsd/identifiers memberCode"`
			Subsystem string `xml:"http://x-road.eu/xsd/identifiers subsystemCode"`
			Service   string `xml:"http://x-road.eu/xsd/identifiers serviceCode"`
			Version   string `xml:"http://x-road.eu/xsd/identifiers serviceVersion"`
		} `xml:"http://x-road.eu/xsd/op-monitoring.xsd service"`
		LastOK      *int64 `xml:"http://x-road.eu/xsd/op-monitoring.xsd lastSuccessfulRequestTimestamp"`
		LastFailed  *int64 `xml:"http://x-road.eu/xsd/op-monitoring.xsd lastUnsuccessfulRequestTimestamp"`
		ServiceType string `xml:"http://x-road.eu/xsd/op-monitoring.xsd serviceType"`
		Stats       struct {
			Inner []struct {
				XMLName xml.Name
				Value   string `xml:",chardata"`
			} `xml:",any"`
		} `xml:"http://x-road.eu/xsd/op-monitoring.xsd lastPeriodStatistics"`
	} `xml:"http://x-road.eu/xsd/op-monitoring.xsd servicesEvents>serviceEvents"`
}

func TestRenderHealthData(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		now := t0.Add(20 * time.Minute)
		rec := func(min, durMS int, reqB, respB int64, ok bool, svc, side string) *Record {
			in := t0.Add(time.Duration(min) * time.Minute)
			return &Record{Side: side, RequestInAt: in, ResponseOutAt: in.Add(time.Duration(durMS) * time.Millisecond),
				Client: hcmc, Service: svc, Protocol: "r1", RequestBytes: reqB, ResponseBytes: respB, Succeeded: ok}
		}
		s := xroadStore(t, dsn, now, []*Record{
			rec(5, 1, 1, 1, true, registry, "provider"), // before the period (t0+10m to t0+20m)
			rec(11, 10, 100, 1000, true, registry, "provider"),
			rec(12, 20, 200, 1000, true, registry, "provider"),
			rec(13, 30, 300, 1000, true, registry, "provider"),
			rec(14, 7, 5, 5, false, registry, "provider"),
			rec(15, 40, 50, 60, true, tax, "provider"),
			rec(15, 40, 50, 60, true, "VN/GOV/MOJ/courts/cases", "consumer"), // not provided here
		})
		body, err := s.RenderHealthData(t.Context(), HealthDataRequest{}, XRoadOptions{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		var got healthResponse
		if err := xml.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if got.Startup != now.UnixMilli() || got.Period != 600 {
			t.Errorf("startup %d, period %d; want %d, 600", got.Startup, got.Period, now.UnixMilli())
		}
		if len(got.Services) != 2 {
			t.Fatalf("%d services, want 2:\n%s", len(got.Services), body)
		}
		reg, tx := got.Services[0], got.Services[1]
		if reg.Service.Type != "SERVICE" || reg.Service.Code != "MOF" || reg.Service.Subsystem != "registry" || reg.Service.Service != "companies" || reg.Service.Version != "" ||
			tx.Service.Service != "returns" || tx.Service.Version != "v2" {
			t.Errorf("services %+v, %+v", reg.Service, tx.Service)
		}
		msAt := func(min, dur int) int64 {
			return t0.Add(time.Duration(min)*time.Minute + time.Duration(dur)*time.Millisecond).UnixMilli()
		}
		if reg.LastOK == nil || *reg.LastOK != msAt(13, 30) || reg.LastFailed == nil || *reg.LastFailed != msAt(14, 7) || reg.ServiceType != "REST" {
			t.Errorf("registry: last ok %v, last failed %v, type %q", reg.LastOK, reg.LastFailed, reg.ServiceType)
		}
		if tx.LastFailed != nil {
			t.Errorf("tax: last failed %d", *tx.LastFailed)
		}
		// Durations 10, 20, 30 ms; request sizes 100, 200, 300; responses
		// 1000 each: sample standard deviations 10, 100 and 0.
		wantStats := []string{"successfulRequestCount=3", "unsuccessfulRequestCount=1",
			"requestMinDuration=10", "requestAverageDuration=20", "requestMaxDuration=30", "requestDurationStdDev=10",
			"requestMinSize=100", "requestAverageSize=200", "requestMaxSize=300", "requestSizeStdDev=100",
			"responseMinSize=1000", "responseAverageSize=1000", "responseMaxSize=1000", "responseSizeStdDev=0"}
		var stats []string
		for _, e := range reg.Stats.Inner {
			if e.XMLName.Space != NamespaceOpMonitoring {
				t.Errorf("%s in namespace %q", e.XMLName.Local, e.XMLName.Space)
			}
			stats = append(stats, e.XMLName.Local+"="+e.Value)
		}
		if !slices.Equal(stats, wantStats) {
			t.Errorf("registry statistics\n got %v\nwant %v", stats, wantStats)
		}

		// Filtered by provider: only its services.
		body, err = s.RenderHealthData(t.Context(), HealthDataRequest{Client: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOT", Subsystem: "tax"}}, XRoadOptions{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		got = healthResponse{}
		if err := xml.Unmarshal(body, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Services) != 1 || got.Services[0].Service.Service != "returns" {
			t.Fatalf("filtered: %s", body)
		}
		if st := got.Services[0].Stats.Inner; len(st) != 14 || st[5].XMLName.Local != "requestDurationStdDev" || st[5].Value != "0" {
			t.Errorf("one request: %+v", st)
		}
	})
}

func TestSummary(t *testing.T) {
	var s summary
	for _, v := range []int64{2, 4, 4, 4, 5, 5, 7, 9} {
		s.add(v)
	}
	// Mean 5; squared deviations sum to 32; sample variance 32/7.
	if s.min != 2 || s.max != 9 || s.mean() != 5 || math.Abs(s.stdDev()-math.Sqrt(32.0/7)) > 1e-12 {
		t.Fatalf("%+v: mean %v, sd %v", s, s.mean(), s.stdDev())
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"plain", `q"b\s`, "\x00\x1f\n\t", "ünï 😀", "bad\xffbyte", "</script>"} {
		var got string
		if err := json.Unmarshal(appendJSONString(nil, s), &got); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Errorf("%q: got %q", s, got)
		}
	}
}

// FuzzParseOperationalDataRequest: any body is refused with
// ErrInvalidRequest or parses to a request RenderOperationalData accepts
// the shape of.
func FuzzParseOperationalDataRequest(f *testing.F) {
	f.Add(opData(criteria("1", "2", "")))
	f.Add(opData(criteria("1", "2", subsystemXML) + "<om:outputSpec><om:outputField>serviceCode</om:outputField></om:outputSpec>"))
	f.Add(`<!DOCTYPE a [<!ENTITY b "c">]>` + opData(criteria("&b;", "2", "")))
	f.Add(opData(criteria("9", "1", "")))
	f.Fuzz(func(t *testing.T, body string) {
		req, err := ParseOperationalDataRequest(strings.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("%q: %v does not wrap ErrInvalidRequest", body, err)
			}
			return
		}
		if req.RecordsFrom < 0 || req.RecordsTo < req.RecordsFrom || len(req.OutputFields) > len(OutputFields) {
			t.Fatalf("%q: parsed to %+v", body, req)
		}
		if !req.Client.IsZero() && req.Client.Validate() != nil {
			t.Fatalf("%q: client %+v", body, req.Client)
		}
		for _, o := range req.OutputFields {
			if !slices.Contains(OutputFields, o) {
				t.Fatalf("%q: output field %q", body, o)
			}
		}
	})
}

// FuzzParseHealthDataRequest: any body is refused with ErrInvalidRequest
// or parses to a valid filter.
func FuzzParseHealthDataRequest(f *testing.F) {
	f.Add(healthData(""))
	f.Add(healthData("<om:filterCriteria>" + subsystemXML + "</om:filterCriteria>"))
	f.Fuzz(func(t *testing.T, body string) {
		req, err := ParseHealthDataRequest(strings.NewReader(body))
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("%q: %v does not wrap ErrInvalidRequest", body, err)
			}
			return
		}
		if !req.Client.IsZero() && req.Client.Validate() != nil {
			t.Fatalf("%q: client %+v", body, req.Client)
		}
	})
}
