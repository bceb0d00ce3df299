package sandbox

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/policy"
	"github.com/sampan-exchange/sampan/soap"
)

// The example document's SHA-256 and length, computed by hand:
// printf '…' | sha256sum; wc -c.
const (
	exampleDocSHA256 = "0446dbb2d3b5b202d3c497f880e792d53cc0b23fe595268a78a1364fa8721660"
	exampleDocBytes  = 82
)

// soapServices returns the SOAP services of the sandbox world.
func soapServices(t *testing.T) map[string]serviceDef {
	t.Helper()
	out := map[string]serviceDef{}
	for _, in := range world {
		for _, gd := range in.gateways {
			for _, sv := range gd.services {
				if sv.protocol == gateway.ProtocolSOAP {
					out[sv.id] = sv
				}
			}
		}
	}
	if len(out) != 2 {
		t.Fatalf("%d SOAP services in the world, want 2", len(out))
	}
	return out
}

// postSOAP posts body to the SOAP backends at path.
func postSOAP(t *testing.T, url, contentType string, body io.Reader) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// TestSOAPExamplesAnswered writes every SOAP service's example requests
// as the sandbox does and posts each to its backend directly: each is
// answered 200 with the request's header echoed byte for byte, and the
// document exchange's receipts carry the hand-computed digest.
func TestSOAPExamplesAnswered(t *testing.T) {
	srv := httptest.NewServer(soapHandler(http.NotFoundHandler()))
	defer srv.Close()
	dir := t.TempDir()
	for id, sv := range soapServices(t) {
		var ms ManifestService
		if err := writeSOAPExamples(&ms, sv, dir, filepath.Join(dir, "gw")); err != nil {
			t.Fatal(err)
		}
		if ms.Protocol != gateway.ProtocolSOAP || ms.ServiceVersion != "v1" || ms.WSDLFile == "" {
			t.Errorf("%s: manifest entry %+v", id, ms)
		}
		wantMessages := 2
		if sv.attachments {
			wantMessages = 6
		}
		if len(ms.ExampleMessages) != wantMessages || ms.ExampleEnvelope != ms.ExampleMessages[0].File {
			t.Fatalf("%s: example_envelope %q, %d example messages, want %d", id, ms.ExampleEnvelope, len(ms.ExampleMessages), wantMessages)
		}
		for _, m := range ms.ExampleMessages {
			t.Run(filepath.Base(m.File), func(t *testing.T) {
				msg, err := os.ReadFile(m.File)
				if err != nil {
					t.Fatal(err)
				}
				// The request names its client and the service.
				reqSOAP := msg
				if m.Attachments > 0 {
					mr, err := soap.NewMultipartReader(bytes.NewReader(msg), m.ContentType, soap.Limits{})
					if err != nil {
						t.Fatal(err)
					}
					if reqSOAP, _, err = mr.SOAPPart(); err != nil {
						t.Fatal(err)
					}
				}
				req, err := soap.ParseRequest(reqSOAP, soap.Limits{})
				if err != nil {
					t.Fatalf("example request: %v", err)
				}
				client, _ := req.Header.Client.Ident()
				svc, _ := req.Header.Service.Ident()
				if client.String() != m.Client || svc.String() != id+"/v1" {
					t.Errorf("example names client %s and service %s, want %s and %s/v1", client, svc, m.Client, id)
				}

				status, resp := postSOAP(t, srv.URL+sv.backendPath, m.ContentType, bytes.NewReader(msg))
				if status != http.StatusOK {
					t.Fatalf("status %d: %s", status, resp)
				}
				env, err := soap.Parse(resp, soap.Limits{})
				if err != nil {
					t.Fatalf("response: %v\n%s", err, resp)
				}
				if err := soap.CheckConsistent(req.Header, env.Header); err != nil {
					t.Error(err)
				}
				if got, want := env.HeaderSpan.Bytes(resp), req.HeaderSpan.Bytes(reqSOAP); !bytes.Equal(got, want) {
					t.Errorf("response header\n%s\nwant the request's\n%s", got, want)
				}
				if env.Operation.Name.Local != req.Operation.Name.Local+"Response" || env.Operation.Name.Space != req.Operation.Name.Space {
					t.Errorf("response operation %v", env.Operation.Name)
				}
				var want []string
				switch {
				case strings.HasSuffix(id, "/getCompany"):
					want = []string{"<br:taxCode>0100109106</br:taxCode>", "<br:name>Viettel Group</br:name>"}
				case m.Attachments == 0:
					want = []string{"<dx:documentCount>0</dx:documentCount>", "<dx:senderReference>" + exampleDocSender + "</dx:senderReference>"}
				default:
					want = []string{"<dx:documentCount>1</dx:documentCount>", "<dx:contentId>" + exampleDocID + "</dx:contentId>",
						"<dx:bytes>" + strconv.Itoa(exampleDocBytes) + "</dx:bytes>", "<dx:sha256>" + exampleDocSHA256 + "</dx:sha256>"}
				}
				for _, w := range want {
					if !bytes.Contains(resp, []byte(w)) {
						t.Errorf("response lacks %s:\n%s", w, resp)
					}
				}
			})
		}
	}
}

