package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"io"
	"mime"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// The conformance table: one row per requirement of PR-REST, PR-MREST
// and PR-META's listClients and listCentralServices that a client can
// observe, each sent over real sockets through HCMC's gateway (and MOF's
// or MPS's as the provider's). docs/r1.md's conformance table names
// these rows.

// reach says whether a row's request must reach a service.
type reach int

const (
	anyReach reach = iota
	reaches
	blocked
)

// seen is what a row's request brought back, and what the service saw.
type seen struct {
	resp    *http.Response
	body    []byte
	backend http.Header // the headers the service received, when reached
}

type conformanceRow struct {
	sec, name string
	method    string
	target    string            // after the client side's address
	hdr       map[string]string // sent as written (names not canonicalized)
	noClient  bool              // send no X-Road-Client
	body      []byte
	answer    http.HandlerFunc // answers in place of the services
	tamper    *tamper
	status    int
	typ       string // the X-Road-Error wanted; "" for none
	reach     reach
	check     func(t *testing.T, s seen)
}

// The service answers used by several rows.
var (
	// echo answers with what the service received, in headers.
	echo http.HandlerFunc = func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		rw.Header().Set("X-Seen-Uri", r.URL.RequestURI())
		rw.Header().Set("X-Seen-Method", r.Method)
		rw.Header().Set("X-Seen-Content-Type", r.Header.Get("Content-Type"))
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Write([]byte("seen"))
	}
	// failing breaks the connection instead of answering.
	failing http.HandlerFunc = func(http.ResponseWriter, *http.Request) { panic(http.ErrAbortHandler) }
)

// answering returns a service answer with the given status, headers and
// body.
func answering(status int, hdr map[string]string, body string) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		for k, v := range hdr {
			rw.Header()[k] = []string{v}
		}
		rw.WriteHeader(status)
		rw.Write([]byte(body))
	}
}

const (
	r1Companies = "/r1/" + companies + "/0100109106"
	r1Persons   = "/r1/" + persons + "/079200001234"
	r1Scam      = "/r1/VN/GOV/MPS/cybercrime/scam-reports"
	mofRegistry = "/r1/VN/GOV/MOF/business-registry"
)

