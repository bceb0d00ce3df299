package gateway_test

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/soap"
)

// Hostile SOAP requests and answers, from a registered client or a
// provider that misbehaves.

const getCompanySvc = "VN/GOV/MOF/business-registry/getCompany"

// soapSpy answers like soapEcho and keeps what the service saw.
type soapSpy struct {
	mu   sync.Mutex
	body []byte
	hdr  http.Header
	url  string
}

func (s *soapSpy) handler(t *testing.T) http.HandlerFunc {
	return func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.body, s.hdr, s.url = b, r.Header.Clone(), r.URL.String()
		s.mu.Unlock()
		env, err := soap.ParseRequest(b, soap.Limits{})
		if err != nil {
			rw.WriteHeader(500)
			return
		}
		out, _ := soap.Response(b, env, []byte(`<br:getCompanyResponse xmlns:br="urn:test"/>`))
		rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
		rw.Write(out)
	}
}

// TestSOAPHeaderMatchesSignedHeaders: a client sends a SOAP message to a
// SOAP service through the r1 front end, its HTTP X-Road-* headers (which
// policy and both logs read) saying one user, purpose and represented
// party and its SOAP header (which the service reads) others. The
// provider's gateway refuses a SOAP header that differs from the signed
// headers in any field, as it would one a malicious consumer's gateway
// sent, and a path or query on a SOAP service.
func TestSOAPHeaderMatchesSignedHeaders(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	spy := &soapSpy{}
	h := spy.handler(t)
	w.answer.Store(&h)
	defer w.answer.Store(nil)

	sh := soapHeader(t, hcmcClient, getCompanySvc, "hostile-1")
	sh.UserID = "EE-ADMIN"
	sh.Purpose = "law-enforcement"
	sh.RepresentedParty = &soap.RepresentedParty{Class: "COM", Code: "VICTIM-CO"}
	env := sh.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"><br:taxCode>0100109106</br:taxCode></br:getCompany>`))

	resp, body := w.do(t, call{method: http.MethodPost, path: getCompanySvc, body: bytes.NewReader(env), header: map[string]string{
		"Content-Type":            "text/xml; charset=utf-8",
		r1.HeaderID:               "hostile-1",
		r1.HeaderUserID:           "EE-CLERK",
		r1.HeaderPurpose:          "administrative-procedure",
		r1.HeaderRepresentedParty: "COM/HONEST-CO",
	}})
	if resp.StatusCode == http.StatusOK {
		spy.mu.Lock()
		seen := spy.body
		spy.mu.Unlock()
		got, err := soap.ParseRequest(seen, soap.Limits{})
		if err != nil {
			t.Fatalf("service saw: %v", err)
		}
		t.Errorf("the provider's gateway passed a SOAP header its signed X-Road headers contradict: "+
			"the service saw userId %q purpose %q representedParty %v; policy and logs saw X-Road-User-Id EE-CLERK, purpose administrative-procedure, COM/HONEST-CO",
			got.Header.UserID, got.Header.Purpose, got.Header.RepresentedParty)
	} else if f := resp.Header.Get(r1.HeaderError); f != r1.TypeServerInvalidReq {
		t.Logf("refused with %s: %s", f, body)
	}

	// A path and a query reach a SOAP service's backend URL through r1.
	sh2 := soapHeader(t, hcmcClient, getCompanySvc, "hostile-2")
	env2 := sh2.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"><br:taxCode>0100109106</br:taxCode></br:getCompany>`))
	resp, _ = w.do(t, call{method: http.MethodPost, path: getCompanySvc + "/admin/export?all=1", body: bytes.NewReader(env2), header: map[string]string{
		"Content-Type": "text/xml; charset=utf-8", r1.HeaderID: "hostile-2", r1.HeaderUserID: "EE12345",
	}})
	if resp.StatusCode == http.StatusOK {
		spy.mu.Lock()
		u := spy.url
		spy.mu.Unlock()
		t.Errorf("a SOAP service was called with a path and query its SOAP header does not name: backend URL %s", u)
	}
}