// TestGetCompanyUnknown: a tax code the registry does not know is the
// service's own fault, naming the tax code in its detail.
func TestGetCompanyUnknown(t *testing.T) {
	srv := httptest.NewServer(soapHandler(http.NotFoundHandler()))
	defer srv.Close()
	env, err := exampleEnvelope("VN/GOV/HCMC/one-stop", "VN/GOV/MOF/business-registry/getCompany", "v1", "t-1", getCompanyBody("9999999999"))
	if err != nil {
		t.Fatal(err)
	}
	status, resp := postSOAP(t, srv.URL+pathGetCompany, soap.ContentTypeSOAP, bytes.NewReader(env))
	if status != http.StatusInternalServerError {
		t.Errorf("status %d, want 500", status)
	}
	f, err := soap.ParseFault(resp, soap.Limits{})
	if err != nil {
		t.Fatalf("%v\n%s", err, resp)
	}
	if f.Code != "SOAP-ENV:Client" || !strings.Contains(f.String, "9999999999") || !f.HasDetail {
		t.Errorf("fault %+v", f)
	}
	if !bytes.Contains(resp, []byte(`<s:unknownCompany xmlns:s="`+nsBusinessRegistry+`"><s:taxCode>9999999999</s:taxCode></s:unknownCompany>`)) {
		t.Errorf("fault detail does not name the tax code:\n%s", resp)
	}
}

