package gateway_test

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/authority"
	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/pki"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

const (
	hcmcClient = "VN/GOV/HCMC/one-stop"
	companies  = "VN/GOV/MOF/business-registry/companies"
	filings    = "VN/GOV/MOF/business-registry/filings"
	persons    = "VN/GOV/MPS/residents/persons"
)

// world is the sandbox with eyes on its backends and a hand on the HCMC
// gateway's connections to its peers.
type world struct {
	sb      *sandbox.Sandbox
	hits    atomic.Int64
	mu      sync.Mutex
	lastHdr http.Header
	gw      map[string]*gateway.Gateway
	url     string // HCMC gateway's client side
	tamper  atomic.Pointer[tamper]
	answer  atomic.Pointer[http.HandlerFunc] // when set, answers in place of the services
	proto   atomic.Pointer[string]           // of the last gateway-to-gateway response
	skews   sync.Map                         // gateway id → *atomic.Int64, its clock's shift
}

// skew returns the shift of gateway id's clock.
func (w *world) skew(id string) *atomic.Int64 {
	v, _ := w.skews.LoadOrStore(id, new(atomic.Int64))
	return v.(*atomic.Int64)
}

// setClock moves gateway id's clock by d from the real time.
func (w *world) setClock(id string, d time.Duration) { w.skew(id).Store(int64(d)) }

// tamper changes what passes between the HCMC and a provider gateway,
// after the sending gateway has signed it.
type tamper struct {
	req  func(*http.Request)
	resp func(*http.Response)
}

type tamperRT struct {
	w    *world
	next http.RoundTripper
}

func (t tamperRT) RoundTrip(r *http.Request) (*http.Response, error) {
	tp := t.w.tamper.Load()
	if tp != nil && tp.req != nil {
		tp.req(r)
	}
	resp, err := t.next.RoundTrip(r)
	if err == nil {
		p := resp.Proto
		t.w.proto.Store(&p)
	}
	if err == nil && tp != nil && tp.resp != nil {
		tp.resp(resp)
	}
	return resp, err
}

func startWorld(t *testing.T, o sandbox.Options) *world {
	t.Helper()
	w := &world{gw: map[string]*gateway.Gateway{}}
	o.Dir = filepath.Join(t.TempDir(), "sandbox")
	o.WrapBackends = func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			w.hits.Add(1)
			w.mu.Lock()
			w.lastHdr = r.Header.Clone()
			w.mu.Unlock()
			if a := w.answer.Load(); a != nil {
				(*a)(rw, r)
				return
			}
			h.ServeHTTP(rw, r)
		})
	}
	given := o.Gateway
	o.Gateway = func(id string) gateway.Options {
		var g gateway.Options
		if given != nil {
			g = given(id)
		}
		skew := w.skew(id)
		g.Clock = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		if id == "VN/GOV/HCMC/gw1" {
			g.PeerTransport = func(next http.RoundTripper) http.RoundTripper { return tamperRT{w: w, next: next} }
		}
		return g
	}
	sb, err := sandbox.Start(t.Context(), o)
	if err != nil {
		t.Fatalf("start sandbox: %v", err)
	}
	t.Cleanup(func() {
		if err := sb.Close(); err != nil {
			t.Errorf("close sandbox: %v", err)
		}
	})
	w.sb = sb
	for _, g := range sb.Gateways {
		w.gw[g.ID().String()] = g
	}
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			w.url = g.ClientURL
		}
	}
	return w
}

// purposeHdr declares the purpose HCMC's agreement for resident records
// allows.
var purposeHdr = map[string]string{r1.HeaderPurpose: "administrative-procedure"}

type call struct {
	method string
	path   string // after /r1/
	header map[string]string
	body   io.Reader
}