func conformanceRows() []conformanceRow {
	citizenReport := map[string]string{r1.HeaderPurpose: "citizen-report"}
	return []conformanceRow{
		// PR-REST 2.3, 4.1: the request form.
		{sec: "PR-REST 2.3", name: "a protocol version other than r1 is refused",
			target: "/r2/" + companies + "/0100109106", status: 400, typ: r1.TypeInvalidRequest, reach: blocked},
		{sec: "PR-REST 4.1", name: "the path after the service code and the query reach the service",
			target: r1Companies + "?lang=vi", answer: echo, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.resp.Header.Get("X-Seen-Uri"); !strings.HasSuffix(got, "/0100109106?lang=vi") {
					t.Errorf("service saw %q, want the path /0100109106 and the query lang=vi", got)
				}
			}},
		{sec: "PR-REST 4.1", name: "every request method reaches the service",
			method: http.MethodPatch, target: r1Scam + "/r-1", hdr: citizenReport, body: []byte(`{"status":"closed"}`), answer: echo, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.resp.Header.Get("X-Seen-Method"); got != http.MethodPatch {
					t.Errorf("service saw method %q, want PATCH", got)
				}
			}},
		{sec: "PR-REST 4.1", name: "a client that is a member, not a subsystem, is refused",
			target: r1Companies, hdr: map[string]string{r1.HeaderClient: "VN/GOV/HCMC"}, status: 400, typ: r1.TypeInvalidClientID, reach: blocked},
		{sec: "PR-REST 4.1", name: "a service identifier without a subsystem code is refused",
			target: "/r1/VN/GOV/MOF/companies", status: 400, typ: r1.TypeInvalidServiceID, reach: blocked},

		// PR-REST 4.2: URI sanitation.
		{sec: "PR-REST 4.2", name: "identifier parts are percent-decoded one by one",
			target: "/r1/VN/GOV/MOF/business%2Dregistry/companies/0100109106", status: 200, reach: reaches},
		{sec: "PR-REST 4.2", name: "encoded separators between identifier parts are refused",
			target: "/r1/VN%2FGOV%2FMOF%2Fbusiness-registry%2Fcompanies", status: 400, typ: r1.TypeInvalidServiceID, reach: blocked},
		{sec: "PR-REST 4.2", name: "a URI over 2000 bytes is refused",
			target: r1Companies + "/" + strings.Repeat("a", 2000), status: 400, typ: r1.TypeURITooLong, reach: blocked},
		{sec: "PR-REST 4.2", name: "dot segments in the service path are refused",
			target: r1Persons + "/../../x", status: 400, typ: r1.TypeInvalidRequest, reach: blocked},

		// PR-REST 4.3: headers.
		{sec: "PR-REST 4.3", name: "header names are read in any case",
			target: r1Companies, hdr: map[string]string{"x-road-client": hcmcClient, "x-road-id": "lower-case-1"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.resp.Header.Get(r1.HeaderID); got != "lower-case-1" {
					t.Errorf("X-Road-Id = %q, want the one sent as x-road-id", got)
				}
			}},
		{sec: "PR-REST 4.3", name: "X-Road-Client sent twice is refused",
			target: r1Companies, hdr: map[string]string{r1.HeaderClient: hcmcClient, "x-road-client": hcmcClient}, status: 400, typ: r1.TypeInvalidHeader, reach: blocked},
		{sec: "PR-REST 4.3", name: "the response carries the X-Road headers",
			target: r1Companies, hdr: map[string]string{r1.HeaderID: "case-4-3"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				for h, want := range map[string]string{r1.HeaderClient: hcmcClient, r1.HeaderService: companies, r1.HeaderID: "case-4-3"} {
					if got := s.resp.Header.Get(h); got != want {
						t.Errorf("%s = %q, want %q", h, got, want)
					}
				}
				if s.resp.Header.Get(r1.HeaderRequestID) == "" {
					t.Error("X-Road-Request-Id missing")
				}
				wantRequestHash(t, s.resp, "")
			}},
		{sec: "PR-REST 4.3", name: "the client's X-Road-Request-Hash is dropped",
			target: r1Companies, hdr: map[string]string{r1.HeaderRequestHash: "forged"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.backend.Get(r1.HeaderRequestHash); got != "" {
					t.Errorf("service received X-Road-Request-Hash %q", got)
				}
				wantRequestHash(t, s.resp, "forged")
			}},
		{sec: "PR-REST 4.3", name: "the service's X-Road-Request-Hash is replaced",
			target: r1Companies, answer: answering(200, map[string]string{r1.HeaderRequestHash: "forged-by-service"}, "{}"), status: 200, reach: reaches,
			check: func(t *testing.T, s seen) { wantRequestHash(t, s.resp, "forged-by-service") }},
		{sec: "PR-REST 4.3", name: "X-Road-Id is generated when absent, a time-ordered UUID",
			target: r1Companies, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				id := s.resp.Header.Get(r1.HeaderID)
				if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(id) {
					t.Errorf("X-Road-Id = %q, want a version 7 UUID", id)
				}
				if s.backend.Get(r1.HeaderID) != id {
					t.Errorf("service received X-Road-Id %q, client got %q", s.backend.Get(r1.HeaderID), id)
				}
			}},
		{sec: "PR-REST 4.3", name: "X-Road-UserId and X-Road-Issue reach the service",
			target: r1Companies, hdr: map[string]string{r1.HeaderUserID: "VN079200001234", r1.HeaderIssue: "HCMC-2026-77"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if s.backend.Get(r1.HeaderUserID) != "VN079200001234" || s.backend.Get(r1.HeaderIssue) != "HCMC-2026-77" {
					t.Errorf("service received UserId %q, Issue %q", s.backend.Get(r1.HeaderUserID), s.backend.Get(r1.HeaderIssue))
				}
			}},
		{sec: "PR-REST 4.3", name: "Content-Type passes unmodified both ways",
			method: http.MethodPost, target: "/r1/" + filings, hdr: map[string]string{"Content-Type": "application/vnd.statement+xml; charset=windows-1258"},
			body: []byte("<statement/>"), answer: answering(201, map[string]string{"Content-Type": "text/csv; charset=iso-8859-1; header=present"}, "a,b\n"), status: 201, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.backend.Get("Content-Type"); got != "application/vnd.statement+xml; charset=windows-1258" {
					t.Errorf("service received Content-Type %q", got)
				}
				if got := s.resp.Header.Get("Content-Type"); got != "text/csv; charset=iso-8859-1; header=present" {
					t.Errorf("client received Content-Type %q", got)
				}
			}},
		{sec: "PR-REST 4.3", name: "Accept passes unmodified to the service",
			target: r1Companies, hdr: map[string]string{"Accept": "application/xml;q=0.9, text/plain;q=0.2"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.backend.Get("Accept"); got != "application/xml;q=0.9, text/plain;q=0.2" {
					t.Errorf("service received Accept %q", got)
				}
			}},
		{sec: "PR-REST 4.3", name: "X-Road-Security-Server naming the provider's gateway routes there",
			target: r1Companies, hdr: map[string]string{"X-Road-Security-Server": "VN/GOV/MOF/gw1"}, status: 200, reach: reaches},
		{sec: "PR-REST 4.3", name: "X-Road-Security-Server naming a gateway that does not serve the provider is refused",
			target: r1Companies, hdr: map[string]string{"X-Road-Security-Server": "VN/GOV/MPS/gw1"}, status: 500, typ: r1.TypeInvalidSecurityServer, reach: blocked},
		{sec: "PR-REST 4.3", name: "X-Road-Security-Server naming an unregistered gateway is refused",
			target: r1Companies, hdr: map[string]string{"X-Road-Security-Server": "VN/GOV/MOF/gw9"}, status: 500, typ: r1.TypeInvalidSecurityServer, reach: blocked},
		{sec: "PR-REST 4.3", name: "a malformed X-Road-Security-Server is refused",
			target: r1Companies, hdr: map[string]string{"X-Road-Security-Server": "VN/GOV/MOF"}, status: 400, typ: r1.TypeInvalidHeader, reach: blocked},
		{sec: "PR-REST 4.3", name: "the provider's gateway refuses a request its client meant for another gateway",
			target: r1Companies, hdr: map[string]string{"X-Road-Security-Server": "VN/GOV/MOF/gw1"},
			tamper: &tamper{req: func(r *http.Request) { r.Header.Set("X-Road-Security-Server", "VN/GOV/MPS/gw1") }},
			status: 500, typ: r1.TypeServerInvalidSecurityServer, reach: blocked},
		{sec: "PR-REST 4.3", name: "X-Road-Represented-Party reaches the service",
			target: r1Companies, hdr: map[string]string{r1.HeaderRepresentedParty: "COM/0300588569"}, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.backend.Get(r1.HeaderRepresentedParty); got != "COM/0300588569" {
					t.Errorf("service received X-Road-Represented-Party %q", got)
				}
			}},
		{sec: "PR-REST 4.3", name: "a malformed X-Road-Represented-Party is refused",
			target: r1Companies, hdr: map[string]string{r1.HeaderRepresentedParty: "COM/0300588569/x"}, status: 400, typ: r1.TypeInvalidHeader, reach: blocked},
		{sec: "PR-REST 4.3", name: "user-defined and cache headers pass unmodified both ways",
			target: r1Companies, hdr: map[string]string{"X-Case-Ref": "a, b;c", "Cache-Control": "no-cache, no-store", "Pragma": "no-cache"},
			answer: answering(200, map[string]string{"X-Powered-By": "registry/2.1", "Cache-Control": "max-age=60, private"}, "{}"), status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				for h, want := range map[string]string{"X-Case-Ref": "a, b;c", "Cache-Control": "no-cache, no-store", "Pragma": "no-cache"} {
					if got := s.backend.Get(h); got != want {
						t.Errorf("service received %s %q, want %q", h, got, want)
					}
				}
				for h, want := range map[string]string{"X-Powered-By": "registry/2.1", "Cache-Control": "max-age=60, private"} {
					if got := s.resp.Header.Get(h); got != want {
						t.Errorf("client received %s %q, want %q", h, got, want)
					}
				}
			}},
		{sec: "PR-REST 4.3", name: "User-Agent, Server and hop-by-hop headers are filtered",
			target: r1Companies, hdr: map[string]string{"User-Agent": "portal/1.0 (is-7.hcmc.internal)", "Connection": "X-Hop", "X-Hop": "secret"},
			answer: answering(200, map[string]string{"Server": "registry-7.mof.internal"}, "{}"), status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.backend.Get("User-Agent"); strings.Contains(got, "hcmc.internal") {
					t.Errorf("service received the client's User-Agent %q", got)
				}
				if got := s.backend.Get("X-Hop"); got != "" {
					t.Errorf("service received X-Hop %q, which the client's Connection named", got)
				}
				if got := s.resp.Header.Get("Server"); strings.Contains(got, "mof.internal") {
					t.Errorf("client received the service's Server %q", got)
				}
			}},
		{sec: "PR-REST 4.3", name: "Expect 100-continue is answered by the consumer's gateway",
			method: http.MethodPost, target: "/r1/" + filings, hdr: map[string]string{"Expect": "100-continue"}, body: []byte("statement"), status: 201, reach: reaches},

		// PR-REST 4.4, 4.5.
		{sec: "PR-REST 4.4", name: "a redirect passes unmodified and is not followed",
			target: r1Companies, answer: answering(302, map[string]string{"Location": "https://registry.example/elsewhere"}, ""), status: 302, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.resp.Header.Get("Location"); got != "https://registry.example/elsewhere" {
					t.Errorf("Location = %q", got)
				}
			}},
		{sec: "PR-REST 4.5", name: "the query passes unmodified, repeated parameters too",
			target: r1Companies + "?a=1&a=2&b=%2F%20x&c", answer: echo, status: 200, reach: reaches,
			check: func(t *testing.T, s seen) {
				if got := s.resp.Header.Get("X-Seen-Uri"); !strings.HasSuffix(got, "?a=1&a=2&b=%2F%20x&c") {
					t.Errorf("service saw %q, want the query as sent", got)
				}
			}},

		// PR-REST 4.6: errors.
		{sec: "PR-REST 4.6", name: "a caller's mistake is 400 with X-Road-Error and a JSON body by default",
			target: r1Companies, noClient: true, status: 400, typ: r1.TypeInvalidClientID, reach: blocked},
		{sec: "PR-REST 4.6", name: "an error is in XML when Accept asks for XML",
			target: r1Companies, noClient: true, hdr: map[string]string{"Accept": "application/xml"}, status: 400, typ: r1.TypeInvalidClientID, reach: blocked},
		{sec: "PR-REST 4.6", name: "an error of the provider's gateway is in XML when Accept asks for XML",
			target: "/r1/" + persons, hdr: map[string]string{"Accept": "text/xml", r1.HeaderPurpose: "administrative-procedure"}, status: 500, typ: r1.TypeServerAccessDenied, reach: blocked},
		{sec: "PR-REST 4.6", name: "an error is in JSON when Accept rates JSON higher",
			target: r1Companies, noClient: true, hdr: map[string]string{"Accept": "application/xml;q=0.5, application/json"}, status: 400, typ: r1.TypeInvalidClientID, reach: blocked},
		{sec: "PR-REST 4.6", name: "a service's own error passes as it is, without X-Road-Error",
			method: http.MethodPut, target: r1Scam + "/r-1", hdr: citizenReport,
			answer: answering(405, map[string]string{"Content-Type": "application/json;charset=utf-8"}, `{"error":"Method Not Allowed"}`), status: 405, reach: reaches,
			check: func(t *testing.T, s seen) {
				if string(s.body) != `{"error":"Method Not Allowed"}` {
					t.Errorf("body = %s, want the service's", s.body)
				}
			}},
		{sec: "PR-REST 4.6", name: "a service that fails is 500 Server.ServerProxy.ServiceFailed",
			target: r1Companies, answer: failing, status: 500, typ: r1.TypeServiceFailed, reach: reaches},
		{sec: "PR-REST 4.6", name: "a failure at the consumer's gateway is 500 Server.ClientProxy",
			target: "/r1/VN/GOV/MOF/nowhere/companies", status: 500, typ: r1.TypeUnknownService, reach: blocked},
		{sec: "PR-REST 4.6", name: "an unknown path at the client side is an r1 error",
			target: "/elsewhere", noClient: true, hdr: map[string]string{"Accept": "application/xml"}, status: 400, typ: r1.TypeInvalidRequest, reach: blocked},

		// PR-REST 3.1, 4.8.
		{sec: "PR-REST 3.1", name: "any payload type passes, byte for byte",
			method: http.MethodPost, target: "/r1/" + filings, hdr: map[string]string{"Content-Type": "application/octet-stream"}, body: binaryPayload, status: 201, reach: reaches,
			check: func(t *testing.T, s seen) {
				var f struct{ SHA256 string }
				json.Unmarshal(s.body, &f)
				if sum := sha256.Sum256(binaryPayload); f.SHA256 != hex.EncodeToString(sum[:]) {
					t.Errorf("service received a body with SHA-256 %s", f.SHA256)
				}
			}},
		{sec: "PR-REST 4.8", name: "an identifier part with a character X-Road excludes is refused",
			target: r1Companies, hdr: map[string]string{r1.HeaderClient: "VN/GOV/HCMC/one%3Bstop"}, status: 400, typ: r1.TypeInvalidClientID, reach: blocked},

		// PR-MREST and PR-META.
		{sec: "PR-MREST 2", name: "r1 listClients answers in JSON by default",
			target: "/r1/VN/listClients", status: 200, reach: blocked,
			check: func(t *testing.T, s seen) { wantClientListJSON(t, s, "VN/GOV/HCMC/one-stop") }},
		{sec: "PR-MREST 2", name: "r1 listClients answers in XML when Accept asks for XML",
			target: "/r1/VN/listClients", hdr: map[string]string{"Accept": "application/xml"}, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) { wantClientListXML(t, s, "VN/GOV/HCMC/one-stop") }},
		{sec: "PR-MREST 2", name: "r1 listClients answers GET only",
			method: http.MethodPost, target: "/r1/VN/listClients", status: 400, typ: r1.TypeInvalidRequest, reach: blocked},
		{sec: "PR-META 2", name: "listClients at the root answers in XML by default, without a client",
			target: "/listClients", noClient: true, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) { wantClientListXML(t, s, "VN/GOV/MOF/business-registry") }},
		{sec: "PR-META 2", name: "listClients at the root answers in JSON when Accept is application/json",
			target: "/listClients", noClient: true, hdr: map[string]string{"Accept": "application/json"}, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) { wantClientListJSON(t, s, "VN/GOV/MPS/cybercrime") }},
		{sec: "PR-META 2", name: "listClients with xRoadInstance lists a federated instance",
			target: "/listClients?xRoadInstance=SG", noClient: true, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) {
				list := wantClientListXML(t, s, "SG/GOV/ACRA/bizfile")
				if slices.ContainsFunc(list, func(c string) bool { return strings.HasPrefix(c, "VN/") }) {
					t.Errorf("SG's list holds Vietnamese clients: %v", list)
				}
			}},
		{sec: "PR-META 2", name: "listClients for an instance not federated is refused",
			target: "/listClients?xRoadInstance=TH", noClient: true, status: 500, typ: r1.TypeFederationOff, reach: blocked},
		{sec: "PR-META 2", name: "listClients at the root answers GET only",
			method: http.MethodPost, target: "/listClients", noClient: true, status: 400, typ: r1.TypeInvalidRequest, reach: blocked},
		{sec: "PR-META 3", name: "listCentralServices answers an empty list in XML, whatever Accept says",
			target: "/listCentralServices", noClient: true, hdr: map[string]string{"Accept": "application/json"}, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) {
				wantMedia(t, s.resp, "text/xml")
				var l struct {
					XMLName xml.Name
					Service []struct{} `xml:"http://x-road.eu/xsd/xroad.xsd centralService"`
				}
				if err := xml.Unmarshal(s.body, &l); err != nil || l.XMLName != (xml.Name{Space: "http://x-road.eu/xsd/xroad.xsd", Local: "centralServiceList"}) || len(l.Service) != 0 {
					t.Errorf("body %s: %v, want an empty centralServiceList", s.body, err)
				}
			}},
		{sec: "PR-MREST 4", name: "listMethods lists the provider's services and endpoints, no metaservices",
			target: mofRegistry + "/listMethods", status: 200, reach: blocked,
			check: func(t *testing.T, s seen) {
				got := serviceList(t, s)
				if got["companies"] != "OPENAPI GET /,GET /*" || got["filings"] != "OPENAPI GET /,POST /" || len(got) != 2 {
					t.Errorf("listMethods = %v, want companies and filings with their endpoints", got)
				}
			}},
		{sec: "PR-MREST 4", name: "allowedMethods lists what the client may call",
			target: "/r1/VN/GOV/MPS/residents/allowedMethods", hdr: map[string]string{r1.HeaderPurpose: "administrative-procedure"}, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) {
				if got := serviceList(t, s); got["persons"] != "OPENAPI GET /*" || len(got) != 1 {
					t.Errorf("allowedMethods = %v, want persons with GET /*", got)
				}
			}},
		{sec: "PR-MREST 4", name: "listMethods answers GET only",
			method: http.MethodPost, target: mofRegistry + "/listMethods", status: 400, typ: r1.TypeInvalidRequest, reach: blocked},
		{sec: "PR-MREST 5", name: "getOpenAPI answers the description of the service named by serviceCode",
			target: "/r1/VN/GOV/MPS/residents/getOpenAPI?serviceCode=persons", hdr: map[string]string{r1.HeaderPurpose: "administrative-procedure"}, status: 200, reach: blocked,
			check: func(t *testing.T, s seen) {
				if ct := s.resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/yaml") && !strings.HasPrefix(ct, "application/json") {
					t.Errorf("Content-Type = %q, want text/yaml or application/json", ct)
				}
				if !bytes.Contains(s.body, []byte("openapi")) {
					t.Errorf("body is no OpenAPI description: %.200s", s.body)
				}
			}},
		{sec: "PR-MREST 5", name: "getOpenAPI without serviceCode is refused",
			target: mofRegistry + "/getOpenAPI", status: 400, typ: r1.TypeInvalidRequest, reach: blocked},
		{sec: "PR-MREST 5", name: "getOpenAPI of a service not offered is refused",
			target: mofRegistry + "/getOpenAPI?serviceCode=nothing", status: 500, typ: r1.TypeServerUnknownSvc, reach: blocked},
	}
}