// TestSOAPBackendsRefuse: requests the services cannot take are answered
// with a SOAP fault saying why.
func TestSOAPBackendsRefuse(t *testing.T) {
	srv := httptest.NewServer(soapHandler(http.NotFoundHandler()))
	defer srv.Close()
	getCompany := func(body string) string {
		b, err := exampleEnvelope("VN/GOV/HCMC/one-stop", "VN/GOV/MOF/business-registry/getCompany", "v1", "t-2", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	sendDocument := func(body string) string {
		b, err := exampleEnvelope("VN/GOV/MPS/residents", "VN/GOV/MOF/document-exchange/sendDocument", "v1", "t-3", []byte(body))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	bomb := `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>` +
		strings.Replace(getCompany(`<br:getCompany xmlns:br="`+nsBusinessRegistry+`"><br:taxCode>&lol2;</br:taxCode></br:getCompany>`), `<?xml version="1.0" encoding="UTF-8"?>`, "", 1)
	xxe := `<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file:///etc/passwd">]>` +
		strings.Replace(getCompany(`<br:getCompany xmlns:br="`+nsBusinessRegistry+`"><br:taxCode>&x;</br:taxCode></br:getCompany>`), `<?xml version="1.0" encoding="UTF-8"?>`, "", 1)
	swa, swaType := multipartExample([]byte(getCompany(string(getCompanyBody("0100109106")))), false)
	for _, c := range []struct {
		name, path, contentType, body, code string
	}{
		{"billion laughs", pathGetCompany, soap.ContentTypeSOAP, bomb, soap.TypeInvalidSoap},
		{"external entity", pathGetCompany, soap.ContentTypeSOAP, xxe, soap.TypeInvalidSoap},
		{"not XML", pathGetCompany, soap.ContentTypeSOAP, "taxCode=0100109106", soap.TypeInvalidSoap},
		{"SOAP 1.2", pathGetCompany, "application/soap+xml; charset=utf-8", getCompany(string(getCompanyBody("0100109106"))), soap.TypeInvalidContentType},
		{"attachments to getCompany", pathGetCompany, swaType, string(swa), soap.TypeInvalidContentType},
		{"no X-Road header", pathGetCompany, soap.ContentTypeSOAP, `<s:Envelope xmlns:s="` + soap.NSEnvelope + `"><s:Body>` + string(getCompanyBody("0100109106")) + `</s:Body></s:Envelope>`, soap.TypeMissingHeader},
		{"another service's operation", pathSendDocument, soap.ContentTypeSOAP, sendDocument(`<br:sendDocument xmlns:br="` + nsBusinessRegistry + `"><br:title>x</br:title></br:sendDocument>`), soap.TypeInvalidBody},
		{"operation in another namespace", pathGetCompany, soap.ContentTypeSOAP, getCompany(`<getCompany><taxCode>0100109106</taxCode></getCompany>`), soap.TypeInvalidBody},
		{"no title", pathSendDocument, soap.ContentTypeSOAP, sendDocument(`<dx:sendDocument xmlns:dx="` + nsDocumentExchange + `"/>`), "SOAP-ENV:Client"},
		{"inline document not base64", pathSendDocument, soap.ContentTypeSOAP, sendDocument(`<dx:sendDocument xmlns:dx="` + nsDocumentExchange + `"><dx:title>x</dx:title><dx:document>!!</dx:document></dx:sendDocument>`), "SOAP-ENV:Client"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, resp := postSOAP(t, srv.URL+c.path, c.contentType, strings.NewReader(c.body))
			if status != http.StatusInternalServerError {
				t.Errorf("status %d, want 500", status)
			}
			f, err := soap.ParseFault(resp, soap.Limits{})
			if err != nil {
				t.Fatalf("%v\n%s", err, resp)
			}
			if f.Code != c.code {
				t.Errorf("faultcode %s (%s), want %s", f.Code, f.String, c.code)
			}
			if bytes.Contains(resp, []byte("root:")) || bytes.Contains(resp, []byte("lollol")) {
				t.Errorf("an entity was expanded:\n%s", resp)
			}
		})
	}
}

// TestSendDocumentStreams: attachments of several megabytes, a
// base64-encoded one and an inline document are each digested, the large
// one as it streams from a pipe.
func TestSendDocumentStreams(t *testing.T) {
	srv := httptest.NewServer(soapHandler(http.NotFoundHandler()))
	defer srv.Close()
	big := make([]byte, 4<<20)
	rand.Read(big)
	bigSum := sha256.Sum256(big)
	env, err := exampleEnvelope("VN/GOV/MPS/residents", "VN/GOV/MOF/document-exchange/sendDocument", "v1", "t-4",
		[]byte(`<dx:sendDocument xmlns:dx="`+nsDocumentExchange+`"><dx:title>x</dx:title><dx:document>aGVsbG8s
IG1pbmlzdHJ5</dx:document></dx:sendDocument>`))
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	go func() {
		io.WriteString(pw, "--b1\r\nContent-Type: text/xml; charset=UTF-8\r\n\r\n")
		pw.Write(env)
		io.WriteString(pw, "\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-ID: <big>\r\n\r\n")
		pw.Write(big)
		io.WriteString(pw, "\r\n--b1\r\nContent-Type: text/plain\r\nContent-ID: <b64>\r\nContent-Transfer-Encoding: base64\r\n\r\naGVsbG8sIG1p\r\nbmlzdHJ5\r\n--b1--\r\n")
		pw.Close()
	}()
	status, resp := postSOAP(t, srv.URL+pathSendDocument, `multipart/related; type="text/xml"; boundary=b1`, pr)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	for _, w := range []string{
		"<dx:documentCount>3</dx:documentCount>",
		// "hello, ministry", inline and base64-encoded.
		"<dx:contentId></dx:contentId><dx:contentType></dx:contentType><dx:bytes>15</dx:bytes><dx:sha256>bbe859a353603e98929c793ebbd0b623706ed5866637fe8dfc6c309fc45d0bff</dx:sha256>",
		"<dx:contentId>big</dx:contentId><dx:contentType>application/octet-stream</dx:contentType><dx:bytes>4194304</dx:bytes><dx:sha256>" + hex.EncodeToString(bigSum[:]) + "</dx:sha256>",
		"<dx:contentId>b64</dx:contentId><dx:contentType>text/plain</dx:contentType><dx:bytes>15</dx:bytes><dx:sha256>bbe859a353603e98929c793ebbd0b623706ed5866637fe8dfc6c309fc45d0bff</dx:sha256>",
	} {
		if !bytes.Contains(resp, []byte(w)) {
			t.Errorf("receipt lacks %s:\n%.2000s", w, resp)
		}
	}
}

// TestWSDLs: each embedded WSDL is well-formed, declares the X-Road
// header fields in X-Road's namespace, binds each as a soap:header of
// the operation's input, and has the placeholder address the sandbox
// replaces.
func TestWSDLs(t *testing.T) {
	const nsWSDLSOAP = "http://schemas.xmlsoap.org/wsdl/soap/"
	want := map[string]struct{ ns, op string }{
		"business-registry.wsdl": {nsBusinessRegistry, "getCompany"},
		"document-exchange.wsdl": {nsDocumentExchange, "sendDocument"},
	}
	names, err := fs.Glob(wsdlFiles, "wsdl/*.wsdl")
	if err != nil || len(names) != len(want) {
		t.Fatalf("embedded WSDLs %v (%v), want %d", names, err, len(want))
	}
	for _, sv := range soapServices(t) {
		if _, ok := want[sv.wsdl]; !ok {
			t.Errorf("%s: WSDL %s is not embedded", sv.id, sv.wsdl)
		}
	}
	for name, w := range want {
		t.Run(name, func(t *testing.T) {
			b, err := wsdlFor(name, "http://127.0.0.1:9/")
			if err != nil {
				t.Fatal(err)
			}
			dec := xml.NewDecoder(bytes.NewReader(b))
			var (
				stack      []xml.StartElement
				target     string
				inXRoad    bool                // inside the schema of X-Road's namespace
				declared   = map[string]bool{} // its global elements
				headers    = map[string]bool{} // soap:header parts of the input
				operations = map[string]bool{}
				address    string
			)
			for {
				tok, err := dec.Token()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("not well-formed: %v", err)
				}
				switch e := tok.(type) {
				case xml.StartElement:
					attr := func(n string) string {
						for _, a := range e.Attr {
							if a.Name.Local == n && a.Name.Space == "" {
								return a.Value
							}
						}
						return ""
					}
					parent := ""
					if len(stack) > 0 {
						parent = stack[len(stack)-1].Name.Local
					}
					switch {
					case e.Name.Local == "definitions":
						target = attr("targetNamespace")
					case e.Name.Local == "schema" && attr("targetNamespace") == soap.NSXRoad:
						inXRoad = true
					case e.Name.Local == "element" && parent == "schema" && inXRoad:
						declared[attr("name")] = true
					case e.Name.Space == nsWSDLSOAP && e.Name.Local == "header" && parent == "input":
						headers[attr("part")] = true
					case e.Name.Local == "operation" && parent == "binding":
						operations[attr("name")] = true
					case e.Name.Space == nsWSDLSOAP && e.Name.Local == "address":
						address = attr("location")
					}
					stack = append(stack, e)
				case xml.EndElement:
					if e.Name.Local == "schema" {
						inXRoad = false
					}
					stack = stack[:len(stack)-1]
				}
			}
			if target != w.ns || !operations[w.op] || len(operations) != 1 {
				t.Errorf("target namespace %s, operations %v; want %s and %s", target, operations, w.ns, w.op)
			}
			for _, f := range []string{"client", "service", "id", "userId", "issue", "protocolVersion"} {
				if !declared[f] || !headers[f] {
					t.Errorf("header field %s: declared in %s %v, bound as a soap:header %v", f, soap.NSXRoad, declared[f], headers[f])
				}
			}
			if address != "http://127.0.0.1:9/" {
				t.Errorf("soap:address %q, want the gateway URL given", address)
			}
		})
	}
}

// patternReader yields n bytes of a repeating pattern without holding
// them.
type patternReader struct{ n, off int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.n {
		b = b[:p.n]
	}
	for i := range b {
		b[i] = byte((p.off + int64(i)) % 251)
	}
	p.n -= int64(len(b))
	p.off += int64(len(b))
	return len(b), nil
}

// TestSendDocumentDoesNotBufferAttachments: a 32 MiB attachment passes
// through the handler with a few MiB allocated in all.
func TestSendDocumentDoesNotBufferAttachments(t *testing.T) {
	const size = 32 << 20
	env, err := exampleEnvelope("VN/GOV/MPS/residents", "VN/GOV/MOF/document-exchange/sendDocument", "v1", "t-5", sendDocumentBody("big", "r", "cid:big", ""))
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.New()
	io.Copy(want, &patternReader{n: size})
	body := io.MultiReader(
		strings.NewReader("--b1\r\nContent-Type: text/xml; charset=UTF-8\r\n\r\n"), bytes.NewReader(env),
		strings.NewReader("\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-ID: <big>\r\n\r\n"), &patternReader{n: size},
		strings.NewReader("\r\n--b1--\r\n"))
	req := httptest.NewRequest(http.MethodPost, pathSendDocument, body)
	req.Header.Set("Content-Type", `multipart/related; type="text/xml"; boundary=b1`)
	rec := httptest.NewRecorder()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	serveSendDocument(rec, req)
	runtime.ReadMemStats(&after)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "<dx:sha256>"+hex.EncodeToString(want.Sum(nil))+"</dx:sha256>") {
		t.Fatalf("status %d: %.1000s", rec.Code, rec.Body.String())
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
		t.Errorf("%d bytes allocated for a %d-byte attachment", got, size)
	}
}