func (w *world) do(t *testing.T, c call) (*http.Response, []byte) {
	t.Helper()
	if c.method == "" {
		c.method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(t.Context(), c.method, w.url+"/r1/"+c.path, c.body)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.header[r1.HeaderClient]; !ok {
		req.Header.Set(r1.HeaderClient, hcmcClient)
	}
	for k, v := range c.header {
		if v != "" {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", c.method, c.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", c.method, c.path, err)
	}
	return resp, b
}

// wantError checks an r1 error answer.
func wantError(t *testing.T, resp *http.Response, body []byte, status int, typ string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Errorf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if got := resp.Header.Get(r1.HeaderError); got != typ {
		t.Errorf("X-Road-Error = %q, want %q", got, typ)
	}
	var e r1.Body
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	if e.Type != typ || e.Message == "" || e.Detail == "" {
		t.Errorf("error body = %+v, want type %s with a message and a detail", e, typ)
	}
}

// TestExchange runs over each protocol a gateway may speak to another:
// HTTP/1.1 (the default), and HTTP/2, which gateways of earlier versions
// speak to a new one.
func TestExchange(t *testing.T) {
	for proto, want := range map[string]string{"": "HTTP/1.1", gateway.PeerHTTP2: "HTTP/2.0"} {
		name := proto
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) { testExchange(t, proto, want) })
	}
}

