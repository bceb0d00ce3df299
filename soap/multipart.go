package soap

import (
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"

	"github.com/sampan-exchange/sampan/r1"
)

// Content types of the protocol.
const (
	// ContentTypeSOAP is the content type of a SOAP 1.1 message without
	// attachments, as this package writes it.
	ContentTypeSOAP = "text/xml; charset=UTF-8"
	mediaSOAP       = "text/xml"
	mediaMultipart  = "multipart/related"
	mediaXOP        = "application/xop+xml"
)

// Kind is the form of a message, by its content type.
type Kind int

const (
	// KindSOAP is a plain SOAP 1.1 message (text/xml).
	KindSOAP Kind = iota + 1
	// KindMultipart is SOAP with attachments: multipart/related whose
	// root is text/xml.
	KindMultipart
	// KindMTOM is an MTOM/XOP message: multipart/related whose root is
	// application/xop+xml carrying text/xml.
	KindMTOM
)

// ContentType is a parsed Content-Type of a message.
type ContentType struct {
	Kind     Kind
	Boundary string // multipart only
	// Start is the Content-ID of the root part (the start parameter,
	// without angle brackets), empty when the first part is the root.
	Start string
	// StartInfo is MTOM's start-info parameter: the root's real type.
	StartInfo string
}

// ParseContentType parses the Content-Type of a SOAP message and says
// which of the three forms it is. It refuses other media types, a
// charset other than UTF-8 (PR-MESS's default, and the only one this
// package decodes), a multipart message without boundary or whose type
// parameter is neither text/xml nor application/xop+xml, and MTOM whose
// start-info is not text/xml (SOAP 1.2's application/soap+xml).
func ParseContentType(v string) (ContentType, error) {
	media, params, err := mime.ParseMediaType(v)
	if err != nil {
		return ContentType{}, refuseCause(err, TypeInvalidContentType, "malformed Content-Type")
	}
	switch media {
	case mediaSOAP:
		if err := checkCharset(params); err != nil {
			return ContentType{}, err
		}
		return ContentType{Kind: KindSOAP}, nil
	case mediaMultipart:
	default:
		return ContentType{}, refuse(TypeInvalidContentType, "Content-Type %s is not SOAP 1.1 (text/xml or multipart/related)", truncate(media, 64))
	}
	ct := ContentType{Boundary: params["boundary"], Start: strings.Trim(params["start"], "<>"), StartInfo: params["start-info"]}
	if ct.Boundary == "" {
		return ContentType{}, refuse(TypeInvalidContentType, "multipart/related without a boundary")
	}
	switch t := strings.ToLower(params["type"]); t {
	case mediaSOAP, "":
		ct.Kind = KindMultipart
	case mediaXOP:
		ct.Kind = KindMTOM
		if si, _, _ := strings.Cut(strings.ToLower(ct.StartInfo), ";"); strings.TrimSpace(si) != mediaSOAP {
			return ContentType{}, refuse(TypeInvalidContentType, "MTOM start-info must be text/xml (SOAP 1.1)")
		}
	default:
		return ContentType{}, refuse(TypeInvalidContentType, "multipart/related of type %s is not SOAP 1.1", truncate(t, 64))
	}
	return ct, nil
}

// IsSOAP reports whether v is a plain SOAP 1.1 content type.
func IsSOAP(v string) bool { ct, err := ParseContentType(v); return err == nil && ct.Kind == KindSOAP }

// IsMultipart reports whether v is SOAP with attachments
// (multipart/related, root text/xml).
func IsMultipart(v string) bool {
	ct, err := ParseContentType(v)
	return err == nil && ct.Kind == KindMultipart
}

// IsMTOM reports whether v is an MTOM/XOP SOAP 1.1 message.
func IsMTOM(v string) bool { ct, err := ParseContentType(v); return err == nil && ct.Kind == KindMTOM }

func checkCharset(params map[string]string) error {
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return refuse(TypeInvalidContentType, "charset %s is not supported; use UTF-8", truncate(cs, 32))
	}
	return nil
}

// Part is one MIME part of a multipart message: its headers, kept as
// received, and its body as a stream.
type Part struct {
	Header textproto.MIMEHeader
	// ContentID is the Content-ID without angle brackets.
	ContentID               string
	ContentType             string
	ContentTransferEncoding string
	// Body reads the part's bytes as sent (no transfer decoding), until
	// the next boundary.
	Body io.Reader
}

