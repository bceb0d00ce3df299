package soap

import (
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/r1"
)

// FuzzParseEnvelope feeds arbitrary bytes to Parse. It must never panic;
// a refusal must be an *r1.Error; an accepted request must carry valid
// identifiers, and its header must survive Marshal and a second Parse
// unchanged. The seed corpus is in testdata/fuzz/FuzzParseEnvelope.
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte(request))
	f.Add(wantHeader.Marshal([]byte(`<m:companyDetails xmlns:m="urn:x"/>`)))
	f.Add(NewFault(r1.New(r1.TypeNetworkError, "unreachable"), "id-1", SpellingSnake).Marshal())
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := Parse(b, Limits{})
		if err != nil {
			var e *r1.Error
			if !errors.As(err, &e) || !strings.HasPrefix(e.Type, "Client.") {
				t.Fatalf("refusal %v is not a Client.* *r1.Error", err)
			}
			return
		}
		if env.Fault != nil {
			return
		}
		if _, err := env.Header.Client.Ident(); err != nil {
			t.Fatalf("accepted client %+v: %v", env.Header.Client, err)
		}
		if _, err := env.Header.Service.Ident(); err != nil {
			t.Fatalf("accepted service %+v: %v", env.Header.Service, err)
		}
		h := env.Header
		h.Other = nil
		// The service code starts the name of an element that parsed,
		// so it is a name itself.
		again, err := Parse(h.Marshal([]byte("<"+h.Service.Service+"/>")), Limits{})
		if err != nil {
			t.Fatalf("re-parse of %+v: %v", h, err)
		}
		if !reflect.DeepEqual(again.Header, h) {
			t.Fatalf("round trip:\n%+v\n%+v", again.Header, h)
		}
		for _, el := range env.Header.Other {
			if el.Span.Start < 0 || el.Span.End > int64(len(b)) || el.Span.Start >= el.Span.End {
				t.Fatalf("span %v outside %d bytes", el.Span, len(b))
			}
		}
	})
}

// FuzzMultipart feeds arbitrary bodies to the multipart reader. It must
// never panic, and refusals must be *r1.Error values.
func FuzzMultipart(f *testing.F) {
	ct, body := mtom(request, "a", "b")
	f.Add(ct, []byte(body))
	f.Add(`multipart/related; type="text/xml"; boundary="MIME_b"`, []byte(strings.Replace(body, `application/xop+xml; charset=UTF-8; type="text/xml"`, "text/xml", 1)))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		mr, err := NewMultipartReader(strings.NewReader(string(body)), ct, Limits{MaxSOAPSize: 64 << 10})
		if err != nil {
			var e *r1.Error
			if !errors.As(err, &e) {
				t.Fatalf("refusal %v is not an *r1.Error", err)
			}
			return
		}
		soapPart, _, err := mr.SOAPPart()
		if err != nil {
			var e *r1.Error
			if !errors.As(err, &e) {
				t.Fatalf("refusal %v is not an *r1.Error", err)
			}
			return
		}
		if len(soapPart) > 64<<10 {
			t.Fatalf("SOAP part of %d bytes held", len(soapPart))
		}
		for {
			p, err := mr.NextAttachment()
			if err != nil {
				if err != io.EOF {
					var e *r1.Error
					if !errors.As(err, &e) {
						t.Fatalf("refusal %v is not an *r1.Error", err)
					}
				}
				return
			}
			io.Copy(io.Discard, p.Body)
		}
	})
}