// binaryPayload holds every byte value.
var binaryPayload = func() []byte {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// TestConformance runs the conformance table through one world.
func TestConformance(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	tr := &http.Transport{ExpectContinueTimeout: time.Second}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, row := range conformanceRows() {
		t.Run(row.sec+": "+row.name, func(t *testing.T) {
			if row.answer != nil {
				w.answer.Store(&row.answer)
				defer w.answer.Store(nil)
			}
			if row.tamper != nil {
				w.tamper.Store(row.tamper)
				defer w.tamper.Store(nil)
			}
			w.mu.Lock()
			w.lastHdr = nil
			w.mu.Unlock()
			before := w.hits.Load()
			s := w.sendRaw(t, hc, row)
			w.mu.Lock()
			s.backend = w.lastHdr
			w.mu.Unlock()
			if s.resp.StatusCode != row.status {
				t.Errorf("status = %d, want %d; body %.300s", s.resp.StatusCode, row.status, s.body)
			}
			if got := s.resp.Header.Get(r1.HeaderError); got != row.typ {
				t.Errorf("X-Road-Error = %q, want %q; body %.300s", got, row.typ, s.body)
			}
			if row.typ != "" {
				wantErrorBody(t, s, row.typ, row.hdr["Accept"])
			}
			switch hits := w.hits.Load() - before; {
			case row.reach == reaches && hits == 0:
				t.Error("the request did not reach the service")
			case row.reach == blocked && hits != 0:
				t.Errorf("the service saw %d requests, want none", hits)
			}
			if row.check != nil && !t.Failed() {
				row.check(t, s)
			}
		})
	}
}

// sendRaw sends a row's request with its header names as written.
func (w *world) sendRaw(t *testing.T, hc *http.Client, row conformanceRow) seen {
	t.Helper()
	method := row.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if row.body != nil {
		body = bytes.NewReader(row.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, w.url+row.target, body)
	if err != nil {
		t.Fatal(err)
	}
	hasClient := false
	for k, v := range row.hdr {
		req.Header[k] = append(req.Header[k], v)
		hasClient = hasClient || strings.EqualFold(k, r1.HeaderClient)
	}
	if !hasClient && !row.noClient {
		req.Header.Set(r1.HeaderClient, hcmcClient)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, row.target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, row.target, err)
	}
	return seen{resp: resp, body: b}
}

// wantMedia checks an answer's media type, and that a text one names
// its character encoding.
func wantMedia(t *testing.T, resp *http.Response, want string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != want || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type = %q, want %s; charset=utf-8", resp.Header.Get("Content-Type"), want)
	}
}

