package msglog

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// RequestHeadVersion names the canonical request head a version 3 record
// describes; its first line.
const RequestHeadVersion = "sampan-request-v2"

// RequiredSignedHeaders are the request headers every request signature
// must cover, lower case, in the order they appear in the canonical
// head. They carry what access rights, policy, routing and the log read.
var RequiredSignedHeaders = [...]string{
	"x-road-client",
	"x-road-service",
	"x-road-id",
	"x-road-userid",
	"x-road-issue",
	"x-road-purpose",
	"x-road-legal-basis",
	"x-road-represented-party",
}

// IsRequiredSigned reports whether the lower-case header name is one of
// RequiredSignedHeaders.
func IsRequiredSigned(name string) bool {
	if !strings.HasPrefix(name, "x-road-") {
		return false
	}
	for _, r := range RequiredSignedHeaders {
		if r == name {
			return true
		}
	}
	return false
}

// AppendRequestHead appends the canonical head of the request r
// describes: every line the request signature covers but the body. It
// reads the record's fields alone, so that the gateways sign and verify
// exactly what the log keeps and a bundle can be checked by rebuilding it:
//
//	sampan-request-v2
//	METHOD
//	SERVICE
//	PATH?QUERY
//	x-road-client:CLIENT
//	x-road-service:SERVICE
//	x-road-id:ID
//	x-road-userid:USER        (empty when absent, as for the next four)
//	x-road-issue:ISSUE
//	x-road-purpose:PURPOSE
//	x-road-legal-basis:BASIS
//	x-road-represented-party:PARTY
//	signed-at:TIME
//	nonce:NONCE
//	headers:HEX SHA-256 OF THE OTHER SIGNED HEADERS
//
// Client and service are their identifiers' plain forms; the other
// header values are as sent. No value may hold a line break (HTTP header
// values cannot); CheckRequestHead says so for a record read back.
func (r *Record) AppendRequestHead(b []byte) []byte {
	b = append(b, RequestHeadVersion...)
	b = append(b, '\n')
	b = appendLine(b, "", r.Method)
	b = appendLine(b, "", r.Service)
	b = append(b, r.Path...)
	b = append(b, '?')
	b = appendLine(b, "", r.Query)
	b = appendLine(b, "x-road-client:", r.Client)
	b = appendLine(b, "x-road-service:", r.Service)
	b = appendLine(b, "x-road-id:", r.XRoadID)
	b = appendLine(b, "x-road-userid:", r.UserID)
	b = appendLine(b, "x-road-issue:", r.Issue)
	b = appendLine(b, "x-road-purpose:", r.Purpose)
	b = appendLine(b, "x-road-legal-basis:", r.LegalBasis)
	b = appendLine(b, "x-road-represented-party:", r.RepresentedParty)
	b = appendLine(b, "signed-at:", r.RequestSignedAt)
	b = appendLine(b, "nonce:", r.RequestNonce)
	b = append(b, "headers:"...)
	return append(b, r.RequestHeadersSHA256...)
}

func appendLine(b []byte, name, v string) []byte {
	b = append(b, name...)
	b = append(b, v...)
	return append(b, '\n')
}

// AppendHeaderLine appends one header of the other signed headers'
// canonical block: "name:value\n", name lower case.
func AppendHeaderLine(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, ':')
	b = append(b, value...)
	return append(b, '\n')
}

// ErrV1Signature is returned by CheckRequestHead for a record whose
// request signature predates the version 2 head: it covers the headers
// the sender chose, so that what access rights, policy and routing read
// cannot be shown to be signed.
var ErrV1Signature = errors.New("the request signature uses the version 1 head, which does not provably cover the X-Road headers that access rights, policy and routing read")

// CheckRequestHead checks that a record's request head can be rebuilt
// from its fields and hashes to RequestHeadSHA256, and that the signed
// header names it records include every required one.
func (r *Record) CheckRequestHead() error {
	if r.Version < 3 {
		return fmt.Errorf("record version %d: %w", r.Version, ErrV1Signature)
	}
	if r.RequestSignedAt == "" || r.RequestNonce == "" || len(r.RequestHeadersSHA256) != 64 {
		return fmt.Errorf("record lacks the signed time, nonce or headers digest of its request: %w", ErrV1Signature)
	}
	for _, req := range RequiredSignedHeaders {
		if !containsString(r.RequestSignedHeaders, req) {
			return fmt.Errorf("the request signature does not cover %s", req)
		}
	}
	for _, v := range [...]string{r.Method, r.Service, r.Path, r.Query, r.Client, r.XRoadID, r.UserID, r.Issue,
		r.Purpose, r.LegalBasis, r.RepresentedParty, r.RequestSignedAt, r.RequestNonce, r.RequestHeadersSHA256} {
		if strings.ContainsAny(v, "\r\n") {
			return errors.New("a field of the request head holds a line break")
		}
	}
	// The head joins path and query with '?': a path (escaped, as
	// gateways record it) never holds one, so the join is unambiguous.
	if strings.Contains(r.Path, "?") {
		return errors.New("the request path holds a '?'")
	}
	sum := sha256.Sum256(r.AppendRequestHead(make([]byte, 0, 512)))
	if hex.EncodeToString(sum[:]) != r.RequestHeadSHA256 {
		return errors.New("the request head rebuilt from the record's fields does not hash to request_head_sha256")
	}
	return nil
}

func containsString(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}