// TestGetCompanyEchoesHeader: a request written as a generic SOAP client
// writes it (other prefixes, namespaces declared on each element, a
// header element of another namespace) gets its header back byte for
// byte, not rebuilt.
func TestGetCompanyEchoesHeader(t *testing.T) {
	srv := httptest.NewServer(soapHandler(http.NotFoundHandler()))
	defer srv.Close()
	req := `<soap-env:Envelope xmlns:soap-env="http://schemas.xmlsoap.org/soap/envelope/">
  <soap-env:Header>
    <ns0:client xmlns:ns0="http://x-road.eu/xsd/xroad.xsd" xmlns:ns1="http://x-road.eu/xsd/identifiers" ns1:objectType="SUBSYSTEM">
      <ns1:xRoadInstance>VN</ns1:xRoadInstance> <ns1:memberClass>GOV</ns1:memberClass>
      <ns1:memberCode>HCMC</ns1:memberCode> <ns1:subsystemCode>one-stop</ns1:subsystemCode>
    </ns0:client>
    <ns2:service xmlns:ns2="http://x-road.eu/xsd/xroad.xsd" xmlns:ns3="http://x-road.eu/xsd/identifiers" ns3:objectType="SERVICE">
      <ns3:xRoadInstance>VN</ns3:xRoadInstance><ns3:memberClass>GOV</ns3:memberClass><ns3:memberCode>MOF</ns3:memberCode>
      <ns3:subsystemCode>business-registry</ns3:subsystemCode><ns3:serviceCode>getCompany</ns3:serviceCode><ns3:serviceVersion>v1</ns3:serviceVersion>
    </ns2:service>
    <ns4:id xmlns:ns4="http://x-road.eu/xsd/xroad.xsd">7f3c</ns4:id>
    <ns5:protocolVersion xmlns:ns5="http://x-road.eu/xsd/xroad.xsd">4.0</ns5:protocolVersion>
    <t:trace xmlns:t="urn:example:trace">a&amp;b</t:trace>
  </soap-env:Header>
  <soap-env:Body>
    <ns0:getCompany xmlns:ns0="urn:sampan:sandbox:business-registry:1"><ns0:taxCode>0301472704</ns0:taxCode></ns0:getCompany>
  </soap-env:Body>
</soap-env:Envelope>`
	status, resp := postSOAP(t, srv.URL+pathGetCompany, "text/xml; charset=utf-8", strings.NewReader(req))
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, resp)
	}
	env, err := soap.Parse(resp, soap.Limits{})
	if err != nil {
		t.Fatalf("%v\n%s", err, resp)
	}
	start := strings.Index(req, "<soap-env:Header>")
	end := strings.Index(req, "</soap-env:Header>") + len("</soap-env:Header>")
	if got := string(env.HeaderSpan.Bytes(resp)); got != req[start:end] {
		t.Errorf("response header\n%s\nwant the request's\n%s", got, req[start:end])
	}
	if !bytes.Contains(resp, []byte("<br:name>Vinamilk</br:name>")) {
		t.Errorf("response %s", resp)
	}
}

