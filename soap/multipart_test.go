package soap

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/r1"
)

func TestParseContentType(t *testing.T) {
	for _, c := range []struct {
		v    string
		kind Kind
		ok   bool
	}{
		{"text/xml", KindSOAP, true},
		{"text/xml; charset=utf-8", KindSOAP, true},
		{"text/xml; charset=ISO-8859-1", 0, false},
		{"application/soap+xml", 0, false},
		{"application/json", 0, false},
		{`multipart/related; type="text/xml"; boundary=b1`, KindMultipart, true},
		{`multipart/related; boundary=b1`, KindMultipart, true},
		{`multipart/related; type="text/xml"`, 0, false},
		{`multipart/related; type="application/xop+xml"; start="<root>"; start-info="text/xml"; boundary=b1`, KindMTOM, true},
		{`multipart/related; type="application/xop+xml"; start-info="application/soap+xml"; boundary=b1`, 0, false},
		{`multipart/related; type="image/png"; boundary=b1`, 0, false},
		{`multipart/related; boundary="unterminated`, 0, false},
	} {
		ct, err := ParseContentType(c.v)
		if (err == nil) != c.ok || ct.Kind != c.kind {
			t.Errorf("%s: kind %d, %v; want kind %d ok %v", c.v, ct.Kind, err, c.kind, c.ok)
		}
	}
	if !IsSOAP("text/xml") || !IsMultipart(`multipart/related; boundary=x`) || !IsMTOM(`multipart/related; type="application/xop+xml"; start-info="text/xml"; boundary=x`) || IsSOAP("multipart/related; boundary=x") {
		t.Error("Is* helpers")
	}
}

// mtom is an MTOM request: the root part is application/xop+xml, the
// binary travels as its own part.
func mtom(soapPart string, atts ...string) (string, string) {
	var b strings.Builder
	b.WriteString("--MIME_b\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\nContent-Transfer-Encoding: 8bit\r\nContent-ID: <root.message@sampan>\r\n\r\n")
	b.WriteString(soapPart)
	for i, a := range atts {
		b.WriteString("\r\n--MIME_b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <att" + string(rune('0'+i)) + "@sampan>\r\n\r\n")
		b.WriteString(a)
	}
	b.WriteString("\r\n--MIME_b--\r\n")
	return `multipart/related; type="application/xop+xml"; start="<root.message@sampan>"; start-info="text/xml"; boundary="MIME_b"`, b.String()
}

