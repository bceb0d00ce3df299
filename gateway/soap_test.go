package gateway_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/soap"
)

// soapEcho answers a SOAP request as a service would: its header echoed
// around a response body.
func soapEcho(t *testing.T, seen *[]byte) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*seen = b
		env, err := soap.ParseRequest(b, soap.Limits{})
		if err != nil {
			t.Errorf("the service got a request it cannot parse: %v", err)
			rw.WriteHeader(500)
			return
		}
		out, _ := soap.Response(b, env, []byte(`<r:companiesResponse xmlns:r="urn:test"><r:name>Saigon Beer</r:name></r:companiesResponse>`))
		rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
		rw.Write(out)
	}
}

func soapHeader(t *testing.T, client, service, id string) soap.Header {
	c, err := ident.ParseClient(client)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ident.ParseService(service)
	if err != nil {
		t.Fatal(err)
	}
	return soap.Header{Client: soap.ClientFromIdent(c), Service: soap.ServiceFromIdent(s), ID: id, ProtocolVersion: "4.0", UserID: "EE12345"}
}

func postSOAP(t *testing.T, url string, body []byte, ct string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/", bytes.NewReader(body))
	req.Header.Set("Content-Type", ct)
	req.Header.Set("SOAPAction", `""`)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestSOAPThroughTwoGateways: a SOAP request crosses both gateways as
// the client sent it; the answer comes back with the request's header
// and requestHash; refusals are SOAP faults.
func TestSOAPThroughTwoGateways(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	var seen []byte
	answer := soapEcho(t, &seen)
	w.answer.Store(&answer)
	defer w.answer.Store(nil)

	h := soapHeader(t, hcmcClient, companies, "soap-1")
	req := h.Marshal([]byte(`<r:companies xmlns:r="urn:test"><r:taxCode>0100109106</r:taxCode></r:companies>`))
	resp, body := postSOAP(t, w.url, req, "text/xml; charset=utf-8")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	if !bytes.Equal(seen, req) {
		t.Errorf("the service got\n%s\nnot what the client sent\n%s", seen, req)
	}
	env, err := soap.Parse(body, soap.Limits{})
	if err != nil {
		t.Fatalf("answer: %v\n%s", err, body)
	}
	if err := soap.CheckConsistent(h, env.Header); err != nil {
		t.Errorf("answer header: %v", err)
	}
	if err := soap.CheckRequestHash(req, env.Header); err != nil {
		t.Errorf("requestHash: %v", err)
	}
	if !strings.Contains(string(body), "Saigon Beer") {
		t.Errorf("answer body: %s", body)
	}

	// An answer whose header names another id is refused.
	bad := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		env, _ := soap.ParseRequest(b, soap.Limits{})
		hh := env.Header
		hh.ID = "someone-else"
		rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
		rw.Write(hh.Marshal([]byte(`<r:companiesResponse xmlns:r="urn:test"/>`)))
	})
	w.answer.Store(&bad)
	resp, body = postSOAP(t, w.url, req, "text/xml")
	if f, err := soap.ParseFault(body, soap.Limits{}); err != nil || f.Code != soap.TypeInconsistentResponse || resp.StatusCode != 500 {
		t.Errorf("inconsistent answer: %d %+v %v\n%s", resp.StatusCode, f, err, body)
	}
	w.answer.Store(&answer)

	for _, c := range []struct {
		name, body, ct, code string
	}{
		{"malformed XML", `<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://schemas.xmlsoap.org/soap/envelope/"><SOAP-ENV:Body>`, "text/xml", soap.TypeInvalidSoap},
		{"entity declaration", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`, "text/xml", soap.TypeInvalidSoap},
		{"wrong protocol version", strings.Replace(string(req), ">4.0<", ">3.1<", 1), "text/xml", soap.TypeInvalidProtocolVersion},
		{"unknown client", string(soapHeader(t, "VN/GOV/NOBODY/app", companies, "x").Marshal([]byte(`<r:companies xmlns:r="urn:test"/>`))), "text/xml", r1.TypeUnknownClient},
		{"unknown service", string(soapHeader(t, hcmcClient, "VN/GOV/MOF/business-registry/nothing", "x").Marshal([]byte(`<r:nothing xmlns:r="urn:test"/>`))), "text/xml", r1.TypeServerUnknownSvc},
		{"policy denied", string(soapHeader(t, hcmcClient, "VN/GOV/MPS/residents/persons", "x").Marshal([]byte(`<r:persons xmlns:r="urn:test"/>`))), "text/xml", r1.TypeClientPolicyDenied},
		{"too large", string(h.Marshal([]byte(`<r:companies xmlns:r="urn:test">` + strings.Repeat("a", 70<<10) + `</r:companies>`))), "text/xml", r1.TypeRequestTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := postSOAP(t, w.url, []byte(c.body), c.ct)
			f, err := soap.ParseFault(body, soap.Limits{})
			if err != nil || f.Code != c.code || f.Detail == "" || resp.StatusCode != 500 {
				t.Errorf("status %d, fault %+v (%v), want %s\n%s", resp.StatusCode, f, err, c.code, body)
			}
		})
	}
}
