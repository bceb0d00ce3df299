package gateway_test

import (
	"bytes"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// The conformance rows of docs/soap.md that run over real gateways. They
// share TestSOAPThroughTwoGateways's world: each is a function of it.

// soapFaultCase is one refusal: a request and the fault it must get.
type soapFaultCase struct {
	name     string // "PR-MESS section: what", cited by docs/soap.md
	body, ct string
	code     string
}

// soapFaultCases are the fault classes of PR-MESS 2.5 that a client can
// cause, each cited by its section. h is a valid header for companies
// (answered by the test's service), req its request.
func soapFaultCases(t *testing.T, h soap.Header, req []byte) []soapFaultCase {
	s := string(req)
	mk := func(client, service, body string) string {
		return string(soapHeader(t, client, service, "x").Marshal([]byte(body)))
	}
	serviceElem := regexp.MustCompile(`<xrd:service .*?</xrd:service>`)
	central := serviceElem.ReplaceAllLiteralString(s, `<xrd:centralService id:objectType="CENTRALSERVICE"><id:xRoadInstance>VN</id:xRoadInstance><id:serviceCode>companies</id:serviceCode></xrd:centralService>`)
	memberService := serviceElem.ReplaceAllStringFunc(s, func(e string) string {
		return regexp.MustCompile(`<id:subsystemCode>[^<]*</id:subsystemCode>`).ReplaceAllLiteralString(e, "")
	})
	// A multipart message whose SOAP part is base64, not 8bit.
	var b64 bytes.Buffer
	mw := multipart.NewWriter(&b64)
	pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {soap.ContentTypeSOAP}, "Content-Transfer-Encoding": {"base64"}})
	pw.Write([]byte("PHg+PC94Pg=="))
	mw.Close()
	laughs := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>` +
		`<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + soap.NSEnvelope + `"><SOAP-ENV:Body><x>&lol3;</x></SOAP-ENV:Body></SOAP-ENV:Envelope>`
	return []soapFaultCase{
		{"PR-MESS 2: malformed XML", `<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + soap.NSEnvelope + `"><SOAP-ENV:Body>`, "text/xml", soap.TypeInvalidSoap},
		{"PR-MESS 2: entity declaration", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>`, "text/xml", soap.TypeInvalidSoap},
		{"PR-MESS 2: external entity (XXE)", `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>` + strings.Replace(s, "<xrd:userId>EE12345", "<xrd:userId>&e;", 1), "text/xml", soap.TypeInvalidSoap},
		{"PR-MESS 2: billion laughs", laughs, "text/xml", soap.TypeInvalidSoap},
		{"PR-MESS 2: SOAP 1.2 envelope", `<env:Envelope xmlns:env="` + soap.NSEnvelope12 + `"><env:Header/><env:Body><r:companies xmlns:r="urn:test"/></env:Body></env:Envelope>`, "text/xml", soap.TypeInvalidSoap},
		{"PR-MESS 2: SOAP 1.2 content type", s, "application/soap+xml; charset=utf-8", soap.TypeInvalidContentType},
		{"PR-MESS 2: content type not text/xml", s, "application/xml", soap.TypeInvalidContentType},
		{"PR-MESS 2.1: client objectType not matching its parts", strings.Replace(s, `<xrd:client id:objectType="SUBSYSTEM">`, `<xrd:client id:objectType="MEMBER">`, 1), "text/xml", r1.TypeInvalidClientID},
		{"PR-MESS 2.1: member-level service", memberService, "text/xml", r1.TypeInvalidServiceID},
		{"PR-MESS 2.2: missing header", `<SOAP-ENV:Envelope xmlns:SOAP-ENV="` + soap.NSEnvelope + `"><SOAP-ENV:Body><r:companies xmlns:r="urn:test"/></SOAP-ENV:Body></SOAP-ENV:Envelope>`, "text/xml", soap.TypeMissingHeader},
		{"PR-MESS 2.2: missing header field", strings.Replace(s, "<xrd:id>"+h.ID+"</xrd:id>", "", 1), "text/xml", soap.TypeMissingHeaderField},
		{"PR-MESS 2.2: duplicate header field", strings.Replace(s, "<xrd:protocolVersion>4.0</xrd:protocolVersion>", "<xrd:protocolVersion>4.0</xrd:protocolVersion><xrd:protocolVersion>4.0</xrd:protocolVersion>", 1), "text/xml", soap.TypeDuplicateHeaderField},
		{"PR-MESS 2.2: wrong protocol version", strings.Replace(s, ">4.0<", ">3.1<", 1), "text/xml", soap.TypeInvalidProtocolVersion},
		{"PR-MESS 2.2: central service", central, "text/xml", r1.TypeInvalidServiceID},
		{"PR-MESS 2.3: body element not the service code", mk(hcmcClient, companies, `<r:persons xmlns:r="urn:test"/>`), "text/xml", soap.TypeInconsistentHeaders},
		{"PR-MESS 2.3: two body elements", strings.Replace(s, "</SOAP-ENV:Body>", `<r:companies xmlns:r="urn:test"/></SOAP-ENV:Body>`, 1), "text/xml", soap.TypeInvalidBody},
		{"PR-MESS 2.4: malformed multipart", "--xyz\r\nnot a part", `multipart/related; type="text/xml"; boundary=xyz`, soap.TypeMimeParsingFailed},
		{"PR-MESS 2.4: SOAP part not 8bit", b64.String(), `multipart/related; type="text/xml"; boundary=` + mw.Boundary(), soap.TypeMimeParsingFailed},
		{"PR-MESS 2.5: unknown client", mk("VN/GOV/NOBODY/app", companies, `<r:companies xmlns:r="urn:test"/>`), "text/xml", r1.TypeUnknownClient},
		{"PR-MESS 2.5: unknown service", mk(hcmcClient, "VN/GOV/MOF/business-registry/nothing", `<r:nothing xmlns:r="urn:test"/>`), "text/xml", r1.TypeServerUnknownSvc},
		{"PR-MESS 2.5: access denied", mk(hcmcClient, "VN/GOV/MOF/document-exchange/sendDocument", `<d:sendDocument xmlns:d="urn:sampan:sandbox:document-exchange:1"><d:title>t</d:title></d:sendDocument>`), "text/xml", r1.TypeServerAccessDenied},
		{"PR-MESS 2.5: policy denied", mk(hcmcClient, persons, `<r:persons xmlns:r="urn:test"/>`), "text/xml", r1.TypeClientPolicyDenied},
		{"PR-MESS 2.5: SOAP part too large", string(h.Marshal([]byte(`<r:companies xmlns:r="urn:test">` + strings.Repeat("a", 70<<10) + `</r:companies>`))), "text/xml", r1.TypeRequestTooLarge},
		{"PR-MESS 2.6: charset other than UTF-8", s, "text/xml; charset=ISO-8859-1", soap.TypeInvalidContentType},
		{"PR-MESS 2.6: XML declared in another encoding", strings.Replace(s, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1), "text/xml", soap.TypeInvalidSoap},
	}
}

// runSOAPFaults posts each fault case to the HCMC gateway: each is a
// SOAP 1.1 fault with HTTP status 500, the code wanted, and the
// exchange id as its detail.
func runSOAPFaults(t *testing.T, w *world, cases []soapFaultCase) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := postSOAP(t, w.url, []byte(c.body), c.ct)
			f, err := soap.ParseFault(body, soap.Limits{})
			if err != nil || f.Code != c.code || f.Detail == "" || resp.StatusCode != soap.FaultStatus {
				t.Errorf("status %d, fault %+v (%v), want %s\n%s", resp.StatusCode, f, err, c.code, body)
			}
			if got := resp.Header.Get("Content-Type"); !soap.IsSOAP(got) {
				t.Errorf("fault content type %q", got)
			}
		})
	}
}

// soapTampered: a SOAP request or answer changed after its gateway
// signed it is refused by the other gateway (PR-MESS 2.5 faults;
// Sampan's signatures over the exact bytes).
func soapTampered(t *testing.T, w *world, req []byte) {
	for _, c := range []struct {
		name string
		tp   tamper
		code string
	}{
		{"PR-MESS 2.5: request changed after signing", tamper{req: flipRequestBody}, r1.TypeServerSignature},
		{"PR-MESS 2.5: answer changed after signing", tamper{resp: func(r *http.Response) { r.Body = flipFirst(r.Body) }}, r1.TypeClientSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			w.tamper.Store(&c.tp)
			defer w.tamper.Store(nil)
			resp, body := postSOAP(t, w.url, req, "text/xml")
			f, err := soap.ParseFault(body, soap.Limits{})
			if err != nil || f.Code != c.code || resp.StatusCode != soap.FaultStatus {
				t.Errorf("status %d, fault %+v (%v), want %s\n%s", resp.StatusCode, f, err, c.code, body)
			}
		})
	}
}

// soapHeadersAndFaults: what PR-MESS 2.2 says of HTTP headers, requestHash
// and the service's own faults, through both gateways.
func soapHeadersAndFaults(t *testing.T, w *world, h soap.Header, req []byte) {
	var seen []byte
	echo := soapEcho(t, &seen)
	t.Run("PR-MESS 2.2: Content-Type and SOAPAction reach the service, other headers do not", func(t *testing.T) {
		var got http.Header
		svc := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			got = r.Header.Clone()
			b, _ := io.ReadAll(r.Body)
			env, _ := soap.ParseRequest(b, soap.Limits{})
			out, _ := soap.Response(b, env, []byte(`<r:companiesResponse xmlns:r="urn:test"/>`))
			rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
			rw.Write(out)
		})
		w.answer.Store(&svc)
		defer w.answer.Store(nil)
		hr, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.url+"/", bytes.NewReader(req))
		hr.Header.Set("Content-Type", "text/xml; charset=utf-8")
		hr.Header.Set("SOAPAction", `"urn:test#companies"`)
		hr.Header.Set("X-Private-Note", "stays at the client's gateway")
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		if got.Get("SOAPAction") != `"urn:test#companies"` || got.Get("Content-Type") != "text/xml; charset=utf-8" {
			t.Errorf("the service got SOAPAction %q, Content-Type %q", got.Get("SOAPAction"), got.Get("Content-Type"))
		}
		if got.Get("X-Private-Note") != "" {
			t.Errorf("a client HTTP header other than Content-Type and SOAPAction reached the service")
		}
	})

	t.Run("PR-MESS 2.2: a requestHash from the service is replaced", func(t *testing.T) {
		svc := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			env, _ := soap.ParseRequest(b, soap.Limits{})
			out, _ := soap.Response(b, env, []byte(`<r:companiesResponse xmlns:r="urn:test"/>`))
			out, _ = soap.InsertRequestHash(out, bytes.Repeat([]byte{7}, 64), soap.DigestSHA512)
			rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
			rw.Write(out)
		})
		w.answer.Store(&svc)
		defer w.answer.Store(nil)
		resp, body := postSOAP(t, w.url, req, "text/xml")
		env, err := soap.Parse(body, soap.Limits{})
		if resp.StatusCode != 200 || err != nil {
			t.Fatalf("status %d, %v\n%s", resp.StatusCode, err, body)
		}
		if err := soap.CheckRequestHash(req, env.Header); err != nil || bytes.Count(body, []byte("requestHash>")) != 1 {
			t.Errorf("requestHash: %v\n%s", err, body)
		}
	})

	t.Run("PR-MESS 2.2: requestHash in an answer with attachments", func(t *testing.T) {
		attachment := bytes.Repeat([]byte("scanned page "), 20000)
		var mangle atomic.Bool
		svc := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			env, _ := soap.ParseRequest(b, soap.Limits{})
			if mangle.Load() {
				env.Header.ID = "another-id"
				b = env.Header.Marshal([]byte(`<r:companies xmlns:r="urn:test"/>`))
				env, _ = soap.ParseRequest(b, soap.Limits{})
			}
			out, _ := soap.Response(b, env, []byte(`<r:companiesResponse xmlns:r="urn:test"><r:scan href="cid:scan"/></r:companiesResponse>`))
			var buf bytes.Buffer
			mw := soap.NewMultipartWriter(&buf)
			mw.WriteSOAP(out)
			mw.WriteAttachment(soap.Attachment{ContentID: "scan", ContentType: "application/octet-stream", Body: bytes.NewReader(attachment)})
			mw.Close()
			rw.Header().Set("Content-Type", mw.ContentType())
			rw.Write(buf.Bytes())
		})
		w.answer.Store(&svc)
		defer w.answer.Store(nil)
		resp, body := postSOAP(t, w.url, req, "text/xml")
		if resp.StatusCode != 200 {
			t.Fatalf("status %d\n%s", resp.StatusCode, body)
		}
		mr, err := soap.NewMultipartReader(bytes.NewReader(body), resp.Header.Get("Content-Type"), soap.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		part, _, err := mr.SOAPPart()
		if err != nil {
			t.Fatal(err)
		}
		env, err := soap.Parse(part, soap.Limits{})
		if err != nil || soap.CheckRequestHash(req, env.Header) != nil || soap.CheckConsistent(h, env.Header) != nil {
			t.Errorf("SOAP part: %v\n%s", err, part)
		}
		att, err := mr.NextAttachment()
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := io.ReadAll(att.Body); !bytes.Equal(got, attachment) {
			t.Errorf("the attachment changed on its way: %d bytes, want %d", len(got), len(attachment))
		}
		mangle.Store(true)
		resp, body = postSOAP(t, w.url, req, "text/xml")
		if f, err := soap.ParseFault(body, soap.Limits{}); err != nil || f.Code != soap.TypeInconsistentResponse {
			t.Errorf("an answer with attachments naming another id: %d %+v %v", resp.StatusCode, f, err)
		}
	})

	t.Run("PR-MESS 2.5: the service's own fault passes unchanged", func(t *testing.T) {
		fault := []byte(`<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<e:Envelope xmlns:e="` + soap.NSEnvelope + `"><e:Body><e:Fault><faultcode>e:Server.Registry.Busy</faultcode><faultstring>the registry is closed for maintenance</faultstring><detail><m:retryAfter xmlns:m="urn:test">600</m:retryAfter></detail></e:Fault></e:Body></e:Envelope>` + "\n")
		svc := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
			rw.WriteHeader(http.StatusInternalServerError)
			rw.Write(fault)
		})
		w.answer.Store(&svc)
		defer w.answer.Store(nil)
		resp, body := postSOAP(t, w.url, req, "text/xml")
		if resp.StatusCode != http.StatusInternalServerError || !bytes.Equal(body, fault) {
			t.Errorf("status %d, body\n%s\nwant the service's fault unchanged", resp.StatusCode, body)
		}
		// And the sandbox's getCompany, asked for a company it does not
		// know.
		w.answer.Store(nil)
		defer w.answer.Store(&echo)
		ask := soapHeader(t, hcmcClient, "VN/GOV/MOF/business-registry/getCompany/v1", "gc-unknown")
		resp, body = postSOAP(t, w.url, ask.Marshal([]byte(`<b:getCompany xmlns:b="urn:sampan:sandbox:business-registry:1"><b:taxCode>0000000000</b:taxCode></b:getCompany>`)), "text/xml")
		f, err := soap.ParseFault(body, soap.Limits{})
		if err != nil || !strings.HasSuffix(f.Code, "Client") || !bytes.Contains(body, []byte("unknownCompany")) || resp.StatusCode != soap.FaultStatus {
			t.Errorf("status %d, fault %+v %v\n%s", resp.StatusCode, f, err, body)
		}
	})

	w.answer.Store(&echo)
	defer w.answer.Store(nil)
	t.Run("PR-MESS 2.6: a UTF-8 byte order mark is accepted", func(t *testing.T) {
		bom := append([]byte("\xef\xbb\xbf"), req...)
		resp, body := postSOAP(t, w.url, bom, "text/xml")
		env, err := soap.Parse(body, soap.Limits{})
		if resp.StatusCode != 200 || err != nil || soap.CheckRequestHash(bom, env.Header) != nil {
			t.Errorf("status %d, %v\n%s", resp.StatusCode, err, body)
		}
	})

	t.Run("PR-THIRDPARTY: representedParty reaches the service", func(t *testing.T) {
		hh := h
		hh.ID, hh.RepresentedParty = "soap-represented", &soap.RepresentedParty{Class: "COM", Code: "0100109106"}
		r := hh.Marshal([]byte(`<r:companies xmlns:r="urn:test"/>`))
		resp, body := postSOAP(t, w.url, r, "text/xml")
		env, err := soap.Parse(body, soap.Limits{})
		if resp.StatusCode != 200 || err != nil || soap.CheckConsistent(hh, env.Header) != nil || !bytes.Equal(seen, r) {
			t.Errorf("status %d, %v; the service got the request unchanged: %v\n%s", resp.StatusCode, err, bytes.Equal(seen, r), body)
		}
	})

	t.Run("PR-TARGETSS: securityServer naming the provider's gateway", func(t *testing.T) {
		gw, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
		ss := soap.SecurityServerFromIdent(gw)
		hh := h
		hh.ID, hh.SecurityServer = "soap-targeted", &ss
		r := hh.Marshal([]byte(`<r:companies xmlns:r="urn:test"/>`))
		resp, body := postSOAP(t, w.url, r, "text/xml")
		env, err := soap.Parse(body, soap.Limits{})
		if resp.StatusCode != 200 || err != nil || soap.CheckConsistent(hh, env.Header) != nil {
			t.Errorf("status %d, %v\n%s", resp.StatusCode, err, body)
		}
	})
}

// soapMetaservices: PR-META's listMethods, allowedMethods and getWsdl
// over SOAP, through both gateways, against the sandbox's SOAP services.
func soapMetaservices(t *testing.T, w *world) {
	w.answer.Store(nil)
	var sent []byte // the last request
	meta := func(t *testing.T, provider, op string, body []byte) (*http.Response, []byte, soap.Header) {
		h := soapHeader(t, hcmcClient, provider+"/"+op, "meta-"+op)
		if body == nil {
			body = soap.MetaRequest(h, op)
		} else {
			body = h.Marshal(body)
		}
		sent = body
		resp, b := postSOAP(t, w.url, body, "text/xml")
		return resp, b, h
	}
	methods := func(t *testing.T, provider, op string) string {
		resp, body, h := meta(t, provider, op, nil)
		env, err := soap.Parse(body, soap.Limits{})
		if resp.StatusCode != 200 || err != nil || soap.CheckConsistent(h, env.Header) != nil {
			t.Fatalf("%s: status %d, %v\n%s", op, resp.StatusCode, err, body)
		}
		if !bytes.Contains(body, []byte(op+"Response")) {
			t.Errorf("%s: no %sResponse\n%s", op, op, body)
		}
		return string(body)
	}
	t.Run("PR-META listMethods", func(t *testing.T) {
		if b := methods(t, "VN/GOV/MOF/business-registry", soap.OpListMethods); !strings.Contains(b, ">getCompany<") {
			t.Errorf("business-registry's listMethods lacks getCompany\n%s", b)
		}
		if b := methods(t, "VN/GOV/MOF/document-exchange", soap.OpListMethods); !strings.Contains(b, ">sendDocument<") {
			t.Errorf("document-exchange's listMethods lacks sendDocument\n%s", b)
		}
	})
	t.Run("PR-META allowedMethods", func(t *testing.T) {
		if b := methods(t, "VN/GOV/MOF/business-registry", soap.OpAllowedMethods); !strings.Contains(b, ">getCompany<") {
			t.Errorf("HCMC may call getCompany, allowedMethods says otherwise\n%s", b)
		}
		if b := methods(t, "VN/GOV/MOF/document-exchange", soap.OpAllowedMethods); strings.Contains(b, ">sendDocument<") {
			t.Errorf("HCMC may not call sendDocument, allowedMethods lists it\n%s", b)
		}
	})
	t.Run("PR-META getWsdl", func(t *testing.T) {
		var want []byte
		filepath.WalkDir(w.sb.Dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Name() == "getCompany.wsdl" {
				want, _ = os.ReadFile(p)
			}
			return nil
		})
		if len(want) == 0 {
			t.Fatal("no getCompany.wsdl in the sandbox")
		}
		resp, body, _ := meta(t, "VN/GOV/MOF/business-registry", soap.OpGetWsdl, []byte(`<xrd:getWsdl><xrd:serviceCode>getCompany</xrd:serviceCode><xrd:serviceVersion>v1</xrd:serviceVersion></xrd:getWsdl>`))
		if resp.StatusCode != 200 {
			t.Fatalf("status %d\n%s", resp.StatusCode, body)
		}
		mr, err := soap.NewMultipartReader(bytes.NewReader(body), resp.Header.Get("Content-Type"), soap.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		part, _, err := mr.SOAPPart()
		if err != nil || !bytes.Contains(part, []byte("getWsdlResponse")) {
			t.Fatalf("SOAP part: %v\n%s", err, part)
		}
		if env, err := soap.Parse(part, soap.Limits{}); err != nil || soap.CheckRequestHash(sent, env.Header) != nil {
			t.Errorf("getWsdl answer without a valid requestHash: %v\n%s", err, part)
		}
		att, err := mr.NextAttachment()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(att.Body)
		if !bytes.Equal(got, want) {
			t.Errorf("the attachment is not the WSDL file (%d bytes, want %d)", len(got), len(want))
		}
		// HCMC has no access right to sendDocument: no WSDL either.
		resp, body, _ = meta(t, "VN/GOV/MOF/document-exchange", soap.OpGetWsdl, []byte(`<xrd:getWsdl><xrd:serviceCode>sendDocument</xrd:serviceCode></xrd:getWsdl>`))
		if f, err := soap.ParseFault(body, soap.Limits{}); err != nil || f.Code != r1.TypeServerAccessDenied {
			t.Errorf("getWsdl of sendDocument: %d %+v %v\n%s", resp.StatusCode, f, err, body)
		}
	})
}

// TestSOAPDocNamesTests: every row of docs/soap.md's conformance table
// names its tests (or "—"), and each named test exists: a test function
// of package gateway, soap or opmon, and a subtest named after the
// slash is a string in that package's tests.
func TestSOAPDocNamesTests(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "soap.md"))
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{} // function name → its package's test sources
	for _, dir := range []string{".", "../soap", "../opmon"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*_test.go"))
		var all strings.Builder
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			all.Write(b)
		}
		src := all.String()
		for _, m := range regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`).FindAllStringSubmatch(src, -1) {
			sources[m[1]] = src
		}
	}
	const header = "| section | requirement | Sampan | test |"
	_, table, ok := strings.Cut(string(doc), "## Conformance")
	if !ok || !strings.Contains(table, header) {
		t.Fatalf("docs/soap.md has no conformance table with the header %q", header)
	}
	name := regexp.MustCompile("`(Test\\w+)(/[^`]+)?`")
	rows := 0
	for _, line := range strings.Split(table, "\n") {
		if !strings.HasPrefix(line, "| PR-") {
			continue
		}
		rows++
		cells := strings.Split(strings.Trim(line, "|"), " | ")
		if len(cells) != 4 {
			t.Errorf("row with %d cells, want 4: %s", len(cells), line)
			continue
		}
		test := strings.TrimSpace(cells[3])
		found := name.FindAllStringSubmatch(test, -1)
		if test != "—" && len(found) == 0 {
			t.Errorf("row %q names no test", cells[0]+": "+cells[1])
		}
		for _, m := range found {
			src, ok := sources[m[1]]
			switch {
			case !ok:
				t.Errorf("docs/soap.md names %s, which is no test function", m[1])
			case m[2] != "" && !strings.Contains(src, `"`+m[2][1:]+`"`):
				t.Errorf("docs/soap.md names subtest %q of %s, which is not among its package's tests", m[2][1:], m[1])
			}
		}
	}
	if rows < 20 {
		t.Errorf("only %d conformance rows in docs/soap.md", rows)
	}
}