// MultipartReader reads a multipart/related or MTOM message part by part:
// first the SOAP part (bounded and held), then each attachment as a
// stream. Nothing of an attachment is held beyond the reader's buffer.
type MultipartReader struct {
	ct    ContentType
	lim   Limits
	mr    *multipart.Reader
	parts int
	soap  bool // the SOAP part has been read
}

// NewMultipartReader returns a reader of body, whose Content-Type is
// contentType (multipart/related or MTOM).
func NewMultipartReader(body io.Reader, contentType string, lim Limits) (*MultipartReader, error) {
	ct, err := ParseContentType(contentType)
	if err != nil {
		return nil, err
	}
	if ct.Kind != KindMultipart && ct.Kind != KindMTOM {
		return nil, refuse(TypeInvalidContentType, "the message is not multipart/related")
	}
	lim = lim.withDefaults()
	return &MultipartReader{ct: ct, lim: lim, mr: multipart.NewReader(body, ct.Boundary)}, nil
}

// ContentType returns the message's parsed content type.
func (m *MultipartReader) ContentType() ContentType { return m.ct }

// next returns the next part, enforcing the part count and header size.
func (m *MultipartReader) next() (*Part, error) {
	if m.parts >= m.lim.MaxParts {
		return nil, refuse(TypeMimeParsingFailed, "the message has more than %d parts", m.lim.MaxParts)
	}
	p, err := m.mr.NextRawPart()
	if err == io.EOF {
		return nil, io.EOF
	}
	if err != nil {
		return nil, refuseCause(err, TypeMimeParsingFailed, "malformed multipart message")
	}
	m.parts++
	size := 0
	for k, vs := range p.Header {
		for _, v := range vs {
			size += len(k) + len(v) + 4
		}
	}
	if size > m.lim.MaxPartHeaderSize {
		return nil, refuse(TypeMimeParsingFailed, "part %d has more than %d bytes of headers", m.parts, m.lim.MaxPartHeaderSize)
	}
	return &Part{
		Header:                  p.Header,
		ContentID:               strings.Trim(strings.TrimSpace(p.Header.Get("Content-ID")), "<>"),
		ContentType:             p.Header.Get("Content-Type"),
		ContentTransferEncoding: p.Header.Get("Content-Transfer-Encoding"),
		Body:                    p,
	}, nil
}

// SOAPPart reads the first part, which must be the SOAP part (PR-MESS
// puts it first; a start parameter must name it), and returns its bytes,
// at most lim.MaxSOAPSize of them, and the part with its headers. For
// MTOM the part must be application/xop+xml of type text/xml; otherwise
// text/xml. Only 8bit, 7bit or binary transfer encodings are accepted
// for it (PR-MESS requires 8bit): the SOAP part is not decoded.
func (m *MultipartReader) SOAPPart() ([]byte, *Part, error) {
	if m.soap {
		return nil, nil, errors.New("read SOAP part: already read")
	}
	m.soap = true
	p, err := m.next()
	if err == io.EOF {
		return nil, nil, refuse(TypeMissingBody, "the multipart message has no parts")
	}
	if err != nil {
		return nil, nil, err
	}
	if m.ct.Start != "" && p.ContentID != m.ct.Start {
		return nil, nil, refuse(TypeMimeParsingFailed, "the first part must be the SOAP part named by start")
	}
	media, params, err := mime.ParseMediaType(p.ContentType)
	if err != nil {
		return nil, nil, refuseCause(err, TypeInvalidContentType, "the SOAP part has a malformed Content-Type")
	}
	want := mediaSOAP
	if m.ct.Kind == KindMTOM {
		want = mediaXOP
		if t, _, _ := strings.Cut(strings.ToLower(params["type"]), ";"); strings.TrimSpace(t) != mediaSOAP {
			return nil, nil, refuse(TypeInvalidContentType, "the MTOM root part must be application/xop+xml of type text/xml")
		}
	}
	if media != want {
		return nil, nil, refuse(TypeInvalidContentType, "the SOAP part must be %s", want)
	}
	if err := checkCharset(params); err != nil {
		return nil, nil, err
	}
	switch strings.ToLower(p.ContentTransferEncoding) {
	case "", "8bit", "7bit", "binary":
	default:
		return nil, nil, refuse(TypeMimeParsingFailed, "the SOAP part's Content-Transfer-Encoding must be 8bit")
	}
	b, err := ReadSOAP(p.Body, m.lim)
	if err != nil {
		var e *r1.Error
		if errors.As(err, &e) && e.Type == r1.TypeInvalidRequest {
			return nil, nil, refuseCause(err, TypeMimeParsingFailed, "malformed multipart message")
		}
		return nil, nil, err
	}
	return b, p, nil
}

