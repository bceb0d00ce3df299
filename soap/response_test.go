package soap

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
)

func TestInsertRequestHash(t *testing.T) {
	hash, err := HashRequest([]byte(request), DigestSHA512)
	if err != nil {
		t.Fatal(err)
	}
	b64 := base64.StdEncoding.EncodeToString(hash)
	resp := []byte(request)
	got, err := InsertRequestHash(resp, hash, DigestSHA512)
	if err != nil {
		t.Fatal(err)
	}
	// Every other byte is kept: removing the inserted element gives the
	// original back.
	el := `<xrd:requestHash xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" algorithmId="` + DigestSHA512 + `">` + b64 + `</xrd:requestHash>`
	if !bytes.Contains(got, []byte(el)) {
		t.Fatalf("no requestHash element in\n%s", got)
	}
	if back := bytes.Replace(got, []byte(el), nil, 1); !bytes.Equal(back, resp) {
		t.Fatalf("other bytes changed:\n%s", back)
	}
	env, err := Parse(got, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if rh := env.Header.RequestHash; rh == nil || rh.Value != b64 || rh.AlgorithmID != DigestSHA512 {
		t.Errorf("requestHash = %+v", env.Header.RequestHash)
	}

	// A requestHash already there (the service's own) is replaced.
	other, _ := HashRequest([]byte("other"), DigestSHA256)
	again, err := InsertRequestHash(got, other, DigestSHA256)
	if err != nil {
		t.Fatal(err)
	}
	env, err = Parse(again, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if rh := env.Header.RequestHash; rh == nil || rh.Value != base64.StdEncoding.EncodeToString(other) || rh.AlgorithmID != DigestSHA256 {
		t.Errorf("replaced requestHash = %+v", env.Header.RequestHash)
	}
	if n := bytes.Count(again, []byte("requestHash ")); n != 1 {
		t.Errorf("%d requestHash elements", n)
	}
	el2 := `<xrd:requestHash xmlns:xrd="http://x-road.eu/xsd/xroad.xsd" algorithmId="` + DigestSHA256 + `">` + base64.StdEncoding.EncodeToString(other) + `</xrd:requestHash>`
	if back := bytes.Replace(again, []byte(el2), nil, 1); !bytes.Equal(back, resp) {
		t.Fatalf("replacing changed other bytes:\n%s", back)
	}

	if _, err := InsertRequestHash(resp, hash, "urn:md5"); err == nil {
		t.Error("an unknown algorithm accepted")
	}
	if _, err := InsertRequestHash([]byte("<x/>"), hash, DigestSHA512); err == nil {
		t.Error("a non-SOAP response accepted")
	}
}

func TestCheckConsistent(t *testing.T) {
	if err := CheckConsistent(wantHeader, wantHeader); err != nil {
		t.Fatalf("equal headers: %v", err)
	}
	// The extensions and requestHash may differ.
	resp := wantHeader
	resp.RequestHash = &RequestHash{AlgorithmID: DigestSHA512, Value: "x"}
	resp.Purpose = ""
	if err := CheckConsistent(wantHeader, resp); err != nil {
		t.Fatalf("extensions differ: %v", err)
	}
	for _, c := range []struct {
		field  string
		change func(*Header)
	}{
		{"client", func(h *Header) { h.Client.Subsystem = "other" }},
		{"service", func(h *Header) { h.Service.Version = "v3" }},
		{"id", func(h *Header) { h.ID = "x" }},
		{"userId", func(h *Header) { h.UserID = "" }},
		{"issue", func(h *Header) { h.Issue = "other" }},
		{"protocolVersion", func(h *Header) { h.ProtocolVersion = "4.1" }},
	} {
		resp := wantHeader
		c.change(&resp)
		err := CheckConsistent(wantHeader, resp)
		var e *r1.Error
		if !errors.As(err, &e) || e.Type != TypeInconsistentResponse || !strings.Contains(e.Message, "'s "+c.field+" header") {
			t.Errorf("%s changed: %v", c.field, err)
		}
	}
}

func TestResponseEchoesHeader(t *testing.T) {
	// The rich request, asking listMethods instead.
	req := []byte(strings.Replace(strings.Replace(request,
		"<iden:serviceCode>companyDetails</iden:serviceCode>\n      <iden:serviceVersion>v2</iden:serviceVersion>", "<iden:serviceCode>listMethods</iden:serviceCode>", 1),
		"<tax:companyDetails><tax:code>0312345678</tax:code></tax:companyDetails>", "<xrd:listMethods/>", 1))
	env, err := Parse(req, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ident.ParseService("VN/GOV/MOF/business-registry/companyDetails/v2")
	body := MethodsResponseBody(OpListMethods, []ident.ServiceID{s})
	resp, err := Response(req, env, body)
	if err != nil {
		t.Fatal(err)
	}
	renv, err := Parse(resp, Limits{})
	if err != nil {
		t.Fatalf("%v\n%s", err, resp)
	}
	if !bytes.Equal(renv.HeaderSpan.Bytes(resp), env.HeaderSpan.Bytes(req)) {
		t.Error("the header is not echoed byte for byte")
	}
	if err := CheckConsistent(env.Header, renv.Header); err != nil {
		t.Error(err)
	}
	mb, err := ParseMetaBody(resp, renv, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if mb.Op != "listMethodsResponse" || len(mb.Services) != 1 || mb.Services[0] != ServiceFromIdent(s) {
		t.Errorf("body = %+v", mb)
	}
}

func TestCheckRequestHash(t *testing.T) {
	req := []byte(request)
	hash, _ := HashRequest(req, DigestSHA256)
	resp, err := InsertRequestHash(req, hash, DigestSHA256)
	if err != nil {
		t.Fatal(err)
	}
	env, err := Parse(resp, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRequestHash(req, env.Header); err != nil {
		t.Fatalf("the right hash: %v", err)
	}
	other := append([]byte(nil), req...)
	other[len(other)-2] = ' ' // one byte of the request differs
	for name, c := range map[string]struct {
		req []byte
		h   Header
	}{
		"another request": {other, env.Header},
		"no requestHash":  {req, wantHeader},
		"unknown algorithm": {req, func() Header {
			h := env.Header
			h.RequestHash = &RequestHash{AlgorithmID: "urn:md5", Value: h.RequestHash.Value}
			return h
		}()},
		"not base64": {req, func() Header {
			h := env.Header
			h.RequestHash = &RequestHash{AlgorithmID: DigestSHA256, Value: "%%"}
			return h
		}()},
	} {
		err := CheckRequestHash(c.req, c.h)
		var e *r1.Error
		if !errors.As(err, &e) || e.Type != TypeInconsistentResponse {
			t.Errorf("%s: %v", name, err)
		}
	}
}
