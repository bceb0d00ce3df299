package soap

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

// request is a well-formed request in the prefixes clients commonly use,
// with the extensions and a pass-through header.
const request = `<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" xmlns:iden="http://x-road.eu/xsd/identifiers"
    xmlns:repr="http://x-road.eu/xsd/representation.xsd" xmlns:sx="urn:sampan:xroad:ext:1"
    xmlns:tax="https://tax.example/companies">
  <soapenv:Header>
    <xrd:client iden:objectType="SUBSYSTEM">
      <iden:xRoadInstance>VN</iden:xRoadInstance>
      <iden:memberClass>GOV</iden:memberClass>
      <iden:memberCode>HCMC</iden:memberCode>
      <iden:subsystemCode>one-stop</iden:subsystemCode>
    </xrd:client>
    <xrd:service iden:objectType="SERVICE">
      <iden:xRoadInstance>VN</iden:xRoadInstance>
      <iden:memberClass>GOV</iden:memberClass>
      <iden:memberCode>MOF</iden:memberCode>
      <iden:subsystemCode>business-registry</iden:subsystemCode>
      <iden:serviceCode>companyDetails</iden:serviceCode>
      <iden:serviceVersion>v2</iden:serviceVersion>
    </xrd:service>
    <xrd:id>7d0c5c0e-2b7c-4a51-9c55-1f0e6f1c2a11</xrd:id>
    <xrd:userId>VN079123456789</xrd:userId>
    <xrd:issue>case-2026-118</xrd:issue>
    <xrd:protocolVersion>4.0</xrd:protocolVersion>
    <xrd:securityServer iden:objectType="SERVER">
      <iden:xRoadInstance>VN</iden:xRoadInstance>
      <iden:memberClass>GOV</iden:memberClass>
      <iden:memberCode>MOF</iden:memberCode>
      <iden:serverCode>gw1</iden:serverCode>
    </xrd:securityServer>
    <repr:representedParty>
      <repr:partyClass>COM</repr:partyClass>
      <repr:partyCode>0312345678</repr:partyCode>
    </repr:representedParty>
    <sx:purpose>licence-renewal</sx:purpose>
    <sx:legalBasis>Decree 01/2021 art. 12</sx:legalBasis>
    <tax:trace soapenv:mustUnderstand="1">abc</tax:trace>
  </soapenv:Header>
  <soapenv:Body>
    <tax:companyDetails><tax:code>0312345678</tax:code></tax:companyDetails>
  </soapenv:Body>
</soapenv:Envelope>
`

// wantHeader is request's header.
var wantHeader = Header{
	Client:           ClientID{ObjectType: ObjectSubsystem, Instance: "VN", Class: "GOV", Code: "HCMC", Subsystem: "one-stop"},
	Service:          ServiceID{ObjectType: ObjectService, Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "business-registry", Service: "companyDetails", Version: "v2"},
	ID:               "7d0c5c0e-2b7c-4a51-9c55-1f0e6f1c2a11",
	UserID:           "VN079123456789",
	Issue:            "case-2026-118",
	ProtocolVersion:  "4.0",
	SecurityServer:   &SecurityServerID{Instance: "VN", Class: "GOV", Code: "MOF", ServerCode: "gw1"},
	RepresentedParty: &RepresentedParty{Class: "COM", Code: "0312345678"},
	Purpose:          "licence-renewal",
	LegalBasis:       "Decree 01/2021 art. 12",
}

