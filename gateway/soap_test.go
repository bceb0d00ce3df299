package gateway_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

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
// and requestHash; refusals are SOAP faults, one row for each fault class
// of PR-MESS; then the rows of docs/soap.md's conformance table that need
// real gateways (soapconf_test.go), in the same world.
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

	runSOAPFaults(t, w, soapFaultCases(t, h, req))
	soapTampered(t, w, req)
	soapHeadersAndFaults(t, w, h, req)
	soapMetaservices(t, w)
}

// TestSOAPAttachmentsStream: a SOAP message with an attachment (SwA and
// MTOM) reaches the service byte for byte through both gateways, the
// attachment streamed: the test's memory (client, both gateways and the
// service are in this process) stays flat while it passes. The size is
// 64 MiB, or SAMPAN_SOAP_ATTACHMENT_MIB.
func TestSOAPAttachmentsStream(t *testing.T) {
	size := int64(64 << 20)
	if v := os.Getenv("SAMPAN_SOAP_ATTACHMENT_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatal(err)
		}
		size = int64(n) << 20
	}
	w := startWorld(t, sandbox.Options{})
	type got struct {
		raw, att string
		n        int64
	}
	seen := make(chan got, 1)
	svc := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		raw := sha256.New()
		mr, err := soap.NewMultipartReader(io.TeeReader(r.Body, raw), r.Header.Get("Content-Type"), soap.Limits{})
		if err != nil {
			t.Errorf("service: %v", err)
			rw.WriteHeader(400)
			return
		}
		part, _, err := mr.SOAPPart()
		if err != nil {
			t.Errorf("service: %v", err)
			rw.WriteHeader(400)
			return
		}
		env, _ := soap.ParseRequest(part, soap.Limits{})
		att, err := mr.NextAttachment()
		if err != nil {
			t.Errorf("service: attachment: %v", err)
			rw.WriteHeader(400)
			return
		}
		h := sha256.New()
		n, _ := io.Copy(h, att.Body)
		io.Copy(io.Discard, r.Body)
		seen <- got{raw: hex.EncodeToString(raw.Sum(nil)), att: hex.EncodeToString(h.Sum(nil)), n: n}
		out, _ := soap.Response(part, env, []byte(`<r:companiesResponse xmlns:r="urn:test"/>`))
		rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
		rw.Write(out)
	})
	w.answer.Store(&svc)
	defer w.answer.Store(nil)
	h := soapHeader(t, hcmcClient, companies, "soap-att")
	part := h.Marshal([]byte(`<r:companies xmlns:r="urn:test"><r:file href="cid:doc"/></r:companies>`))
	for _, mtom := range []bool{false, true} {
		name := map[bool]string{false: "SwA", true: "MTOM"}[mtom]
		t.Run(name, func(t *testing.T) {
			pr, pw := io.Pipe()
			sent, att := sha256.New(), sha256.New()
			doc := io.TeeReader(io.LimitReader(&pattern{x: 1}, size), att)
			var ct string
			if mtom {
				// MTOM: the root is the XOP package of the SOAP part.
				mw := multipart.NewWriter(pw)
				ct = `multipart/related; type="application/xop+xml"; start="<root>"; start-info="text/xml"; boundary=` + mw.Boundary()
				go func() {
					rw, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {`application/xop+xml; charset=UTF-8; type="text/xml"`}, "Content-Id": {"<root>"}})
					if err == nil {
						_, err = rw.Write(part)
					}
					if err == nil {
						var aw io.Writer
						if aw, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"}, "Content-Id": {"<doc>"}, "Content-Transfer-Encoding": {"binary"}}); err == nil {
							_, err = io.Copy(aw, doc)
						}
					}
					if err == nil {
						err = mw.Close()
					}
					pw.CloseWithError(err)
				}()
			} else {
				mw := soap.NewMultipartWriter(pw)
				ct = mw.ContentType()
				go func() {
					err := mw.WriteSOAP(part)
					if err == nil {
						err = mw.WriteAttachment(soap.Attachment{ContentID: "doc", ContentType: "application/octet-stream", Body: doc})
					}
					if err == nil {
						err = mw.Close()
					}
					pw.CloseWithError(err)
				}()
			}
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.url+"/", io.TeeReader(pr, sent))
			req.Header.Set("Content-Type", ct)
			var peak atomic.Uint64
			stop := watchHeap(&peak)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				stop()
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			stop()
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			g := <-seen
			if g.n != size || g.att != hex.EncodeToString(att.Sum(nil)) || g.raw != hex.EncodeToString(sent.Sum(nil)) {
				t.Errorf("the service got %d bytes of attachment (want %d); attachment digest equal %v, message digest equal %v",
					g.n, size, g.att == hex.EncodeToString(att.Sum(nil)), g.raw == hex.EncodeToString(sent.Sum(nil)))
			}
			if env, err := soap.Parse(body, soap.Limits{}); err != nil || soap.CheckRequestHash(part, env.Header) != nil {
				t.Errorf("answer: %v\n%s", err, body)
			}
			t.Logf("%s: %d MiB attachment, peak heap in use %d MiB, peak RSS %s", name, size>>20, peak.Load()>>20, vmHWM())
			if peak.Load() > 64<<20 {
				t.Errorf("peak heap in use %d MiB while %d MiB streamed: the attachment is held somewhere", peak.Load()>>20, size>>20)
			}
		})
	}
}

// watchHeap samples the heap in use every 20 ms into peak until stop.
func watchHeap(peak *atomic.Uint64) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-finished }
}

