package gateway

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/msglog"
	"github.com/sampan-exchange/sampan/r1"
)

// FuzzParseSignedHeaders: the signed header list a peer sends is either
// refused or a sorted, unique list of lower-case forwardable names within
// the bound, which joined again is the input.
func FuzzParseSignedHeaders(f *testing.F) {
	for _, s := range []string{
		"", "accept", "accept,content-type,x-road-client,x-road-id,x-road-issue,x-road-legal-basis,x-road-purpose,x-road-represented-party,x-road-service,x-road-userid",
		"b,a", "a,a", "A", "connection", "sampan-signature", "a,,b", ",", "x-road-id,", strings.Repeat("a,", 120),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		names, err := parseSignedHeaders(v)
		if err != nil {
			return
		}
		if len(names) > maxSignedHeaders {
			t.Fatalf("%d names accepted", len(names))
		}
		if strings.Join(names, ",") != v {
			t.Fatalf("%q parsed to %q", v, names)
		}
		for i, n := range names {
			if n == "" || strings.ToLower(n) != n || !r1.Forwardable(n, nil) || i > 0 && names[i-1] >= n {
				t.Fatalf("%q accepted in %q", n, v)
			}
		}
		// A list that lacks a required name is found out.
		if m := missingRequired(names); m != "" && slices.Contains(names, m) {
			t.Fatalf("missingRequired(%q) = %q, which it holds", names, m)
		}
		full := withRequired(slices.Clone(names))
		if missingRequired(full) != "" || !slices.IsSorted(full) {
			t.Fatalf("withRequired(%q) = %q", names, full)
		}
	})
}

// FuzzPeerRequestHead: whatever signature, signed header list, signed
// time, nonce and X-Road headers a peer sends, reading them either
// refuses the request or yields what the signed head is built from,
// with no line break in any of its lines; signatureOf finds exactly one
// signature or refuses.
func FuzzPeerRequestHead(f *testing.F) {
	f.Add("sig", "", "x-road-client,x-road-id,x-road-issue,x-road-legal-basis,x-road-purpose,x-road-represented-party,x-road-service,x-road-userid",
		"2026-12-07T16:35:00.000Z", "00112233445566778899aabbccddeeff", "scam-investigation", "case-1")
	f.Add("", "sig", "accept", "2026-12-07T16:35:00Z", "0011", "", "")
	f.Add("a", "b", "x-road-id", "", "", "p\x00", "\xff")
	f.Add("", "", "", "not a time", "00112233445566778899AABBCCDDEEFF", "", "")
	f.Fuzz(func(t *testing.T, hsig, tsig, list, signedAt, nonce, purpose, id string) {
		h, tr := http.Header{}, http.Header{}
		if hsig != "" {
			h.Set(hdrSignature, hsig)
		}
		if tsig != "" {
			tr.Set(hdrSignature, tsig)
		}
		switch sig, err := signatureOf(h, tr); {
		case err != nil && (hsig != "") != (tsig != ""):
			t.Fatalf("one signature refused: %v", err)
		case err == nil && (sig == "" || hsig != "" && tsig != ""):
			t.Fatalf("signatureOf(%q, %q) = %q", hsig, tsig, sig)
		}
		svc := ident.ServiceID{Provider: ident.ClientID{Instance: "VN", Class: "GOV", Code: "MOF", Subsystem: "business-registry"}, Code: "companies"}
		h.Set(hdrSignedHeaders, list)
		h.Set(r1.HeaderService, svc.Escaped())
		h.Set(r1.HeaderPurpose, purpose)
		h.Set(r1.HeaderID, id)
		r := &http.Request{Method: http.MethodGet, Header: h, URL: &url.URL{Path: "/x/"}}
		g := &Gateway{}
		names, e := g.checkSignedHead(r, svc)
		if e != nil {
			return
		}
		if missingRequired(names) != "" {
			t.Fatalf("accepted a list lacking a required name: %q", list)
		}
		rg := &replayGuard{skew: 2 * time.Minute, shared: nil, floor: 0}
		st, e := rg.check(signedAt, nonce, time.Date(2026, 12, 7, 16, 35, 30, 0, time.UTC))
		if e != nil {
			return
		}
		if st.at.Format(signedAtLayout) != signedAt || len(nonce) != nonceLen {
			t.Fatalf("accepted signed time %q, nonce %q", signedAt, nonce)
		}
		rec := &msglog.Record{Method: r.Method, Service: svc.String(), XRoadID: id, Purpose: purpose,
			RequestSignedAt: signedAt, RequestNonce: nonce, RequestHeadersSHA256: otherHeadersSum(h, names), RequestSignedHeaders: names}
		if got := strings.Count(string(requestHead(rec)), "\n"); got != 14 && !strings.ContainsAny(id+purpose, "\r\n") {
			t.Fatalf("head of %d lines", got+1)
		}
	})
}

// FuzzParsePeerPath: a peer request path either is refused or names a
// valid service, and a service path without dot segments or encoded
// separators; the service's escaped form leads the path again.
func FuzzParsePeerPath(f *testing.F) {
	for _, s := range []string{
		"/x/VN/GOV/MOF/business-registry/companies",
		"/x/VN/GOV/MOF/business-registry/companies/0100109106",
		"/x/VN/GOV/MOF/business-registry/companies/a/b?c",
		"/x/VN/GOV/MOF/business-registry/companies/../x",
		"/x/VN/GOV/MOF/business-registry/companies/%2e%2E/x",
		"/x/VN/GOV/MOF/business-registry/companies/a%2Fb",
		"/x/VN/GOV/MOF%2Fx/business-registry/companies",
		"/x/VN/GOV/MOF/business%20registry/companies",
		"/x/VN/GOV", "/r1/VN/GOV/MOF/a/b", "/x/%zz/GOV/MOF/a/b", "",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		svc, path, err := parsePeerPath(p)
		if err != nil {
			return
		}
		if err := svc.Validate(); err != nil {
			t.Fatalf("%q: invalid service %v accepted: %v", p, svc, err)
		}
		if path != "" {
			if !strings.HasPrefix(path, "/") || r1.CheckPath(path) != nil {
				t.Fatalf("%q: path %q accepted", p, path)
			}
		}
		again, path2, err := parsePeerPath(peerPrefix + svc.Escaped() + path)
		if err != nil || again != svc || path2 != path {
			t.Fatalf("%q: %v %q did not parse back (%v %q %v)", p, svc, path, again, path2, err)
		}
	})
}