// TestSOAPServicesPolicy: the SOAP services' example and cross-border
// callers are allowed by the national rules of both sides, with no
// agreement, as the sandbox registers them.
func TestSOAPServicesPolicy(t *testing.T) {
	engines := map[string]*policy.Engine{}
	for _, in := range world {
		rules, err := policy.National(in.code)
		if err != nil {
			t.Fatal(err)
		}
		doc := &policy.Document{Rules: rules, Agreements: in.agreements}
		for _, gd := range in.gateways {
			for _, sv := range gd.services {
				id, err := ident.ParseService(sv.id)
				if err != nil {
					t.Fatal(err)
				}
				doc.Services = append(doc.Services, policy.ServiceClass{ID: id, Class: sv.dataClass, Flags: sv.flags})
			}
		}
		if engines[in.code], err = policy.Compile(in.code, "1", doc); err != nil {
			t.Fatal(err)
		}
	}
	for id, sv := range soapServices(t) {
		svc, _ := ident.ParseService(id)
		class, ok := engines[svc.Provider.Instance].Class(svc)
		if !ok {
			t.Fatalf("%s has no data class", id)
		}
		for _, c := range []string{sv.exampleClient, sv.crossBorderClient} {
			client, _ := ident.ParseSubsystem(c)
			for side, inst := range map[string]string{policy.SideProvider: svc.Provider.Instance, policy.SideConsumer: client.Instance} {
				d := engines[inst].Decide(&policy.Request{Side: side, Client: client, Service: svc, Class: class})
				if !d.Allow {
					t.Errorf("%s calling %s: refused at the %s side by %s: %s", c, id, side, inst, d.Message)
				}
			}
		}
	}
}
