package msglog

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON appends the record as encoding/json would encode it, byte
// for byte (TestRecordJSONMatchesEncodingJSON), but for each invalid
// UTF-8 byte, written \ufffd as encoding/json did up to Go 1.26 (1.27
// writes U+FFFD itself) so that the logged bytes stay as they were. It
// does so without reflection: the encoding runs once per record on the
// exchange's path, where reflection
// cost about 3 % of the gateways' CPU at peak. It reports false for what
// encoding/json would refuse (a time outside years 0–9999, or with a zone
// 24 hours or more away from UTC), which the
// caller then hands to encoding/json for its error. A field added to
// Record must be added here too; the test fails until it is.
func (r *Record) appendJSON(b []byte) ([]byte, bool) {
	ok := true
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, int64(r.Version), 10)
	b = appendField(b, "kind", r.Kind)
	b = appendField(b, "side", r.Side)
	b = appendField(b, "gateway", r.Gateway)
	b = appendField(b, "peer_gateway", r.PeerGateway)
	b = appendField(b, "x_road_id", r.XRoadID)
	b = appendField(b, "request_id", r.RequestID)
	b = appendField(b, "client", r.Client)
	b = appendField(b, "service", r.Service)
	b = appendOmit(b, "user_id", r.UserID)
	b = appendOmit(b, "issue", r.Issue)
	b = appendField(b, "method", r.Method)
	b = appendField(b, "path", r.Path)
	b = appendOmit(b, "query", r.Query)
	b = appendOmit(b, "purpose", r.Purpose)
	b = appendOmit(b, "legal_basis", r.LegalBasis)
	b = appendOmit(b, "represented_party", r.RepresentedParty)
	b = append(b, `,"request_at":`...)
	b, ok = appendTime(b, r.RequestAt, ok)
	b = append(b, `,"response_at":`...)
	b, ok = appendTime(b, r.ResponseAt, ok)
	b = appendInt(b, "status", int64(r.Status))
	b = appendField(b, "request_head_sha256", r.RequestHeadSHA256)
	b = appendField(b, "request_body_sha256", r.RequestBodySHA256)
	b = appendInt(b, "request_bytes", r.RequestBytes)
	b = appendField(b, "response_head_sha256", r.ResponseHeadSHA256)
	b = appendField(b, "response_body_sha256", r.ResponseBodySHA256)
	b = appendInt(b, "response_bytes", r.ResponseBytes)
	b = appendField(b, "request_hash", r.RequestHash)
	b = appendField(b, "request_signature", r.RequestSignature)
	b = appendField(b, "request_signer_sha256", r.RequestSignerCert)
	b = appendField(b, "response_signature", r.ResponseSignature)
	b = appendField(b, "response_signer_sha256", r.ResponseSignerCert)
	b = appendOmit(b, "request_signed_at", r.RequestSignedAt)
	b = appendOmit(b, "request_nonce", r.RequestNonce)
	b = appendOmit(b, "request_headers_sha256", r.RequestHeadersSHA256)
	b = appendStringsOmit(b, "request_signed_headers", r.RequestSignedHeaders)
	b = appendStringsOmit(b, "response_signed_headers", r.ResponseSignedHeaders)
	b = append(b, `,"decision":`...)
	if d := r.Decision; d == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"allow":`...)
		b = strconv.AppendBool(b, d.Allow)
		b = append(b, `,"rules":`...)
		b = appendStrings(b, d.Rules)
		b = appendOmit(b, "agreement", d.Agreement)
		b = appendField(b, "policy_version", d.PolicyVersion)
		b = appendOmit(b, "data_class", d.DataClass)
		b = appendStringsOmit(b, "flags", d.Flags)
		b = append(b, `,"cross_border":`...)
		b = strconv.AppendBool(b, d.CrossBorder)
		b = appendOmit(b, "destination", d.Destination)
		b = appendOmit(b, "purpose", d.Purpose)
		b = appendOmit(b, "legal_basis", d.LegalBasis)
		b = appendOmit(b, "message", d.Message)
		b = appendStringsOmit(b, "references", d.References)
		if d.RetentionDays != 0 {
			b = appendInt(b, "retention_days", int64(d.RetentionDays))
		}
		b = append(b, '}')
	}
	b = appendOmit(b, "bodies", r.Bodies)
	if r.PurgedBefore != nil {
		b = append(b, `,"purged_before":`...)
		b, ok = appendTime(b, *r.PurgedBefore, ok)
	}
	if r.PurgedCount != 0 {
		b = appendInt(b, "purged_count", int64(r.PurgedCount))
	}
	b = appendOmit(b, "purged_digests_sha256", r.PurgedDigestsSHA256)
	return append(b, '}'), ok
}

// sizeHint is about how long the record's JSON is: its text plus the
// names, numbers and times around it (text that needs escaping makes it
// longer, and the buffer then grows once).
func (r *Record) sizeHint() int {
	n := 600 + len(r.Kind) + len(r.Side) + len(r.Gateway) + len(r.PeerGateway) + len(r.XRoadID) + len(r.RequestID) +
		len(r.Client) + len(r.Service) + len(r.UserID) + len(r.Issue) + len(r.Method) + len(r.Path) + len(r.Query) +
		len(r.RequestHeadSHA256) + len(r.RequestBodySHA256) + len(r.ResponseHeadSHA256) + len(r.ResponseBodySHA256) +
		len(r.RequestHash) + len(r.RequestSignature) + len(r.RequestSignerCert) + len(r.ResponseSignature) +
		len(r.ResponseSignerCert) + len(r.Bodies) + len(r.PurgedDigestsSHA256) +
		len(r.Purpose) + len(r.LegalBasis) + len(r.RepresentedParty) + len(r.RequestSignedAt) + len(r.RequestNonce) +
		len(r.RequestHeadersSHA256)
	for _, l := range [][]string{r.RequestSignedHeaders, r.ResponseSignedHeaders} {
		for _, v := range l {
			n += len(v) + 3
		}
	}
	if d := r.Decision; d != nil {
		n += 150 + len(d.Agreement) + len(d.PolicyVersion) + len(d.DataClass) + len(d.Destination) + len(d.Purpose) +
			len(d.LegalBasis) + len(d.Message)
		for _, l := range [][]string{d.Rules, d.Flags, d.References} {
			for _, v := range l {
				n += len(v) + 3
			}
		}
	}
	return n
}

// appendField appends ,"name":"value".
func appendField(b []byte, name, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

// appendOmit is appendField for a field left out when empty.
func appendOmit(b []byte, name, v string) []byte {
	if v == "" {
		return b
	}
	return appendField(b, name, v)
}

func appendInt(b []byte, name string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

// appendStrings appends a list of strings; nil is null.
// appendStringsOmit appends a list field, leaving it out when empty.
func appendStringsOmit(b []byte, name string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(b, `,"`...)
	b = append(b, name...)
	b = append(b, `":`...)
	return appendStrings(b, vs)
}

func appendStrings(b []byte, vs []string) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, v)
	}
	return append(b, ']')
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// the nanoseconds it has); ok turns false for a time that refuses.
func appendTime(b []byte, t time.Time, ok bool) ([]byte, bool) {
	if y := t.Year(); y < 0 || y > 9999 {
		return b, false
	}
	if _, off := t.Zone(); off <= -24*3600 || off >= 24*3600 {
		return b, false
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), ok
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way encoding/json does:
// HTML's <, > and & escaped, invalid UTF-8 as U+FFFD, and U+2028 and
// U+2029 escaped.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