// TestSOAPMultipartAnswerChecked: a provider answers a SOAP request with
// multipart/related whose SOAP part names another id and another user
// and carries a requestHash of its own: the consumer's gateway checks
// the SOAP part of a multipart answer as it does a text/xml one, and
// refuses it.
func TestSOAPMultipartAnswerChecked(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	forged := `<xrd:requestHash xmlns:xrd="` + soap.NSXRoad + `" algorithmId="` + soap.DigestSHA512 + `">AAAA</xrd:requestHash>`
	bad := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		env, err := soap.ParseRequest(b, soap.Limits{})
		if err != nil {
			rw.WriteHeader(500)
			return
		}
		hh := env.Header
		hh.ID, hh.UserID = "someone-else", "EE-OTHER"
		part := hh.Marshal([]byte(`<br:getCompanyResponse xmlns:br="urn:test"/>`))
		part = bytes.Replace(part, []byte("</SOAP-ENV:Header>"), []byte(forged+"</SOAP-ENV:Header>"), 1)
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		p, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/xml; charset=UTF-8"}, "Content-Id": {"<root>"}})
		p.Write(part)
		p, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/octet-stream"}, "Content-Id": {"<att>"}})
		p.Write([]byte("data"))
		mw.Close()
		rw.Header().Set("Content-Type", `multipart/related; type="text/xml"; boundary=`+mw.Boundary())
		rw.Write(buf.Bytes())
	})
	w.answer.Store(&bad)
	defer w.answer.Store(nil)

	h := soapHeader(t, hcmcClient, getCompanySvc, "hostile-mp")
	req := h.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"><br:taxCode>0100109106</br:taxCode></br:getCompany>`))
	resp, body := postSOAP(t, w.url, req, "text/xml; charset=utf-8")
	if resp.StatusCode == http.StatusOK {
		t.Errorf("a multipart answer naming id someone-else, user EE-OTHER and a forged requestHash reached the client:\n%s", body)
	}
	if strings.Contains(string(body), ">AAAA<") {
		t.Errorf("the provider's requestHash reached the client")
	}
}