func TestParseRequest(t *testing.T) {
	b := []byte(request)
	env, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got := env.Header
	if len(got.Other) != 1 || got.Other[0].Name.Local != "trace" || !got.Other[0].MustUnderstand {
		t.Fatalf("Other = %+v, want the tax:trace header", got.Other)
	}
	if s := string(got.Other[0].Span.Bytes(b)); s != `<tax:trace soapenv:mustUnderstand="1">abc</tax:trace>` {
		t.Errorf("pass-through bytes = %q", s)
	}
	got.Other = nil
	if !reflect.DeepEqual(got, wantHeader) {
		t.Errorf("header =\n%+v\nwant\n%+v", got, wantHeader)
	}
	if env.Operation.Name.Space != "https://tax.example/companies" || env.Operation.Name.Local != "companyDetails" {
		t.Errorf("operation = %v", env.Operation.Name)
	}
	for _, c := range []struct {
		span       Span
		prefix, sf string
	}{
		{env.Operation.Span, "<tax:companyDetails>", "</tax:companyDetails>"},
		{env.HeaderSpan, "<soapenv:Header>", "</soapenv:Header>"},
		{env.BodySpan, "<soapenv:Body>", "</soapenv:Body>"},
		{env.HeaderEndTag, "</soapenv:Header>", "</soapenv:Header>"},
		{env.EnvelopeStartTag, "<soapenv:Envelope ", `xmlns:tax="https://tax.example/companies">`},
		{env.EnvelopeEndTag, "</soapenv:Envelope>", "</soapenv:Envelope>"},
	} {
		s := string(c.span.Bytes(b))
		if !strings.HasPrefix(s, c.prefix) || !strings.HasSuffix(s, c.sf) {
			t.Errorf("span %v = %q, want %q…%q", c.span, s, c.prefix, c.sf)
		}
	}
	if env.Fault != nil {
		t.Error("a request parsed as a fault")
	}
}