// NextAttachment returns the next attachment, or io.EOF after the last.
// Reading it consumes the message: read (or drop) each attachment's Body
// before asking for the next, which skips what is left of it.
func (m *MultipartReader) NextAttachment() (*Part, error) {
	if !m.soap {
		return nil, errors.New("next attachment: read the SOAP part first")
	}
	return m.next()
}

// Digest algorithm URIs (XML-DSIG / XML Encryption), as requestHash's
// algorithmId names them.
const (
	DigestSHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
	DigestSHA512 = "http://www.w3.org/2001/04/xmlenc#sha512"
)

// NewHash returns a hash of the digest algorithm named by URI.
func NewHash(algorithmID string) (hash.Hash, error) {
	switch algorithmID {
	case DigestSHA256:
		return sha256.New(), nil
	case DigestSHA512:
		return sha512.New(), nil
	}
	return nil, fmt.Errorf("digest algorithm %q is not supported", algorithmID)
}

// DigestReader passes a stream through, hashing it on the way.
type DigestReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

// NewDigestReader returns a reader of r that hashes what is read with the
// algorithm named by URI.
func NewDigestReader(r io.Reader, algorithmID string) (*DigestReader, error) {
	h, err := NewHash(algorithmID)
	if err != nil {
		return nil, err
	}
	return &DigestReader{r: r, h: h}, nil
}

// Read implements io.Reader.
func (d *DigestReader) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	d.h.Write(p[:n])
	d.n += int64(n)
	return n, err
}

// Sum returns the digest of what has been read so far.
func (d *DigestReader) Sum() []byte { return d.h.Sum(nil) }

// Len returns the number of bytes read so far.
func (d *DigestReader) Len() int64 { return d.n }

// Attachment is an attachment to write.
type Attachment struct {
	ContentID   string // without angle brackets
	ContentType string
	Body        io.Reader
}

// MultipartWriter writes a SOAP with attachments message: the SOAP part
// first, as text/xml with 8bit transfer encoding, then each attachment,
// streamed.
type MultipartWriter struct {
	mw   *multipart.Writer
	soap bool
}

// NewMultipartWriter returns a writer of a multipart message to w. Send
// its ContentType before the first byte.
func NewMultipartWriter(w io.Writer) *MultipartWriter {
	return &MultipartWriter{mw: multipart.NewWriter(w)}
}

// ContentType returns the Content-Type of the message.
func (m *MultipartWriter) ContentType() string {
	return mime.FormatMediaType(mediaMultipart, map[string]string{"type": mediaSOAP, "boundary": m.mw.Boundary()})
}

// WriteSOAP writes the SOAP part; call it once, first.
func (m *MultipartWriter) WriteSOAP(soapPart []byte) error {
	if m.soap {
		return errors.New("write SOAP part: already written")
	}
	m.soap = true
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", ContentTypeSOAP)
	h.Set("Content-Transfer-Encoding", "8bit")
	pw, err := m.mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("write SOAP part: %w", err)
	}
	if _, err := pw.Write(soapPart); err != nil {
		return fmt.Errorf("write SOAP part: %w", err)
	}
	return nil
}

// WriteAttachment writes one attachment, copying its Body.
func (m *MultipartWriter) WriteAttachment(a Attachment) error {
	if !m.soap {
		return errors.New("write attachment: write the SOAP part first")
	}
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", a.ContentType)
	h.Set("Content-Transfer-Encoding", "binary")
	if a.ContentID != "" {
		h.Set("Content-ID", "<"+a.ContentID+">")
	}
	pw, err := m.mw.CreatePart(h)
	if err != nil {
		return fmt.Errorf("write attachment %s: %w", a.ContentID, err)
	}
	if _, err := io.Copy(pw, a.Body); err != nil {
		return fmt.Errorf("write attachment %s: %w", a.ContentID, err)
	}
	return nil
}

// Close writes the final boundary.
func (m *MultipartWriter) Close() error {
	if err := m.mw.Close(); err != nil {
		return fmt.Errorf("write multipart: %w", err)
	}
	return nil
}
