package gateway

import (
	"net/http/httptest"
	"testing"

	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/soap"
)

// TestSOAPFaultSpellingPerGateway: a gateway configured with
// soap.fault_spelling "snake" writes X-Road 7.8's fault codes, the
// default PR-MESS's CamelCase; the detail is the exchange id either way.
func TestSOAPFaultSpellingPerGateway(t *testing.T) {
	for _, c := range []struct {
		spelling, want string
	}{
		{"", "Server.ServerProxy.AccessDenied"},
		{FaultSpellingCamel, "Server.ServerProxy.AccessDenied"},
		{FaultSpellingSnake, "server.serverproxy.access_denied"},
	} {
		cfg := &Config{}
		cfg.SOAP.FaultSpelling = c.spelling
		g := &Gateway{cfg: cfg}
		rec := httptest.NewRecorder()
		g.writeFault(rec, r1.New(r1.TypeServerAccessDenied, "no access right"), "exchange-7")
		f, err := soap.ParseFault(rec.Body.Bytes(), soap.Limits{})
		if err != nil || f.Code != c.want || f.Detail != "exchange-7" || rec.Code != soap.FaultStatus {
			t.Errorf("spelling %q: status %d, fault %+v (%v), want code %s", c.spelling, rec.Code, f, err, c.want)
		}
	}
}
