package soap

import (
	"bytes"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

// metaHeader is the header of a metaservice request to the provider's
// business-registry subsystem.
func metaHeader(code string) Header {
	h := wantHeader
	h.Service = ServiceID{ObjectType: ObjectService, Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "business-registry", Service: code}
	h.SecurityServer, h.RepresentedParty = nil, nil
	return h
}

func TestMetaRequests(t *testing.T) {
	for _, op := range []string{OpListMethods, OpAllowedMethods} {
		b := MetaRequest(metaHeader(op), op)
		env, err := Parse(b, Limits{})
		if err != nil {
			t.Fatalf("%s: %v\n%s", op, err, b)
		}
		if env.Operation.Name.Space != NSXRoad || env.Operation.Name.Local != op || env.Header.Service.Service != op {
			t.Errorf("%s: operation %v", op, env.Operation.Name)
		}
		mb, err := ParseMetaBody(b, env, Limits{})
		if err != nil || mb.Op != op {
			t.Errorf("%s: body %+v, %v", op, mb, err)
		}
	}
	b := GetWsdlRequest(metaHeader(OpGetWsdl), "companyDetails", "v2")
	env, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := ParseMetaBody(b, env, Limits{})
	if err != nil || mb.ServiceCode != "companyDetails" || mb.ServiceVersion != "v2" {
		t.Errorf("getWsdl body %+v, %v", mb, err)
	}
	// getWsdl without serviceCode, and a stranger's element, are refused.
	for _, body := range []string{`<xrd:getWsdl/>`, `<xrd:getWsdl><xrd:colour>red</xrd:colour></xrd:getWsdl>`, `<xrd:getWsdlAndMore/>`} {
		b := metaHeader(OpGetWsdl).Marshal([]byte(body))
		env, err := Parse(b, Limits{})
		if err != nil {
			// Refused already: the body element is not the service code.
			if body != `<xrd:getWsdlAndMore/>` {
				t.Errorf("%s: %v", body, err)
			}
			continue
		}
		if mb, err := ParseMetaBody(b, env, Limits{}); err == nil {
			t.Errorf("%s accepted: %+v", body, mb)
		}
	}
}

func TestAllowedMethodsResponse(t *testing.T) {
	req := MetaRequest(metaHeader(OpAllowedMethods), OpAllowedMethods)
	env, err := Parse(req, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var svcs []ident.ServiceID
	for _, s := range []string{"VN/GOV/MOF/business-registry/companyDetails/v2", "VN/GOV/MOF/business-registry/owners"} {
		id, err := ident.ParseService(s)
		if err != nil {
			t.Fatal(err)
		}
		svcs = append(svcs, id)
	}
	resp, err := Response(req, env, MethodsResponseBody(OpAllowedMethods, svcs))
	if err != nil {
		t.Fatal(err)
	}
	renv, err := Parse(resp, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := ParseMetaBody(resp, renv, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(mb.Services) != 2 {
		t.Fatalf("services = %+v", mb.Services)
	}
	for i, s := range mb.Services {
		if s.ObjectType != ObjectService {
			t.Errorf("service %d objectType %s", i, s.ObjectType)
		}
		got, err := s.Ident()
		if err != nil || got != svcs[i] {
			t.Errorf("service %d = %v, %v; want %v", i, got, err, svcs[i])
		}
	}
}

func TestGetWsdlResponseAttachment(t *testing.T) {
	req := GetWsdlRequest(metaHeader(OpGetWsdl), "companyDetails", "v2")
	env, err := Parse(req, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	soapPart, err := Response(req, env, GetWsdlResponseBody("companyDetails", "v2"))
	if err != nil {
		t.Fatal(err)
	}
	wsdl := `<definitions xmlns="http://schemas.xmlsoap.org/wsdl/" name="companies"/>`
	w := httptest.NewRecorder()
	mw := NewMultipartWriter(w)
	w.Header().Set("Content-Type", mw.ContentType())
	if err := WriteGetWsdlResponse(mw, soapPart, strings.NewReader(wsdl)); err != nil {
		t.Fatal(err)
	}
	mr, err := NewMultipartReader(w.Body, w.Header().Get("Content-Type"), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := mr.SOAPPart()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, soapPart) {
		t.Errorf("SOAP part changed")
	}
	renv, err := Parse(got, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	mb, err := ParseMetaBody(got, renv, Limits{})
	if err != nil || mb.Op != "getWsdlResponse" || mb.ServiceCode != "companyDetails" || mb.ServiceVersion != "v2" {
		t.Errorf("body %+v, %v", mb, err)
	}
	att, err := mr.NextAttachment()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(att.Body)
	if string(b) != wsdl || !strings.HasPrefix(att.ContentType, "text/xml") {
		t.Errorf("attachment %s %q", att.ContentType, b)
	}
	if _, err := mr.NextAttachment(); err != io.EOF {
		t.Errorf("after the WSDL: %v", err)
	}
}
