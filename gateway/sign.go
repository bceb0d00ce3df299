package gateway

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
)

// Headers the gateways exchange among themselves. They are never passed to
// a client or a service (r1.Forwardable refuses the Sampan- prefix).
const (
	// hdrSignature carries the detached JWS: as an HTTP trailer after a
	// streamed body, or as a header when the sender held the whole
	// (small) message before sending it; never both.
	hdrSignature = "Sampan-Signature"
	// hdrSignerCert carries the base64 DER of the signing certificate.
	hdrSignerCert = "Sampan-Signer-Cert"
	// hdrSignedHeaders lists, lower case and comma separated, the headers
	// the signature covers. Only those reach the other side's client or
	// service.
	hdrSignedHeaders = "Sampan-Signed-Headers"
	// hdrSignedAt and hdrNonce carry, in a request, the time the
	// consumer's gateway signed it (signedAtLayout, UTC) and a random
	// 16-byte nonce in lower-case hex. Both are in the signed head; the
	// provider's gateway refuses a request outside its clock-skew
	// tolerance or whose nonce it has seen (replay.go).
	hdrSignedAt = "Sampan-Signed-At"
	hdrNonce    = "Sampan-Nonce"

	// hdrFeatures lists, in a request, the features of the exchange
	// protocol that the consumer's gateway understands, comma-separated.
	hdrFeatures = "Sampan-Features"
	// featureLoggedTrailer: the consumer's gateway accepts a held answer
	// before the provider's record of it is durable, and releases it only
	// once the hdrLogged trailer says it is.
	featureLoggedTrailer = "logged-trailer"
	// hdrLogged: as a header (loggedPending), the provider's gateway says
	// that its record of a held answer is still being written, and that
	// the trailer of the same name will say whether it became durable
	// (loggedOK) or not (loggedFailed). Like an r1 error between the
	// gateways it is not signed: the TLS session authenticates the
	// provider's gateway.
	hdrLogged     = "Sampan-Logged"
	loggedPending = "pending"
	loggedOK      = "ok"
	loggedFailed  = "failed"
)

// signatureOf returns a message's signature, from its headers or its
// trailer; a message with none, or with more than one, is refused.
func signatureOf(h, trailer http.Header) (string, error) {
	hv, tv := h.Values(hdrSignature), trailer.Values(hdrSignature)
	switch {
	case len(hv)+len(tv) > 1:
		return "", fmt.Errorf("%w: it carries more than one signature", errSignature)
	case len(hv) == 1 && hv[0] != "":
		return hv[0], nil
	case len(tv) == 1 && tv[0] != "":
		return tv[0], nil
	}
	return "", fmt.Errorf("%w: it carries no signature", errSignature)
}

// maxSignedHeaders bounds the number of headers one message may carry.
const maxSignedHeaders = 100

// forwardHeaders copies the forwardable headers of src into dst and
// returns their lower-case names, sorted.
func forwardHeaders(dst, src http.Header) []string { return forwardHeadersBut(dst, src, "") }

// forwardHeadersBut is forwardHeaders leaving out, as well, the headers
// whose canonical names begin with drop (none if it is empty). dst
// shares src's value slices; with dst nil it only names the headers.
func forwardHeadersBut(dst, src http.Header, drop string) []string {
	conn := src.Values("Connection")
	names := make([]string, 0, len(src))
	for k, vs := range src {
		if !r1.Forwardable(k, conn) || drop != "" && strings.HasPrefix(k, drop) {
			continue
		}
		if dst != nil {
			dst[k] = vs
		}
		names = append(names, strings.ToLower(k))
	}
	slices.Sort(names)
	return names
}

// parseSignedHeaders reads the list of signed header names a peer sent.
func parseSignedHeaders(v string) ([]string, error) {
	if v == "" {
		return nil, nil
	}
	names := strings.Split(v, ",")
	if len(names) > maxSignedHeaders {
		return nil, errors.New("too many signed headers")
	}
	for i, n := range names {
		if n == "" || strings.ToLower(n) != n || !r1.Forwardable(n, nil) {
			return nil, errors.New("signed header list names a header that may not be forwarded")
		}
		if i > 0 && names[i-1] >= n {
			return nil, errors.New("signed header list is not sorted and unique")
		}
	}
	return names, nil
}

// writeHeaders appends the canonical form of the named headers.
func writeHeaders(b []byte, h http.Header, names []string) []byte {
	for _, n := range names {
		for _, v := range h.Values(textproto.CanonicalMIMEHeaderKey(n)) {
			b = append(b, n...)
			b = append(b, ':')
			b = append(b, v...)
			b = append(b, '\n')
		}
	}
	return b
}

// signedAtLayout is the form of hdrSignedAt: RFC 3339, UTC, milliseconds.
const signedAtLayout = "2006-01-02T15:04:05.000Z"