// wantErrorBody checks an r1 error body in the format Accept asks for.
func wantErrorBody(t *testing.T, s seen, typ, accept string) {
	t.Helper()
	var e r1.Body
	if r1.Negotiate(accept, r1.FormatJSON) == r1.FormatXML {
		wantMedia(t, s.resp, "application/xml")
		var x struct {
			XMLName xml.Name
			r1.Body
		}
		if err := xml.Unmarshal(s.body, &x); err != nil || x.XMLName.Local != "error" {
			t.Fatalf("error body %q is not an XML error: %v", s.body, err)
		}
		e = x.Body
	} else {
		wantMedia(t, s.resp, "application/json")
		if err := json.Unmarshal(s.body, &e); err != nil {
			t.Fatalf("error body %q is not JSON: %v", s.body, err)
		}
	}
	if e.Type != typ || e.Message == "" || e.Detail == "" {
		t.Errorf("error body = %+v, want type %s with a message and a detail", e, typ)
	}
}

// wantRequestHash checks X-Road-Request-Hash: base64 of a SHA-512, and
// not the value given.
func wantRequestHash(t *testing.T, resp *http.Response, not string) {
	t.Helper()
	v := resp.Header.Get(r1.HeaderRequestHash)
	if h, err := base64.StdEncoding.DecodeString(v); err != nil || len(h) != 64 || v == not {
		t.Errorf("X-Road-Request-Hash = %q, want base64 of a SHA-512 the gateways computed", v)
	}
}

