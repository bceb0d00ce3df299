package soap

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/r1"
)

func TestFaultSpellings(t *testing.T) {
	for _, c := range []struct {
		typ          string
		camel, snake string
	}{
		{r1.TypeNetworkError, "Server.ClientProxy.NetworkError", "server.clientproxy.network_error"},
		{r1.TypeOutdatedGlobalConf, "Server.ClientProxy.OutdatedGlobalConf", "server.clientproxy.global_conf_outdated"},
		{r1.TypeServerAccessDenied, "Server.ServerProxy.AccessDenied", "server.serverproxy.access_denied"},
		{r1.TypeInvalidClientID, "Client.InvalidClientIdentifier", "client.invalid_client_identifier"},
		{TypeMissingHeaderField, "Client.MissingHeaderField", "client.missing_header_field"},
		{TypeInconsistentResponse, "Server.ClientProxy.InconsistentResponse", "server.clientproxy.inconsistent_response"},
		{"Server.ServerProxy.ServiceFailed.Custom", "Server.ServerProxy.ServiceFailed.Custom", "Server.ServerProxy.ServiceFailed.Custom"},
	} {
		if got := FaultCode(c.typ, SpellingCamel); got != c.camel {
			t.Errorf("FaultCode(%s, camel) = %s, want %s", c.typ, got, c.camel)
		}
		if got := FaultCode(c.typ, SpellingSnake); got != c.snake {
			t.Errorf("FaultCode(%s, snake) = %s, want %s", c.typ, got, c.snake)
		}
		if got := CanonicalCode(c.snake); got != c.camel {
			t.Errorf("CanonicalCode(%s) = %s, want %s", c.snake, got, c.camel)
		}
	}
	// Every r1 error type has a spelling of its own in the table: the
	// table and r1's list cannot drift apart silently.
	seen := map[string]string{}
	for typ, snake := range faultCodes {
		if strings.ToLower(snake) != snake || !strings.HasPrefix(snake, strings.ToLower(strings.SplitN(typ, ".", 2)[0])) {
			t.Errorf("%s spelled %s", typ, snake)
		}
		if other, dup := seen[snake]; dup {
			t.Errorf("%s and %s are both spelled %s", typ, other, snake)
		}
		seen[snake] = typ
	}
	for typ := range faultCodes {
		if strings.HasPrefix(typ, "Client.") || strings.HasPrefix(typ, "Server.") {
			continue
		}
		t.Errorf("fault code %s is neither Client.* nor Server.*", typ)
	}
}

func TestFaultRenderAndParse(t *testing.T) {
	e := r1.Wrap(errorString("disk full at /var/lib/x"), r1.TypeServerLoggingFailed, "the message could not be logged <now>")
	for _, sp := range []Spelling{SpellingCamel, SpellingSnake} {
		f := NewFault(e, "ex-42", sp)
		b := f.Marshal()
		if strings.Contains(string(b), "disk full") {
			t.Fatalf("the internal cause reached the fault: %s", b)
		}
		got, err := ParseFault(b, Limits{})
		if err != nil {
			t.Fatalf("spelling %d: %v\n%s", sp, err, b)
		}
		if *got != *f {
			t.Errorf("spelling %d: parsed %+v, want %+v", sp, got, f)
		}
		if CanonicalCode(got.Code) != r1.TypeServerLoggingFailed {
			t.Errorf("canonical code of %s = %s", got.Code, CanonicalCode(got.Code))
		}
	}
	if got := FaultCode(e.Type, SpellingSnake); got != "server.serverproxy.logging_failed" {
		t.Errorf("snake = %s", got)
	}

	w := httptest.NewRecorder()
	WriteFault(w, NewFault(e, "ex-42", SpellingCamel))
	if w.Code != FaultStatus || w.Header().Get("Content-Type") != ContentTypeSOAP {
		t.Errorf("WriteFault: %d %s", w.Code, w.Header().Get("Content-Type"))
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

func TestParseProviderFault(t *testing.T) {
	// A provider's own fault: another prefix, a header-less envelope, a
	// structured detail that is not X-Road's.
	b := []byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault>
<faultcode>s:Server</faultcode><faultstring xml:lang="en">Company not found.</faultstring>
<detail><e:Errors xmlns:e="urn:x"><e:Code>42</e:Code></e:Errors></detail></s:Fault></s:Body></s:Envelope>`)
	env, err := Parse(b, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if env.Fault == nil || env.Fault.Code != "s:Server" || env.Fault.String != "Company not found." || !env.Fault.HasDetail {
		t.Fatalf("fault = %+v", env.Fault)
	}
	if CanonicalCode(env.Fault.Code) != "Server" {
		t.Errorf("canonical = %s", CanonicalCode(env.Fault.Code))
	}
	// Not a fault.
	if _, err := ParseFault([]byte(request), Limits{}); err == nil {
		t.Error("a request parsed as a fault")
	}
	// A fault without faultstring is malformed.
	bad := strings.Replace(string(b), `<faultstring xml:lang="en">Company not found.</faultstring>`, "", 1)
	if _, err := Parse([]byte(bad), Limits{}); err == nil {
		t.Error("a fault without faultstring accepted")
	}
}
