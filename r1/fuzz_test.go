package r1

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/ident"
)

// FuzzParseRequest feeds arbitrary paths and X-Road headers to the r1
// parser. It must never panic; what it accepts must be well formed, and
// what it refuses must be refused as the caller's mistake (400).
func FuzzParseRequest(f *testing.F) {
	for _, s := range [][4]string{
		{"/r1/VN/GOV/MOF/business-registry/companies/0100109106", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV/MOF/business-registry/companies", "VN/GOV/HCMC/one-stop", "case-1", "user"},
		{"/r1/VN/listClients", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV/MOF/business-registry/listMethods", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV/MOF/business%2Dregistry/companies/a%20b", "VN/GOV/HCMC/one%2Dstop", "", ""},
		{"/r1/VN/GOV/MOF/business-registry/companies/../x", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV/MOF/business-registry/companies/%2e%2E/x", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV", "VN/GOV/HCMC", "", ""},
		{"/r1//GOV/MOF/x/y", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r2/VN/GOV/MOF/x/y", "VN/GOV/HCMC/one-stop", "", ""},
		{"/r1/VN/GOV/MOF/x/y", "VN/GOV/HCMC/one%3Bstop", "", ""},
		{"/r1/VN/GOV/MOF/x/%zz", "VN/GOV/HCMC/a", "", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	f.Fuzz(func(t *testing.T, path, client, id, user string) {
		u, err := url.Parse("http://gw" + path)
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		r := &http.Request{Method: http.MethodGet, URL: u, Header: http.Header{}}
		for k, v := range map[string]string{HeaderClient: client, HeaderID: id, HeaderUserID: user} {
			if v != "" {
				r.Header.Set(k, v)
			}
		}
		req, e := ParseRequest(r)
		if e != nil {
			if !strings.HasPrefix(e.Type, "Client.") || e.Status != http.StatusBadRequest || e.Message == "" {
				t.Fatalf("refusal %+v is not a 400 Client.* error with a message", e)
			}
			return
		}
		if !req.Client.IsSubsystem() || req.Client.Validate() != nil {
			t.Fatalf("accepted client %q", req.Client)
		}
		back, err := ident.ParseEscapedClient(req.Client.Escaped())
		if err != nil || back != req.Client {
			t.Fatalf("client %q does not survive escaping: %v", req.Client, err)
		}
		if req.ID == "" {
			t.Fatal("no X-Road-Id")
		}
		switch req.Meta {
		case MetaListClients:
			if ident.ValidateInstance(req.MetaInstance) != nil {
				t.Fatalf("listClients of instance %q", req.MetaInstance)
			}
		default:
			if err := req.Service.Validate(); err != nil {
				t.Fatalf("accepted service %q: %v", req.Service, err)
			}
			if req.Path != "" && (!strings.HasPrefix(req.Path, "/") || CheckPath(req.Path) != nil) {
				t.Fatalf("accepted path %q", req.Path)
			}
		}
	})
}

// FuzzParseSecurityServer feeds arbitrary X-Road-Security-Server values
// to their parser: what it accepts is a valid gateway identifier, and
// what it refuses is refused as the caller's mistake.
func FuzzParseSecurityServer(f *testing.F) {
	for _, s := range []string{"VN/GOV/MOF/gw1", "VN/GOV/MOF/gw%31", "VN/GOV/MOF", "VN/GOV/MOF/gw1/x", "VN/GOV/MOF/g%2Fw", "VN/GOV/MOF/%zz", "///", "VN/GOV/MOF/g;w"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		g, e := ParseSecurityServer(v)
		if e != nil {
			if e.Type != TypeInvalidHeader || e.Status != http.StatusBadRequest {
				t.Fatalf("refusal %+v is not a 400 %s", e, TypeInvalidHeader)
			}
			return
		}
		if err := g.Validate(); err != nil {
			t.Fatalf("accepted %q as %v: %v", v, g, err)
		}
	})
}

// FuzzNegotiate feeds arbitrary Accept headers to Negotiate: it must
// never panic and always answer one of the two formats.
func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"", "*/*", "application/xml", "application/json;q=0.5, text/xml", "text/*;q=abc", ";;,,", "application/xml;q=1.5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, accept string) {
		for _, d := range []Format{FormatJSON, FormatXML} {
			if got := Negotiate(accept, d); got != FormatJSON && got != FormatXML {
				t.Fatalf("Negotiate(%q) = %v", accept, got)
			}
		}
	})
}