type xmlClientList struct {
	XMLName xml.Name
	Member  []struct {
		ID struct {
			ObjectType string `xml:"http://x-road.eu/xsd/identifiers objectType,attr"`
			Instance   string `xml:"http://x-road.eu/xsd/identifiers xRoadInstance"`
			Class      string `xml:"http://x-road.eu/xsd/identifiers memberClass"`
			Code       string `xml:"http://x-road.eu/xsd/identifiers memberCode"`
			Subsystem  string `xml:"http://x-road.eu/xsd/identifiers subsystemCode"`
		} `xml:"http://x-road.eu/xsd/xroad.xsd id"`
		Name string `xml:"http://x-road.eu/xsd/xroad.xsd name"`
	} `xml:"http://x-road.eu/xsd/xroad.xsd member"`
}

// wantClientListXML checks a clientList in PR-META's XML shape that
// lists want, each subsystem after its member, and returns its clients.
func wantClientListXML(t *testing.T, s seen, want string) []string {
	t.Helper()
	wantMedia(t, s.resp, "text/xml")
	var l xmlClientList
	if err := xml.Unmarshal(s.body, &l); err != nil {
		t.Fatalf("clientList %s: %v", s.body, err)
	}
	if l.XMLName != (xml.Name{Space: "http://x-road.eu/xsd/xroad.xsd", Local: "clientList"}) {
		t.Errorf("root element %v, want clientList in X-Road's namespace", l.XMLName)
	}
	var got []string
	for _, m := range l.Member {
		id := m.ID.Instance + "/" + m.ID.Class + "/" + m.ID.Code
		if m.ID.Subsystem != "" {
			id += "/" + m.ID.Subsystem
		}
		if m.ID.ObjectType != map[bool]string{true: "SUBSYSTEM", false: "MEMBER"}[m.ID.Subsystem != ""] || m.Name == "" {
			t.Errorf("member %s: objectType %q, name %q", id, m.ID.ObjectType, m.Name)
		}
		got = append(got, id)
	}
	wantListed(t, got, want)
	return got
}