// nonceLen is the length of a nonce in hex.
const nonceLen = 32

// requiredCanon are msglog.RequiredSignedHeaders in canonical form.
var requiredCanon = func() (c [len(msglog.RequiredSignedHeaders)]string) {
	for i, n := range msglog.RequiredSignedHeaders {
		c[i] = textproto.CanonicalMIMEHeaderKey(n)
	}
	return c
}()

// withRequired adds to a sorted list of lower-case header names the
// required ones it lacks, and returns it sorted: a request signature
// covers every required header, present or absent.
func withRequired(names []string) []string {
	n := len(names)
	for _, r := range msglog.RequiredSignedHeaders {
		if _, found := slices.BinarySearch(names[:n], r); !found {
			names = append(names, r)
		}
	}
	if len(names) > n {
		slices.Sort(names)
	}
	return names
}

// missingRequired returns the first required header name a sorted signed
// header list lacks, or "".
func missingRequired(names []string) string {
	for _, r := range msglog.RequiredSignedHeaders {
		if _, found := slices.BinarySearch(names, r); !found {
			return r
		}
	}
	return ""
}

// repeatedRequired returns the first required header h carries more
// than once, or "".
func repeatedRequired(h http.Header) string {
	for _, c := range requiredCanon {
		if len(h[c]) > 1 {
			return c
		}
	}
	return ""
}

// otherHeadersSum returns the hex SHA-256 of the canonical block of the
// named headers of h that are not required ones: "name:value\n" for each
// value, names in the list's (sorted) order.
func otherHeadersSum(h http.Header, names []string) string {
	var a [1024]byte
	b := a[:0]
	for _, n := range names {
		if msglog.IsRequiredSigned(n) {
			continue
		}
		for _, v := range h.Values(textproto.CanonicalMIMEHeaderKey(n)) {
			b = msglog.AppendHeaderLine(b, n, v)
		}
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkSignedHead reads the list of headers a peer request's signature
// covers and refuses one that lacks a required header (a consumer's
// gateway that signs the version 1 head), repeats one, or names in
// X-Road-Service another service than its path.
func (g *Gateway) checkSignedHead(r *http.Request, svc ident.ServiceID) ([]string, *r1.Error) {
	names, err := parseSignedHeaders(r.Header.Get(hdrSignedHeaders))
	if err != nil {
		return nil, r1.Wrap(err, r1.TypeServerInvalidReq, "malformed signed header list")
	}
	if m := missingRequired(names); m != "" {
		return nil, r1.New(r1.TypeServerSignature, "the request signature does not cover %s: this gateway accepts only signatures over the %s head, which covers every X-Road header it reads", m, msglog.RequestHeadVersion)
	}
	if h := repeatedRequired(r.Header); h != "" {
		return nil, r1.New(r1.TypeServerInvalidReq, "header %s appears more than once", h)
	}
	if v := r.Header.Get(r1.HeaderService); v != svc.Escaped() {
		return nil, r1.New(r1.TypeServerInvalidReq, "%s does not name the service of the request path", r1.HeaderService)
	}
	return names, nil
}

// requestHead is the canonical form of everything in a request but its
// body, from its record (msglog.Record.AppendRequestHead).
func requestHead(rec *msglog.Record) []byte {
	return rec.AppendRequestHead(make([]byte, 0, 512))
}

// responseHead is the canonical form of a response but its body: the
// status, the request hash it answers, and the signed headers.
func responseHead(status int, requestHash string, h http.Header, names []string) []byte {
	b := make([]byte, 0, 512)
	b = append(b, "sampan-response-v1\n"...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, '\n')
	b = append(b, requestHash...)
	b = append(b, '\n')
	return writeHeaders(b, h, names)
}

// signedPayload is what a signature covers: the digest of the head, the
// digest of the body and the signing certificate's fingerprint.
func signedPayload(head, bodySum []byte, signerFP string) []byte {
	hs := sha256.Sum256(head)
	b := make([]byte, 0, 64+1+64+1+64)
	b = hex.AppendEncode(b, hs[:])
	b = append(b, '\n')
	b = hex.AppendEncode(b, bodySum)
	b = append(b, '\n')
	b = append(b, signerFP...)
	return b
}

// requestHash identifies a signed request: the base64 SHA-512 of its
// signed payload and signature. The response signature covers it, and the
// client receives it in X-Road-Request-Hash.
func requestHash(payload []byte, sig string) string {
	h := sha512.New()
	h.Write(payload)
	h.Write([]byte{'\n'})
	h.Write([]byte(sig))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// hasFeature reports whether a request's hdrFeatures lists feature.
func hasFeature(h http.Header, feature string) bool {
	for _, v := range h.Values(hdrFeatures) {
		for f := range strings.SplitSeq(v, ",") {
			if strings.TrimSpace(f) == feature {
				return true
			}
		}
	}
	return false
}