func testExchange(t *testing.T, proto, wantProto string) {
	w := startWorld(t, sandbox.Options{Limits: gateway.Limits{MaxBodyBytes: 1 << 20, MaxHeaderBytes: 8 << 10}, PeerProtocol: proto})

	t.Run("company", func(t *testing.T) {
		before := w.hits.Load()
		resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{
			r1.HeaderID: "case-42", r1.HeaderUserID: "VN12345", r1.HeaderIssue: "HCMC-2026-0001",
		}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status = %d, want 200; body %s", resp.StatusCode, body)
		}
		var c struct{ Name string }
		if err := json.Unmarshal(body, &c); err != nil || c.Name != "Viettel Group" {
			t.Errorf("body = %s, want the company", body)
		}
		for h, want := range map[string]string{
			r1.HeaderClient:  hcmcClient,
			r1.HeaderService: companies,
			r1.HeaderID:      "case-42",
		} {
			if got := resp.Header.Get(h); got != want {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if resp.Header.Get(r1.HeaderRequestID) == "" {
			t.Error("X-Road-Request-Id missing")
		}
		if h, err := base64.StdEncoding.DecodeString(resp.Header.Get(r1.HeaderRequestHash)); err != nil || len(h) != 64 {
			t.Errorf("X-Road-Request-Hash = %q, want base64 of a SHA-512", resp.Header.Get(r1.HeaderRequestHash))
		}
		for k := range resp.Header {
			if strings.HasPrefix(k, "Sampan-") {
				t.Errorf("gateway header %s leaked to the client", k)
			}
		}
		if got := w.hits.Load() - before; got != 1 {
			t.Errorf("backend calls = %d, want 1", got)
		}
		if p := w.proto.Load(); p == nil || *p != wantProto {
			t.Errorf("gateways configured with %q spoke %v, want %s", proto, p, wantProto)
		}
		w.mu.Lock()
		hdr := w.lastHdr
		w.mu.Unlock()
		for h, want := range map[string]string{
			r1.HeaderClient: hcmcClient, r1.HeaderID: "case-42", r1.HeaderUserID: "VN12345", r1.HeaderIssue: "HCMC-2026-0001",
		} {
			if got := hdr.Get(h); got != want {
				t.Errorf("backend got %s = %q, want %q", h, got, want)
			}
		}
		for k := range hdr {
			if strings.HasPrefix(k, "Sampan-") {
				t.Errorf("gateway header %s leaked to the backend", k)
			}
		}
	})

	t.Run("generated id", func(t *testing.T) {
		resp, _ := w.do(t, call{path: companies + "/0100109106"})
		if len(resp.Header.Get(r1.HeaderID)) != 36 {
			t.Errorf("X-Road-Id = %q, want a generated UUID", resp.Header.Get(r1.HeaderID))
		}
	})

	t.Run("headers near the limit", func(t *testing.T) {
		// Within the limit at the consumer's gateway (the client's other
		// headers take under 400 bytes), so within it at the provider's:
		// the gateways' own headers (signer certificate, signature) do
		// not count against the client's limit.
		limit := 8 << 10 // as the world above was started
		note := map[string]string{"X-Note": strings.Repeat("n", limit-400)}
		for _, c := range []call{{path: companies + "/0100109106", header: note}, {method: http.MethodPost, path: filings, header: note, body: strings.NewReader("statement")}} {
			if resp, body := w.do(t, c); resp.StatusCode/100 != 2 {
				t.Errorf("%s %s: status %d, %s", c.method, c.path, resp.StatusCode, body)
			}
		}
	})

	t.Run("upload", func(t *testing.T) {
		data := bytes.Repeat([]byte("annual statement "), 5000)
		resp, body := w.do(t, call{method: http.MethodPost, path: filings, body: bytes.NewReader(data)})
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("status = %d; body %s", resp.StatusCode, body)
		}
		sum := sha256.Sum256(data)
		var f struct {
			Bytes  int64
			SHA256 string
		}
		json.Unmarshal(body, &f)
		if f.Bytes != int64(len(data)) || f.SHA256 != hex.EncodeToString(sum[:]) {
			t.Errorf("backend received %d bytes %s, want %d %x", f.Bytes, f.SHA256, len(data), sum)
		}
	})

	refusals := []struct {
		name   string
		call   call
		status int
		typ    string
	}{
		{"missing client", call{path: companies, header: map[string]string{r1.HeaderClient: ""}}, 400, r1.TypeInvalidClientID},
		{"malformed client", call{path: companies, header: map[string]string{r1.HeaderClient: "VN/GOV"}}, 400, r1.TypeInvalidClientID},
		{"client is a member", call{path: companies, header: map[string]string{r1.HeaderClient: "VN/GOV/HCMC"}}, 400, r1.TypeInvalidClientID},
		{"client part with a bad character", call{path: companies, header: map[string]string{r1.HeaderClient: "VN/GOV/HCMC/one%3Bstop"}}, 400, r1.TypeInvalidClientID},
		{"unregistered client", call{path: companies, header: map[string]string{r1.HeaderClient: "VN/GOV/HCMC/nobody"}}, 500, r1.TypeUnknownClient},
		{"forged client", call{path: companies, header: map[string]string{r1.HeaderClient: "VN/GOV/MPS/residents"}}, 500, r1.TypeClientNotHosted},
		{"malformed service", call{path: "VN/GOV/MOF"}, 400, r1.TypeInvalidServiceID},
		{"unknown provider", call{path: "VN/GOV/MOF/nowhere/companies"}, 500, r1.TypeUnknownService},
		{"unknown service", call{path: "VN/GOV/MOF/business-registry/nothing/1"}, 500, r1.TypeServerUnknownSvc},
		{"no access right to the endpoint", call{path: persons, header: purposeHdr}, 500, r1.TypeServerAccessDenied},
		{"no access right to the method", call{method: http.MethodDelete, path: persons + "/079200001234", header: purposeHdr}, 500, r1.TypeServerAccessDenied},
		{"dot segment", call{path: persons + "/../../companies/0100109106"}, 400, r1.TypeInvalidRequest},
		{"encoded dot segment", call{path: persons + "/%2E%2e/x"}, 400, r1.TypeInvalidRequest},
		{"encoded slash", call{path: persons + "/079200001234%2F..%2Fx"}, 400, r1.TypeInvalidRequest},
		{"uri too long", call{path: companies + "/" + strings.Repeat("a", 2000)}, 400, r1.TypeURITooLong},
		{"headers too large", call{path: companies, header: map[string]string{"X-Note": strings.Repeat("n", 9<<10)}}, 400, r1.TypeHeadersTooLarge},
		{"body too large", call{method: http.MethodPost, path: filings, body: bytes.NewReader(make([]byte, 1<<20+1))}, 400, r1.TypeRequestTooLarge},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			before := w.hits.Load()
			resp, body := w.do(t, tc.call)
			wantError(t, resp, body, tc.status, tc.typ)
			if got := w.hits.Load() - before; got != 0 {
				t.Errorf("backend saw %d requests, want none", got)
			}
		})
	}

	t.Run("streamed body too large", func(t *testing.T) {
		// No Content-Length: the limit is found while streaming.
		resp, body := w.do(t, call{method: http.MethodPost, path: filings, body: io.LimitReader(zeros{}, 2<<20)})
		wantError(t, resp, body, 400, r1.TypeRequestTooLarge)
	})

	t.Run("expired configuration at the consumer", func(t *testing.T) {
		w.setClock("VN/GOV/HCMC/gw1", 11*time.Minute)
		defer w.setClock("VN/GOV/HCMC/gw1", 0)
		// The streamed request before may still reach the backend (the
		// provider streams to it before the consumer cuts the body off).
		w.settle()
		before := w.hits.Load()
		resp, body := w.do(t, call{path: companies + "/0100109106"})
		wantError(t, resp, body, 500, r1.TypeOutdatedGlobalConf)
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
		if w.gw["VN/GOV/HCMC/gw1"].Ready() {
			t.Error("Ready() with an expired configuration")
		}
	})

	t.Run("expired configuration at the provider", func(t *testing.T) {
		w.setClock("VN/GOV/MOF/gw1", 11*time.Minute)
		defer w.setClock("VN/GOV/MOF/gw1", 0)
		before := w.hits.Load()
		resp, body := w.do(t, call{path: companies + "/0100109106"})
		wantError(t, resp, body, 500, r1.TypeServerOutdatedConf)
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})

	// Requests up to 64 KiB are signed before they are sent (the
	// signature in a header); larger ones as they stream (in a trailer),
	// and reach the service before their signature is checked, which
	// then cuts them off before their end.
	big := strings.Repeat("annual statement ", 5000)
	tampered := []struct {
		name   string
		method string
		path   string
		body   string
		tp     tamper
		status int
		typ    string
		hits   int64
	}{
		{"request body", http.MethodPost, filings, "statement", tamper{req: flipRequestBody}, 500, r1.TypeServerSignature, 0},
		{"request header", http.MethodGet, companies + "/0100109106", "", tamper{req: func(r *http.Request) { r.Header.Set(r1.HeaderID, "another-id") }}, 500, r1.TypeServerSignature, 0},
		{"request path", http.MethodGet, companies + "/0100109106", "", tamper{req: func(r *http.Request) { r.URL.Path = strings.Replace(r.URL.Path, "0100109106", "0300588569", 1) }}, 500, r1.TypeServerSignature, 0},
		{"request signature", http.MethodPost, filings, "statement", tamper{req: func(r *http.Request) { flipHeaderSig(r.Header) }}, 500, r1.TypeServerSignature, 0},
		{"request signature, streamed", http.MethodPost, filings, big, tamper{req: func(r *http.Request) { r.Body = &trailerFlip{rc: r.Body, tr: r.Trailer} }}, 500, r1.TypeServerSignature, 1},
		{"request signed twice", http.MethodPost, filings, big, tamper{req: func(r *http.Request) { r.Header.Set("Sampan-Signature", "x") }}, 500, r1.TypeServerSignature, 1},
		{"request signature removed", http.MethodPost, filings, "statement", tamper{req: func(r *http.Request) { r.Header.Del("Sampan-Signature") }}, 500, r1.TypeServerSignature, 0},
		{"response body", http.MethodGet, companies + "/0100109106", "", tamper{resp: func(r *http.Response) { r.Body = flipFirst(r.Body) }}, 500, r1.TypeClientSignature, 1},
		{"response status", http.MethodGet, companies + "/0100109106", "", tamper{resp: func(r *http.Response) { r.StatusCode = http.StatusNotFound }}, 500, r1.TypeClientSignature, 1},
		{"response signature", http.MethodGet, companies + "/0100109106", "", tamper{resp: func(r *http.Response) { flipHeaderSig(r.Header) }}, 500, r1.TypeClientSignature, 1},
		{"response signed twice", http.MethodGet, companies + "/0100109106", "", tamper{resp: func(r *http.Response) {
			if r.Trailer == nil {
				r.Trailer = http.Header{}
			}
			r.Trailer.Set("Sampan-Signature", r.Header.Get("Sampan-Signature"))
		}}, 500, r1.TypeClientSignature, 1},
	}
	for _, tc := range tampered {
		t.Run("tampered "+tc.name, func(t *testing.T) {
			w.tamper.Store(&tc.tp)
			defer w.tamper.Store(nil)
			before := w.hits.Load()
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			resp, b := w.do(t, call{method: tc.method, path: tc.path, body: body})
			wantError(t, resp, b, tc.status, tc.typ)
			// A streamed request reaches the backend before its trailer
			// is checked; the refusal can reach the client before the
			// backend has dispatched it. Wait for that request, so that it
			// is not counted in the next case.
			for deadline := time.Now().Add(5 * time.Second); w.hits.Load()-before < tc.hits && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			if got := w.hits.Load() - before; got != tc.hits {
				t.Errorf("backend saw %d requests, want %d", got, tc.hits)
			}
		})
	}

	t.Run("service's own X-Road headers are not forwarded", func(t *testing.T) {
		// A service cannot speak for the gateways: its X-Road headers
		// are dropped, its other headers reach the client, signed.
		answer := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
			rw.Header().Set("X-Road-Id", "forged-id")
			rw.Header().Set("X-Road-Error", "Server.Forged")
			rw.Header().Set("X-Case-Officer", "nguyen")
			rw.Write([]byte(`{"ok":true}`))
		})
		w.answer.Store(&answer)
		defer w.answer.Store(nil)
		// Between the gateways too: the provider's gateway neither
		// signs nor sends them.
		var wire http.Header
		w.tamper.Store(&tamper{resp: func(r *http.Response) { wire = r.Header.Clone() }})
		defer w.tamper.Store(nil)
		resp, b := w.do(t, call{path: companies + "/0100109106"})
		if resp.StatusCode != 200 || string(b) != `{"ok":true}` {
			t.Fatalf("%d %s", resp.StatusCode, b)
		}
		if signed := wire.Get("Sampan-Signed-Headers"); strings.Contains(signed, "x-road-") || !strings.Contains(signed, "x-case-officer") {
			t.Errorf("provider signed %q", signed)
		}
		if wire.Get(r1.HeaderError) != "" || wire.Get(r1.HeaderID) == "forged-id" {
			t.Errorf("provider sent the service's X-Road headers: %v", wire)
		}
		if got := resp.Header.Get(r1.HeaderID); got == "forged-id" || got == "" {
			t.Errorf("X-Road-Id = %q, want the exchange's own", got)
		}
		if got := resp.Header.Get(r1.HeaderError); got != "" {
			t.Errorf("X-Road-Error = %q reached the client", got)
		}
		if got := resp.Header.Get("X-Case-Officer"); got != "nguyen" {
			t.Errorf("X-Case-Officer = %q, want the service's", got)
		}
	})

	t.Run("answer signed with another member's certificate", func(t *testing.T) {
		// MOF's signing certificate, valid and already checked by HCMC's
		// gateway, must not vouch for an answer from MPS: the member it
		// names is checked on every use, the first and the ones after.
		var mofCert atomic.Value
		w.tamper.Store(&tamper{resp: func(r *http.Response) { mofCert.Store(r.Header.Get("Sampan-Signer-Cert")) }})
		resp, b := w.do(t, call{path: companies + "/0100109106"})
		w.tamper.Store(nil)
		if resp.StatusCode != 200 || mofCert.Load() == "" {
			t.Fatalf("call to MOF: %d %s", resp.StatusCode, b)
		}
		w.tamper.Store(&tamper{resp: func(r *http.Response) { r.Header.Set("Sampan-Signer-Cert", mofCert.Load().(string)) }})
		defer w.tamper.Store(nil)
		for range 2 {
			resp, b := w.do(t, call{path: persons + "/079200001234", header: purposeHdr})
			wantError(t, resp, b, 500, r1.TypeClientSignature)
			if !strings.Contains(string(b), "signed by VN/GOV/MOF") {
				t.Errorf("refusal does not say who signed: %s", b)
			}
		}
	})

	t.Run("peer certificate not registered", func(t *testing.T) {
		// The authority now lists another certificate for MOF's gateway:
		// the consumer must refuse the one MOF's gateway presents.
		api, mofGW := w.adminAPI(t), w.manifestGateway("VN/GOV/MOF/gw1")
		conf := w.current(t, api)
		var orig authority.GatewayInput
		for _, g := range conf.Gateways {
			if g.ID.String() == mofGW.ID {
				orig = authority.GatewayInput{ID: g.ID, Address: g.Address, AuthFP: g.AuthFP, Clients: g.Clients}
			}
		}
		// A second certificate for MOF's gateway, as after a key change
		// the gateway has not yet been switched to.
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := pki.NewCSR(key, mofGW.ID)
		issued, err := api.Issue(t.Context(), authority.IssueInput{Profile: "auth", Subject: mofGW.ID, CSR: string(csr), Hosts: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		other := orig
		other.AuthFP = issued.SHA256
		if err := api.PutGateway(t.Context(), other); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		before := w.hits.Load()
		resp, body := w.do(t, call{path: companies + "/0100109106"})
		wantError(t, resp, body, 500, r1.TypeSSLAuthFailed)
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
		if err := api.PutGateway(t.Context(), orig); err != nil {
			t.Fatal(err)
		}
		w.refresh(t)
		if resp, body := w.do(t, call{path: companies + "/0100109106"}); resp.StatusCode != 200 {
			t.Errorf("after restoring the registration: status %d, body %s", resp.StatusCode, body)
		}
	})

	t.Run("unregistered gateway calls a provider", func(t *testing.T) {
		// A certificate from the instance CA that no registered gateway
		// holds is refused in the handshake.
		api := w.adminAPI(t)
		key, err := pki.GenerateKey(pki.ECDSAP256)
		if err != nil {
			t.Fatal(err)
		}
		csr, _ := pki.NewCSR(key, "VN/GOV/HCMC/rogue")
		// Registered, certified, but its certificate never bound to the
		// registration.
		rogue, _ := ident.ParseGateway("VN/GOV/HCMC/rogue")
		if err := api.PutGateway(t.Context(), authority.GatewayInput{ID: rogue, Address: "127.0.0.1:1"}); err != nil {
			t.Fatal(err)
		}
		issued, err := api.Issue(t.Context(), authority.IssueInput{Profile: "auth", Subject: "VN/GOV/HCMC/rogue", CSR: string(csr), Hosts: []string{"127.0.0.1"}})
		if err != nil {
			t.Fatal(err)
		}
		cert, _ := pki.ParseCertPEM([]byte(issued.Certificate))
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
			InsecureSkipVerify: true,
			Certificates:       []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key}},
		}}}
		before := w.hits.Load()
		mof := w.manifestGateway("VN/GOV/MOF/gw1")
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, "https://"+mof.PeerAddr+"/x/"+companies+"/0100109106", nil)
		req.Header.Set(r1.HeaderClient, hcmcClient)
		resp, err := hc.Do(req)
		if err == nil {
			resp.Body.Close()
			t.Fatalf("unregistered gateway got an answer: %s", resp.Status)
		}
		if !strings.Contains(err.Error(), "tls") {
			t.Errorf("error = %v, want a TLS refusal", err)
		}
		if w.hits.Load() != before {
			t.Error("backend was called")
		}
	})

	t.Run("TLS 1.2 refused between gateways", func(t *testing.T) {
		// With a registered gateway's own certificate, so that nothing
		// but the protocol version is refused.
		mof := w.manifestGateway("VN/GOV/MOF/gw1")
		cert := w.gatewayTLS(t, "VN/GOV/HCMC/gw1")
		dial := func(v uint16) error {
			c, err := tls.Dial("tcp", mof.PeerAddr, &tls.Config{InsecureSkipVerify: true, MinVersion: v, MaxVersion: v, Certificates: []tls.Certificate{cert}})
			if err != nil {
				return err
			}
			defer c.Close()
			// The server judges the client's certificate after its own
			// flight: a refusal arrives on the first read.
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if _, err := c.Read(make([]byte, 1)); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			return nil
		}
		if err := dial(tls.VersionTLS13); err != nil {
			t.Fatalf("TLS 1.3 with a registered certificate: %v", err)
		}
		err := dial(tls.VersionTLS12)
		if err == nil {
			t.Fatal("TLS 1.2 handshake with a registered certificate succeeded")
		}
		if !strings.Contains(err.Error(), "protocol version") {
			t.Errorf("TLS 1.2: %v, want a protocol version refusal", err)
		}
	})
}