// wantClientListJSON checks a client list in PR-META's JSON shape.
func wantClientListJSON(t *testing.T, s seen, want string) {
	t.Helper()
	wantMedia(t, s.resp, "application/json")
	var l struct {
		Member []struct {
			ID   map[string]string `json:"id"`
			Name string            `json:"name"`
		} `json:"member"`
	}
	if err := json.Unmarshal(s.body, &l); err != nil {
		t.Fatalf("client list %s: %v", s.body, err)
	}
	var got []string
	for _, m := range l.Member {
		id := m.ID["xroad_instance"] + "/" + m.ID["member_class"] + "/" + m.ID["member_code"]
		if sub := m.ID["subsystem_code"]; sub != "" {
			id += "/" + sub
		}
		got = append(got, id)
	}
	wantListed(t, got, want)
}

// wantListed checks that a list holds want as a subsystem, after its
// member.
func wantListed(t *testing.T, got []string, want string) {
	t.Helper()
	i := slices.Index(got, want)
	member := want[:strings.LastIndex(want, "/")]
	if i < 0 || !slices.Contains(got[:i], member) {
		t.Errorf("list %v does not hold %s after its member %s", got, want, member)
	}
}

// serviceList reads a listMethods or allowedMethods answer as service
// code → "TYPE METHOD /path,...".
func serviceList(t *testing.T, s seen) map[string]string {
	t.Helper()
	wantMedia(t, s.resp, "application/json")
	var l struct {
		Service []struct {
			ObjectType string `json:"object_type"`
			Code       string `json:"service_code"`
			Type       string `json:"service_type"`
			Endpoints  []struct {
				Method string `json:"method"`
				Path   string `json:"path"`
			} `json:"endpoint_list"`
		} `json:"service"`
	}
	if err := json.Unmarshal(s.body, &l); err != nil {
		t.Fatalf("service list %s: %v", s.body, err)
	}
	out := map[string]string{}
	for _, sv := range l.Service {
		if sv.ObjectType != "SERVICE" {
			t.Errorf("service %s has object_type %q", sv.Code, sv.ObjectType)
		}
		var eps []string
		for _, e := range sv.Endpoints {
			eps = append(eps, e.Method+" "+e.Path)
		}
		out[sv.Code] = sv.Type + " " + strings.Join(eps, ",")
	}
	return out
}

