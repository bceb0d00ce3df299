package r1

import (
	"encoding/xml"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		accept string
		dflt   Format
		want   Format
	}{
		{"", FormatJSON, FormatJSON},
		{"", FormatXML, FormatXML},
		{"*/*", FormatJSON, FormatJSON},
		{"*/*", FormatXML, FormatXML},
		{"application/json", FormatXML, FormatJSON},
		{"application/xml", FormatJSON, FormatXML},
		{"text/xml", FormatJSON, FormatXML},
		{"TEXT/XML; charset=utf-8", FormatJSON, FormatXML},
		{"application/xml;q=0.5, application/json", FormatJSON, FormatJSON},
		{"application/json;q=0.4, text/xml;q=0.8", FormatJSON, FormatXML},
		{"application/xml, application/json", FormatJSON, FormatJSON}, // a tie: the default
		{"application/xml, application/json", FormatXML, FormatXML},
		{"text/*", FormatJSON, FormatXML},
		{"application/json;q=0, */*", FormatJSON, FormatXML}, // JSON refused outright
		{"application/xml;q=bogus", FormatJSON, FormatJSON},
		{"image/png", FormatXML, FormatXML},
		{"application/json, text/plain, */*", FormatXML, FormatJSON}, // named beats a wildcard's equal rating
		{"application/xml, */*", FormatJSON, FormatXML},
		{"application/json;q=0, application/xml;q=0", FormatXML, FormatXML},
	} {
		if got := Negotiate(tc.accept, tc.dflt); got != tc.want {
			t.Errorf("Negotiate(%q, %v) = %v, want %v", tc.accept, tc.dflt, got, tc.want)
		}
	}
}

// An XML error body escapes what the message carries, so that a
// message quoting the client's input cannot add elements.
func TestWriteAsXML(t *testing.T) {
	rec := httptest.NewRecorder()
	WriteAs(rec, New(TypeInvalidServiceID, "bad <detail>x</detail> & \x01 more"), "id-1", FormatXML)
	if got := rec.Header().Get("Content-Type"); got != "application/xml; charset=utf-8" {
		t.Errorf("Content-Type = %q", got)
	}
	if rec.Code != 400 || rec.Header().Get(HeaderError) != TypeInvalidServiceID {
		t.Errorf("status %d, X-Road-Error %q", rec.Code, rec.Header().Get(HeaderError))
	}
	var e struct {
		XMLName xml.Name
		Body
	}
	if err := xml.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("%s: %v", rec.Body, err)
	}
	if n := strings.Count(rec.Body.String(), "<detail>"); n != 1 {
		t.Errorf("%d detail elements in %s", n, rec.Body)
	}
	if e.XMLName.Local != "error" || e.Type != TypeInvalidServiceID || !strings.HasPrefix(e.Message, "bad <detail>x</detail> & ") || e.Detail != "id-1" {
		t.Errorf("decoded %+v from %s", e, rec.Body)
	}
}