// settle waits until the backend has seen no new request for 200 ms.
func (w *world) settle() {
	for n := w.hits.Load(); ; {
		time.Sleep(200 * time.Millisecond)
		m := w.hits.Load()
		if m == n {
			return
		}
		n = m
	}
}

func (w *world) manifestGateway(id string) sandbox.ManifestGateway {
	for _, g := range w.sb.Manifest.Gateways {
		if g.ID == id {
			return g
		}
	}
	panic("no gateway " + id)
}

func (w *world) adminAPI(t *testing.T) *authority.Client {
	t.Helper()
	a := w.sb.Manifest.Authorities[0]
	tok, err := os.ReadFile(a.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	return authority.NewClient(a.URL, strings.TrimSpace(string(tok)), w.sb.Authorities[0].TLSCACert())
}

// current is the configuration the authority publishes now.
func (w *world) current(t *testing.T, _ *authority.Client) struct {
	Gateways []authority.GatewayInput
} {
	var out struct{ Gateways []authority.GatewayInput }
	for _, g := range w.sb.Authorities[0].Current().Gateways {
		out.Gateways = append(out.Gateways, authority.GatewayInput{ID: g.ID, Address: g.Address, AuthFP: g.AuthFP, Clients: g.Clients})
	}
	return out
}

// refresh makes every gateway download the configuration now.
func (w *world) refresh(t *testing.T) {
	t.Helper()
	for _, g := range w.sb.Gateways {
		if err := g.RefreshConf(t.Context()); err != nil {
			t.Fatalf("refresh %s: %v", g.ID(), err)
		}
	}
}

// flipFirst returns a body whose first byte is changed.
func flipFirst(rc io.ReadCloser) io.ReadCloser {
	first := true
	return readCloser{Reader: readerFunc(func(p []byte) (int, error) {
		n, err := rc.Read(p)
		if n > 0 && first {
			p[0] ^= 0x20
			first = false
		}
		return n, err
	}), Closer: rc}
}

// flipRequestBody changes the first byte of a request's body, and of every
// copy the transport sends again.
func flipRequestBody(r *http.Request) {
	r.Body = flipFirst(r.Body)
	if get := r.GetBody; get != nil {
		r.GetBody = func() (io.ReadCloser, error) {
			rc, err := get()
			if err != nil {
				return nil, err
			}
			return flipFirst(rc), nil
		}
	}
}

// flipHeaderSig changes the signature a message carries in its headers.
func flipHeaderSig(h http.Header) {
	h.Set("Sampan-Signature", flipSig(h.Get("Sampan-Signature")))
}

// flipSig changes one character of a signature's final part.
func flipSig(sig string) string {
	if sig == "" {
		return ""
	}
	b := []byte(sig)
	i := len(b) - 5
	b[i] ^= 0x01
	if b[i] == '.' || b[i] == '-' {
		b[i] = 'A'
	}
	return string(b)
}

// trailerFlip changes the signature in the trailer once the body is read.
type trailerFlip struct {
	rc io.ReadCloser
	tr http.Header
}

func (f *trailerFlip) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	if err == io.EOF {
		if sig := f.tr.Get("Sampan-Signature"); sig != "" {
			f.tr.Set("Sampan-Signature", flipSig(sig))
		}
	}
	return n, err
}

func (f *trailerFlip) Close() error { return f.rc.Close() }

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

type readCloser struct {
	io.Reader
	io.Closer
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