func TestParseBOMAndMarshalRoundTrip(t *testing.T) {
	b := wantHeader.Marshal([]byte(`<m:companyDetails xmlns:m="urn:x"/>`))
	env, err := Parse(append([]byte("\xef\xbb\xbf"), b...), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(env.Header, wantHeader) {
		t.Errorf("header =\n%+v\nwant\n%+v", env.Header, wantHeader)
	}
}

// replace returns request with old replaced by new, failing the test when
// old is not there.
func replace(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(request, old) {
		t.Fatalf("request has no %q", old)
	}
	return strings.Replace(request, old, new, 1)
}

func TestParseRefusals(t *testing.T) {
	nested := strings.Repeat("<a>", 70) + strings.Repeat("</a>", 70)
	attrs := "<tax:x"
	for i := range 40 {
		attrs += " a" + string(rune('a'+i%26)) + string(rune('a'+i/26)) + `="1"`
	}
	attrs += "/>"
	for _, c := range []struct {
		name string
		doc  string
		lim  Limits
		typ  string
	}{
		{"not XML", "hello", Limits{}, TypeInvalidSoap},
		{"malformed XML", replace(t, "</soapenv:Body>", "</soapenv:Bod>"), Limits{}, TypeInvalidSoap},
		{"truncated", request[:len(request)/2], Limits{}, TypeInvalidSoap},
		{"not an envelope", `<a xmlns="urn:x"/>`, Limits{}, TypeInvalidSoap},
		{"SOAP 1.2", strings.ReplaceAll(request, "http://schemas.xmlsoap.org/soap/envelope/", "http://www.w3.org/2003/05/soap-envelope"), Limits{}, TypeInvalidSoap},
		{"missing header", `<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/"><e:Body><x/></e:Body></e:Envelope>`, Limits{}, TypeMissingHeader},
		{"missing client", cut(t, "<xrd:client", "</xrd:client>"), Limits{}, TypeMissingHeaderField},
		{"missing service", cut(t, "<xrd:service", "</xrd:service>"), Limits{}, TypeMissingHeaderField},
		{"missing id", cut(t, "<xrd:id>", "</xrd:id>"), Limits{}, TypeMissingHeaderField},
		{"missing protocolVersion", cut(t, "<xrd:protocolVersion>", "</xrd:protocolVersion>"), Limits{}, TypeMissingHeaderField},
		{"wrong protocolVersion", replace(t, ">4.0<", ">3.1<"), Limits{}, TypeInvalidProtocolVersion},
		{"duplicate id", replace(t, "<xrd:issue>", "<xrd:id>again</xrd:id><xrd:issue>"), Limits{}, TypeDuplicateHeaderField},
		{"client without objectType", replace(t, `<xrd:client iden:objectType="SUBSYSTEM">`, `<xrd:client>`), Limits{}, r1.TypeInvalidClientID},
		{"client MEMBER with subsystem", replace(t, `<xrd:client iden:objectType="SUBSYSTEM">`, `<xrd:client iden:objectType="MEMBER">`), Limits{}, r1.TypeInvalidClientID},
		{"client bad instance", replace(t, "<iden:xRoadInstance>VN</iden:xRoadInstance>", "<iden:xRoadInstance>vn</iden:xRoadInstance>"), Limits{}, r1.TypeInvalidClientID},
		{"service of a member", replace(t, "<iden:subsystemCode>business-registry</iden:subsystemCode>", ""), Limits{}, r1.TypeInvalidServiceID},
		{"service objectType", replace(t, `<xrd:service iden:objectType="SERVICE">`, `<xrd:service iden:objectType="CENTRALSERVICE">`), Limits{}, r1.TypeInvalidServiceID},
		{"central service", replace(t, "<xrd:id>", `<xrd:centralService iden:objectType="CENTRALSERVICE"/><xrd:id>`), Limits{}, r1.TypeInvalidServiceID},
		{"unknown identifier part", replace(t, "<iden:serviceVersion>", "<iden:colour>red</iden:colour><iden:serviceVersion>"), Limits{}, r1.TypeInvalidServiceID},
		{"element in a text field", replace(t, "<xrd:id>7d0c", "<xrd:id><b/>7d0c"), Limits{}, TypeInvalidSoap},
		{"body not named after the service", replace(t, "<iden:serviceCode>companyDetails<", "<iden:serviceCode>owners<"), Limits{}, TypeInconsistentHeaders},
		{"two body children", replace(t, "</tax:companyDetails>", "</tax:companyDetails><tax:more/>"), Limits{}, TypeInvalidBody},
		{"empty body", replace(t, "<tax:companyDetails><tax:code>0312345678</tax:code></tax:companyDetails>", ""), Limits{}, TypeMissingBody},
		{"text in body", replace(t, "<tax:companyDetails>", "oops<tax:companyDetails>"), Limits{}, TypeInvalidSoap},
		{"missing body", cut(t, "<soapenv:Body>", "</soapenv:Body>"), Limits{}, TypeMissingBody},
		{"element after body", replace(t, "</soapenv:Body>", "</soapenv:Body><soapenv:Trailer/>"), Limits{}, TypeInvalidSoap},
		{"doctype", strings.Replace(request, "?>", "?><!DOCTYPE x [<!ENTITY a \"b\">]>", 1), Limits{}, TypeInvalidSoap},
		{"external entity", strings.Replace(request, "?>", `?><!DOCTYPE soapenv:Envelope [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`, 1), Limits{}, TypeInvalidSoap},
		{"doctype inside body", replace(t, "<tax:code>", "<tax:code><!DOCTYPE x>"), Limits{}, TypeInvalidSoap},
		{"billion laughs", billionLaughs, Limits{}, TypeInvalidSoap},
		{"undeclared entity", replace(t, "case-2026-118", "&xxe;"), Limits{}, TypeInvalidSoap},
		{"processing instruction", replace(t, "<soapenv:Body>", "<soapenv:Body><?php x?>"), Limits{}, TypeInvalidSoap},
		{"declaration not first", "\n" + request, Limits{}, TypeInvalidSoap},
		{"too deep", replace(t, "<tax:code>", "<tax:code>"+nested), Limits{}, TypeInvalidSoap},
		{"too many attributes", replace(t, "<tax:code>", attrs+"<tax:code>"), Limits{}, TypeInvalidSoap},
		{"name too long", replace(t, "<tax:code>0312345678</tax:code>", "<tax:"+strings.Repeat("n", 300)+"/>"), Limits{}, TypeInvalidSoap},
		{"header field too long", replace(t, "case-2026-118", strings.Repeat("x", 2000)), Limits{}, TypeInvalidSoap},
		{"oversize", request, Limits{MaxSOAPSize: 512}, r1.TypeRequestTooLarge},
		{"must understand, actor next", replace(t, `<tax:trace soapenv:mustUnderstand="1">`, `<tax:trace soapenv:mustUnderstand="1" soapenv:actor="http://schemas.xmlsoap.org/soap/actor/next">`), Limits{}, TypeMustUnderstand},
		{"ISO-8859-1", strings.Replace(request, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1), Limits{}, TypeInvalidSoap},
	} {
		t.Run(c.name, func(t *testing.T) {
			env, err := Parse([]byte(c.doc), c.lim)
			if err == nil {
				t.Fatalf("accepted: %+v", env.Header)
			}
			t.Log(err)
			var e *r1.Error
			if !errors.As(err, &e) {
				t.Fatalf("error %v is not an *r1.Error", err)
			}
			if e.Type != c.typ {
				t.Errorf("type = %s (%v), want %s", e.Type, err, c.typ)
			}
			if strings.Contains(e.Message, "passwd") {
				t.Errorf("message quotes the input: %s", e.Message)
			}
		})
	}
}

// billionLaughs is the classic entity expansion.
var billionLaughs = `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><x>&lol3;</x></soapenv:Body></soapenv:Envelope>`

// cut returns request without the text from the first from to the
// following to, inclusive.
func cut(t *testing.T, from, to string) string {
	t.Helper()
	i := strings.Index(request, from)
	j := strings.Index(request[i:], to)
	if i < 0 || j < 0 {
		t.Fatalf("request has no %q…%q", from, to)
	}
	return request[:i] + request[i+j+len(to):]
}

func TestMustUnderstandPassedThrough(t *testing.T) {
	// Without actor next, a mustUnderstand header is for the service:
	// the gateway passes it through.
	env, err := Parse([]byte(request), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(env.Header.Other) != 1 {
		t.Fatalf("Other = %v", env.Header.Other)
	}
}

func TestIdentRoundTrip(t *testing.T) {
	c, err := ident.ParseClient("VN/GOV/HCMC/one-stop")
	if err != nil {
		t.Fatal(err)
	}
	m, _ := ident.ParseClient("VN/GOV/HCMC")
	s, _ := ident.ParseService("VN/GOV/MOF/business-registry/companyDetails/v2")
	s1, _ := ident.ParseService("VN/GOV/MOF/business-registry/companyDetails")
	g, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	for _, id := range []ident.ClientID{c, m} {
		got, err := ClientFromIdent(id).Ident()
		if err != nil || got != id {
			t.Errorf("client %v round trip = %v, %v", id, got, err)
		}
	}
	if ClientFromIdent(m).ObjectType != ObjectMember || ClientFromIdent(c).ObjectType != ObjectSubsystem {
		t.Error("object types of member and subsystem")
	}
	for _, id := range []ident.ServiceID{s, s1} {
		got, err := ServiceFromIdent(id).Ident()
		if err != nil || got != id {
			t.Errorf("service %v round trip = %v, %v", id, got, err)
		}
	}
	if got, err := SecurityServerFromIdent(g).Ident(); err != nil || got != g {
		t.Errorf("gateway round trip = %v, %v", got, err)
	}
	if _, err := (ClientID{ObjectType: ObjectSubsystem, Instance: "VN", Class: "GOV", Code: "HCMC"}).Ident(); err == nil {
		t.Error("a SUBSYSTEM without subsystemCode converted")
	}
}

func TestReadSOAPBound(t *testing.T) {
	if _, err := ReadSOAP(bytes.NewReader(make([]byte, 101)), Limits{MaxSOAPSize: 100}); err == nil {
		t.Error("101 bytes read with a limit of 100")
	}
	if b, err := ReadSOAP(bytes.NewReader(make([]byte, 100)), Limits{MaxSOAPSize: 100}); err != nil || len(b) != 100 {
		t.Errorf("100 bytes: %d, %v", len(b), err)
	}
}

func TestParseRequestRefusesFault(t *testing.T) {
	b := NewFault(r1.New(r1.TypeNetworkError, "x"), "1", SpellingCamel).Marshal()
	if _, err := Parse(b, Limits{}); err != nil {
		t.Fatalf("Parse of a fault: %v", err)
	}
	_, err := ParseRequest(b, Limits{})
	var e *r1.Error
	if !errors.As(err, &e) || e.Type != TypeInvalidBody {
		t.Errorf("ParseRequest of a fault: %v", err)
	}
	if _, err := ParseRequest([]byte(request), Limits{}); err != nil {
		t.Fatal(err)
	}
}

func TestRepresentedPartyForm(t *testing.T) {
	for _, c := range []struct {
		s    string
		want RepresentedParty
		ok   bool
	}{
		{"COM/0312345678", RepresentedParty{Class: "COM", Code: "0312345678"}, true},
		{"0312345678", RepresentedParty{Code: "0312345678"}, true},
		{"COM/", RepresentedParty{}, false},
		{"A/B/C", RepresentedParty{}, false},
		{"", RepresentedParty{}, false},
	} {
		got, err := ParseRepresentedParty(c.s)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("%q: %+v, %v", c.s, got, err)
		}
		if c.ok && got.String() != c.s {
			t.Errorf("%q: String = %q", c.s, got.String())
		}
	}
}
