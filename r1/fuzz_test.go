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