// TestR1DocNamesTests checks that every row of docs/r1.md's conformance
// table names tests that exist: rows of the conformance table above, or
// test functions of this package.
func TestR1DocNamesTests(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "docs", "r1.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows := map[string]bool{}
	for _, r := range conformanceRows() {
		name := r.sec + ": " + r.name
		if rows[name] {
			t.Errorf("conformance row %q appears twice", name)
		}
		rows[name] = true
	}
	funcs := testFuncs(t)
	quoted := regexp.MustCompile("`([^`]+)`")
	inTable, n := false, 0
	used := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "| section | requirement | Sampan | test |"):
			inTable = true
		case inTable && strings.HasPrefix(line, "|---"):
		case inTable && strings.HasPrefix(line, "|"):
			cells := strings.Split(strings.Trim(line, "| "), " | ")
			if len(cells) != 4 {
				t.Errorf("docs/r1.md: row %q has %d cells, want 4", line, len(cells))
				continue
			}
			n++
			refs := quoted.FindAllStringSubmatch(cells[3], -1)
			if len(refs) == 0 && strings.TrimSpace(cells[3]) != "—" {
				t.Errorf("docs/r1.md: row %q names no test (write — when none can)", cells[0]+" "+cells[1])
			}
			for _, m := range refs {
				ref := m[1]
				if fn, _, _ := strings.Cut(ref, "/"); strings.HasPrefix(ref, "Test") && funcs[fn] {
					continue
				}
				if !rows[ref] {
					t.Errorf("docs/r1.md names %q, which is neither a conformance row nor a test of package gateway", ref)
				}
				used[ref] = true
			}
		case inTable:
			inTable = false
		}
	}
	if n == 0 {
		t.Fatal("docs/r1.md has no conformance table")
	}
	for name := range rows {
		if !used[name] {
			t.Errorf("conformance row %q is not named in docs/r1.md", name)
		}
	}
}

// testFuncs returns the names of this package's test functions.
func testFuncs(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*_test.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`(?m)^func (Test\w+)\(t \*testing\.T\)`)
	out := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllSubmatch(b, -1) {
			out[string(m[1])] = true
		}
	}
	return out
}