// TestSOAPContentTypeEdges: two Content-Types, a second part reusing the
// root's Content-ID, and content types a SOAP client may send that
// Sampan does not take: each is refused with a SOAP fault, and the
// service gets nothing the gateways did not check.
func TestSOAPContentTypeEdges(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	spy := &soapSpy{}
	h := spy.handler(t)
	w.answer.Store(&h)
	defer w.answer.Store(nil)
	sh := soapHeader(t, hcmcClient, getCompanySvc, "hostile-ct")
	env := sh.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"><br:taxCode>0100109106</br:taxCode></br:getCompany>`))

	// Two Content-Type headers: both gateways parse the first as the
	// message's type, and both values reach the service, which may take
	// the last (multipart, whose root is another envelope hidden in the
	// body's text). Exactly one Content-Type must be accepted, and only
	// the one parsed passed on.
	t.Run("two content types", func(t *testing.T) {
		other := soapHeader(t, hcmcClient, "VN/GOV/MOF/business-registry/deleteCompany", "hostile-ct")
		other.UserID = "EE-ADMIN"
		hidden := other.Marshal([]byte(`<br:deleteCompany xmlns:br="urn:test"/>`))
		inner := "\r\n--XB\r\nContent-Type: text/xml\r\n\r\n" + string(hidden) + "\r\n--XB--\r\n"
		var esc bytes.Buffer
		xmlEscape(&esc, inner)
		body := sh.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"><br:taxCode>` + esc.String() + `</br:taxCode></br:getCompany>`))
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, w.url+"/", bytes.NewReader(body))
		req.Header.Add("Content-Type", "text/xml; charset=utf-8")
		req.Header.Add("Content-Type", `multipart/related; type="text/xml"; boundary=XB`)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		spy.mu.Lock()
		cts := spy.hdr.Values("Content-Type")
		spy.mu.Unlock()
		if resp.StatusCode == http.StatusOK && len(cts) > 1 {
			t.Errorf("a request with two Content-Types was served, and the service got both: %q\n%s", cts, b)
		}
	})

	// A start parameter names the root, and an attachment repeats its
	// Content-ID with another envelope: the gateways check the first
	// part; a service that looks the root up by Content-ID may take the
	// second.
	t.Run("root content-id twice", func(t *testing.T) {
		other := soapHeader(t, hcmcClient, getCompanySvc, "hostile-ct")
		other.UserID = "EE-ADMIN"
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		p, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/xml; charset=UTF-8"}, "Content-Id": {"<root>"}})
		p.Write(env)
		p, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/xml; charset=UTF-8"}, "Content-Id": {"<root>"}})
		p.Write(other.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"/>`)))
		mw.Close()
		spy.mu.Lock()
		spy.body = nil
		spy.mu.Unlock()
		postSOAP(t, w.url, buf.Bytes(), `multipart/related; type="text/xml"; start="<root>"; boundary=`+mw.Boundary())
		spy.mu.Lock()
		seen := spy.body
		spy.mu.Unlock()
		if seen != nil {
			t.Errorf("a message with two parts named by start (the second with userId EE-ADMIN) reached the service")
		}
	})

	// A SOAP client's request the front end does not take for SOAP gets
	// an r1 error, not a SOAP fault.
	t.Run("latin-1 charset", func(t *testing.T) {
		resp, b := postSOAP(t, w.url, env, "text/xml; charset=ISO-8859-1")
		if _, err := soap.ParseFault(b, soap.Limits{}); err != nil {
			t.Errorf("a SOAP client got a non-SOAP answer (%d, %s):\n%s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
	})
}

func xmlEscape(b *bytes.Buffer, s string) {
	r := strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;")
	b.WriteString(r.Replace(s))
}

// TestSOAPAnswerStreams: large text/xml answers in parallel grow the
// heap no more than the same answers through r1: the consumer's gateway
// checks a large answer's header and puts requestHash in from its first
// bytes, and streams the body on.
func TestSOAPAnswerStreams(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	big := bytes.Repeat([]byte("A"), 15<<20)
	ans := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		env, err := soap.ParseRequest(b, soap.Limits{})
		if err != nil {
			rw.WriteHeader(500)
			return
		}
		rw.Header().Set("Content-Type", soap.ContentTypeSOAP)
		rw.Write([]byte(`<?xml version="1.0" encoding="UTF-8"?>`))
		rw.Write(env.EnvelopeStartTag.Bytes(b))
		rw.Write(env.HeaderSpan.Bytes(b))
		rw.Write([]byte(`<SOAP-ENV:Body><br:getCompanyResponse xmlns:br="urn:test"><br:blob>`))
		rw.Write(big)
		rw.Write([]byte(`</br:blob></br:getCompanyResponse></SOAP-ENV:Body>`))
		rw.Write(env.EnvelopeEndTag.Bytes(b))
	})
	w.answer.Store(&ans)
	defer w.answer.Store(nil)

	measure := func(viaR1 bool) (passed, grewMiB int64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapInuse
		var peak atomic.Uint64
		stop := watchHeap(&peak)
		const n = 8
		var wg sync.WaitGroup
		var ok atomic.Int64
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				id := "hostile-big-" + strconv.FormatBool(viaR1) + strconv.Itoa(i)
				h := soapHeader(t, hcmcClient, getCompanySvc, id)
				u := w.url + "/"
				if viaR1 {
					u = w.url + "/r1/" + getCompanySvc
				}
				req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, u, bytes.NewReader(h.Marshal([]byte(`<br:getCompany xmlns:br="urn:test"/>`))))
				req.Header.Set("Content-Type", "text/xml")
				req.Header.Set(r1.HeaderClient, hcmcClient)
				req.Header.Set(r1.HeaderID, id)
				req.Header.Set(r1.HeaderUserID, "EE12345")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return
				}
				defer resp.Body.Close()
				head := make([]byte, 4<<10)
				k, _ := io.ReadFull(resp.Body, head)
				m, _ := io.Copy(io.Discard, resp.Body)
				// The answer's head carries requestHash, put in before the
				// body streamed on.
				hashed := viaR1 || bytes.Contains(head[:k], []byte("requestHash"))
				if resp.StatusCode == 200 && int64(k)+m > 15<<20 && hashed {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		stop()
		return ok.Load(), (int64(peak.Load()) - int64(base)) >> 20
	}
	rOK, rGrew := measure(true)
	sOK, sGrew := measure(false)
	t.Logf("8 parallel answers of 15 MiB: r1 %d passed, heap +%d MiB; SOAP %d passed, heap +%d MiB", rOK, rGrew, sOK, sGrew)
	if sOK != 8 {
		t.Errorf("%d of 8 large SOAP answers came back whole with requestHash in their head", sOK)
	}
	if sGrew > rGrew+64 {
		t.Errorf("8 parallel SOAP answers of 15 MiB grew the heap by %d MiB, the same answers through r1 by %d MiB: the consumer's gateway holds each SOAP answer whole, several times over", sGrew, rGrew)
	}
}