func TestMTOMReader(t *testing.T) {
	ct, body := mtom(request, "first\x00binary", "second")
	mr, err := NewMultipartReader(strings.NewReader(body), ct, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if mr.ContentType().Kind != KindMTOM {
		t.Errorf("kind %d", mr.ContentType().Kind)
	}
	if _, err := mr.NextAttachment(); err == nil {
		t.Error("an attachment before the SOAP part")
	}
	soapPart, root, err := mr.SOAPPart()
	if err != nil {
		t.Fatal(err)
	}
	if string(soapPart) != request || root.ContentID != "root.message@sampan" {
		t.Errorf("root %q %q", root.ContentID, soapPart[:20])
	}
	if _, err := Parse(soapPart, Limits{}); err != nil {
		t.Error(err)
	}
	for i, want := range []string{"first\x00binary", "second"} {
		p, err := mr.NextAttachment()
		if err != nil {
			t.Fatal(err)
		}
		d, err := NewDigestReader(p.Body, DigestSHA256)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(d)
		sum := sha256.Sum256([]byte(want))
		if string(got) != want || !bytes.Equal(d.Sum(), sum[:]) || d.Len() != int64(len(want)) {
			t.Errorf("attachment %d = %q", i, got)
		}
		if p.ContentTransferEncoding != "binary" || p.ContentID != "att"+string(rune('0'+i))+"@sampan" || p.ContentType != "application/octet-stream" {
			t.Errorf("attachment %d headers %+v", i, p.Header)
		}
	}
	if _, err := mr.NextAttachment(); err != io.EOF {
		t.Errorf("after the last: %v", err)
	}
}

func TestMultipartRefusals(t *testing.T) {
	ct, body := mtom(request, "a", "b", "c")
	swa := `multipart/related; type="text/xml"; boundary="MIME_b"`
	for _, c := range []struct {
		name string
		ct   string
		body string
		lim  Limits
		typ  string
	}{
		{"too many parts", ct, body, Limits{MaxParts: 3}, TypeMimeParsingFailed},
		{"oversize SOAP part", ct, body, Limits{MaxSOAPSize: 100}, r1.TypeRequestTooLarge},
		{"part headers too large", ct, strings.Replace(body, "Content-Transfer-Encoding: binary", "X-Pad: "+strings.Repeat("p", 9000), 1), Limits{}, TypeMimeParsingFailed},
		{"root is not xop for MTOM", ct, strings.Replace(body, `application/xop+xml; charset=UTF-8; type="text/xml"`, "text/xml", 1), Limits{}, TypeInvalidContentType},
		{"root is xop for SwA", swa, body, Limits{}, TypeInvalidContentType},
		{"start names another part", strings.Replace(ct, "root.message", "other", 1), body, Limits{}, TypeMimeParsingFailed},
		{"SOAP part base64", ct, strings.Replace(body, "Content-Transfer-Encoding: 8bit", "Content-Transfer-Encoding: base64", 1), Limits{}, TypeMimeParsingFailed},
		{"no parts", ct, "--MIME_b--\r\n", Limits{}, TypeMissingBody},
		{"garbage", ct, "no boundary here", Limits{}, TypeMimeParsingFailed},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := readAll(c.ct, c.body, c.lim)
			var e *r1.Error
			if !errors.As(err, &e) || e.Type != c.typ {
				t.Errorf("err = %v, want type %s", err, c.typ)
			}
		})
	}
	if err := readAll(ct, body, Limits{}); err != nil {
		t.Errorf("the unaltered message: %v", err)
	}
}

// readAll reads a whole multipart message, dropping the attachments.
func readAll(ct, body string, lim Limits) error {
	mr, err := NewMultipartReader(strings.NewReader(body), ct, lim)
	if err != nil {
		return err
	}
	if _, _, err := mr.SOAPPart(); err != nil {
		return err
	}
	for {
		p, err := mr.NextAttachment()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		io.Copy(io.Discard, p.Body)
	}
}

// filler yields n bytes of 'a' without holding them.
type filler struct{ n int64 }

func (f *filler) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	for i := range p {
		p[i] = 'a'
	}
	f.n -= int64(len(p))
	return len(p), nil
}

// TestAttachmentStreamed streams a 64 MiB attachment through the reader
// and the digest and checks that the heap does not grow with it.
func TestAttachmentStreamed(t *testing.T) {
	const size = 64 << 20
	ct, _ := mtom("")
	head := "--MIME_b\r\nContent-Type: application/xop+xml; charset=UTF-8; type=\"text/xml\"\r\nContent-ID: <root.message@sampan>\r\n\r\n" + request +
		"\r\n--MIME_b\r\nContent-Type: application/octet-stream\r\nContent-ID: <big@sampan>\r\n\r\n"
	body := io.MultiReader(strings.NewReader(head), &filler{n: size}, strings.NewReader("\r\n--MIME_b--\r\n"))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	mr, err := NewMultipartReader(body, ct, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := mr.SOAPPart(); err != nil {
		t.Fatal(err)
	}
	p, err := mr.NextAttachment()
	if err != nil {
		t.Fatal(err)
	}
	d, _ := NewDigestReader(p.Body, DigestSHA512)
	n, err := io.Copy(io.Discard, d)
	if err != nil || n != size {
		t.Fatalf("copied %d, %v", n, err)
	}
	runtime.ReadMemStats(&after)
	// TotalAlloc counts every allocation, freed or not: streaming keeps
	// it to the buffers, far below the attachment's size.
	if grown := after.TotalAlloc - before.TotalAlloc; grown > 4<<20 {
		t.Errorf("allocated %d bytes to stream %d", grown, size)
	}
	if _, err := mr.NextAttachment(); err != io.EOF {
		t.Errorf("after the attachment: %v", err)
	}
}
