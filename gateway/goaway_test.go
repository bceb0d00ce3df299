package gateway_test

import (
	"bytes"
	"net/http"
	"strings"
	"testing"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

// A streamed request that the provider refuses before reading its body is
// answered and its stream reset while the consumer still sends the body;
// the trailer that follows reaches Go's HTTP/2 server on a stream it has
// forgotten, and it ends the whole connection with GOAWAY (PROTOCOL_ERROR,
// golang/go#58286). A request held whole that was sent on that connection
// in the meantime, and that the GOAWAY says was never taken up, is sent
// again on a new one rather than lost as a network error.
func TestHeldRequestSurvivesGoAway(t *testing.T) {
	w := startWorld(t, sandbox.Options{Limits: gateway.Limits{MaxBodyBytes: 1 << 20, MaxHeaderBytes: 8 << 10}, PeerProtocol: gateway.PeerHTTP2})
	upload := bytes.Repeat([]byte("x"), 1_000_000) // well past what a refusal drains
	for i := range 25 {
		// Refused before its body is read: the service is not offered.
		resp, body := w.do(t, call{method: http.MethodPost, path: "VN/GOV/MOF/business-registry/nothing/1", body: bytes.NewReader(upload)})
		wantError(t, resp, body, 500, r1.TypeServerUnknownSvc)
		resp, body = w.do(t, call{method: http.MethodPost, path: filings, body: strings.NewReader("statement")})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("round %d: status = %d, want 201; body %s", i, resp.StatusCode, body)
		}
	}
}