// vmHWM is the process's peak resident set size, from /proc.
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "unknown"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// TestSOAPMonitoring: an X-Road monitoring collector's requests
// (PR-OPMON) to a gateway's client side: operational data as the
// answer's gzip JSON attachment, health data in the body; the owner's
// subsystem reads every record, and requests for another gateway or
// another owner are refused.
func TestSOAPMonitoring(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	for _, id := range []string{"mon-1", "mon-2"} {
		if resp, b := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: id}}); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
	}
	// Records become available a minute after their second: move the
	// gateway's clock on rather than wait.
	w.setClock(hcmcGW, 5*time.Minute)
	now := time.Now().Unix()
	c, _ := ident.ParseClient(hcmcClient)
	header := func(owner, code string, target *soap.SecurityServerID) soap.Header {
		m, _ := ident.ParseMember(owner)
		return soap.Header{Client: soap.ClientFromIdent(c), ID: "mon-" + code, ProtocolVersion: "4.0", SecurityServer: target,
			Service: soap.ServiceID{ObjectType: soap.ObjectService, Instance: m.Instance, Class: m.Class, Code: m.Code, Service: code}}
	}
	self, _ := ident.ParseGateway(hcmcGW)
	target := soap.SecurityServerFromIdent(self)
	opBody := []byte(`<om:getSecurityServerOperationalData xmlns:om="http://x-road.eu/xsd/op-monitoring.xsd"><om:searchCriteria><om:recordsFrom>` +
		strconv.FormatInt(now-600, 10) + `</om:recordsFrom><om:recordsTo>` + strconv.FormatInt(now+60, 10) + `</om:recordsTo></om:searchCriteria></om:getSecurityServerOperationalData>`)
	// The records are written as the exchanges end: ask until both are.
	fetch := func() map[any]bool {
		req := header("VN/GOV/HCMC", soap.OpOperationalData, &target).Marshal(opBody)
		resp, body := postSOAP(t, w.url, req, "text/xml")
		if resp.StatusCode != 200 {
			t.Fatalf("operational data: %d\n%s", resp.StatusCode, body)
		}
		mr, err := soap.NewMultipartReader(bytes.NewReader(body), resp.Header.Get("Content-Type"), soap.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		part, _, err := mr.SOAPPart()
		if err != nil || !strings.Contains(string(part), "<om:recordsCount>") {
			t.Fatalf("SOAP part: %v\n%s", err, part)
		}
		if env, err := soap.Parse(part, soap.Limits{}); err != nil || soap.CheckRequestHash(req, env.Header) != nil {
			t.Errorf("operational data without a valid requestHash: %v\n%s", err, part)
		}
		att, err := mr.NextAttachment()
		if err != nil || att.ContentID != "operational-monitoring-data.json.gz" {
			t.Fatalf("attachment: %+v %v", att, err)
		}
		zr, err := gzip.NewReader(att.Body)
		if err != nil {
			t.Fatal(err)
		}
		var recs struct {
			Records []map[string]any `json:"records"`
		}
		if err := json.NewDecoder(zr).Decode(&recs); err != nil {
			t.Fatal(err)
		}
		ids := map[any]bool{}
		for _, r := range recs.Records {
			ids[r["messageId"]] = true
		}
		return ids
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		ids := fetch()
		if ids["mon-1"] && ids["mon-2"] {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of %v, want mon-1 and mon-2", ids)
		}
	}

	healthReq := header("VN/GOV/HCMC", soap.OpHealthData, nil).Marshal([]byte(`<om:getSecurityServerHealthData xmlns:om="http://x-road.eu/xsd/op-monitoring.xsd"/>`))
	resp, body := postSOAP(t, w.url, healthReq, "text/xml")
	if resp.StatusCode != 200 || !strings.Contains(string(body), "getSecurityServerHealthDataResponse") {
		t.Errorf("health data: %d\n%s", resp.StatusCode, body)
	}
	if env, err := soap.Parse(body, soap.Limits{}); err != nil || soap.CheckRequestHash(healthReq, env.Header) != nil {
		t.Errorf("health data without a valid requestHash: %v\n%s", err, body)
	}

	other, _ := ident.ParseGateway("VN/GOV/MOF/gw1")
	otherTarget := soap.SecurityServerFromIdent(other)
	for _, c := range []struct {
		name string
		req  []byte
		code string
	}{
		{"another gateway", header("VN/GOV/HCMC", soap.OpOperationalData, &otherTarget).Marshal(opBody), r1.TypeUnknownService},
		{"another owner", header("VN/GOV/MOF", soap.OpOperationalData, nil).Marshal(opBody), r1.TypeUnknownService},
		{"a bad interval", header("VN/GOV/HCMC", soap.OpOperationalData, nil).Marshal([]byte(`<om:getSecurityServerOperationalData xmlns:om="http://x-road.eu/xsd/op-monitoring.xsd"><om:searchCriteria><om:recordsFrom>20</om:recordsFrom><om:recordsTo>10</om:recordsTo></om:searchCriteria></om:getSecurityServerOperationalData>`)), r1.TypeInvalidRequest},
	} {
		resp, body := postSOAP(t, w.url, c.req, "text/xml")
		if f, err := soap.ParseFault(body, soap.Limits{}); err != nil || f.Code != c.code {
			t.Errorf("%s: %d %+v %v\n%s", c.name, resp.StatusCode, f, err, body)
		}
	}
}
