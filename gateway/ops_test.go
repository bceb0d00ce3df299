package gateway_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
	"github.com/sampan-exchange/sampan/sandbox"
)

const mofGW = "VN/GOV/MOF/gw1"

// opsGet GETs path from an operations listener, with a bearer token when
// one is given.
func opsGet(t *testing.T, base, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s%s: %v", base, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s%s: read body: %v", base, path, err)
	}
	return resp, b
}

// scrape reads a gateway's metrics from its operations listener and
// returns them with the size of the text.
func scrape(t *testing.T, base, token string) (map[string]*dto.MetricFamily, int) {
	t.Helper()
	resp, body := opsGet(t, base, "/metrics", token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: status %d, %s", base, resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", base, err)
	}
	return mfs, len(body)
}

// matching returns the series of family name whose labels include want.
func matching(mfs map[string]*dto.MetricFamily, name string, want map[string]string) []*dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for k, v := range want {
			ok = ok && have[k] == v // an absent label reads as ""
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}

// counter sums the counters of name whose labels include want.
func counter(mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	var n float64
	for _, m := range matching(mfs, name, want) {
		n += m.GetCounter().GetValue()
	}
	return n
}

// histCount sums the sample counts of the histograms of name whose labels
// include want.
func histCount(mfs map[string]*dto.MetricFamily, name string, want map[string]string) uint64 {
	var n uint64
	for _, m := range matching(mfs, name, want) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// series is one sampan_gateway_exchanges_total series.
type series struct{ side, service, client, class, errType string }

func (s series) String() string {
	return fmt.Sprintf("{side=%s service=%s client=%s status_class=%s error_type=%q}", s.side, s.service, s.client, s.class, s.errType)
}

// exchangeSeries reads sampan_gateway_exchanges_total.
func exchangeSeries(mfs map[string]*dto.MetricFamily) map[series]float64 {
	out := map[series]float64{}
	mf := mfs["sampan_gateway_exchanges_total"]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		l := map[string]string{}
		for _, p := range m.GetLabel() {
			l[p.GetName()] = p.GetValue()
		}
		out[series{l["side"], l["service"], l["client"], l["status_class"], l["error_type"]}] += m.GetCounter().GetValue()
	}
	return out
}

// sideWant is what one side of an exchange comes to: the status it
// answers, the r1 error type ("" on success), and the service and client
// labels its metrics carry.
type sideWant struct {
	status          int
	errType         string
	service, client string
	decision        string   // policy decision counted: "allow", "deny", "" for none
	rules           []string // the rules of a refusal
}

func (s sideWant) series(side string) series {
	return series{side, s.service, s.client, fmt.Sprintf("%dxx", s.status/100), s.errType}
}

// opsExchange is one exchange sent through the sandbox, and what it
// comes to at the consumer's gateway and, when the request gets there,
// at the provider's.
type opsExchange struct {
	name         string
	id           string // X-Road-Id
	trace        string // traceparent
	consumer     string // the consumer's gateway
	provider     string // the provider's gateway; "" when the request never leaves the consumer's
	routed       string // the gateway the consumer's gateway chose, when not provider
	client       string // X-Road-Client as sent
	service      string // as the records name it
	method, path string
	header       map[string]string
	body         []byte
	tamper       *tamper
	cons, prov   sideWant
}

func traceOf(i int) string {
	return fmt.Sprintf("00-%032x-%016x-01", 0xabc000+i, 0xdef000+i)
}

// send sends ex through its consumer's gateway and checks the answer.
func (w *world) send(t *testing.T, ex *opsExchange) *http.Response {
	t.Helper()
	base, hc := w.clientOf(t, ex.consumer, ex.client)
	method := ex.method
	if method == "" {
		method = http.MethodGet
	}
	var body io.Reader
	if ex.body != nil {
		body = bytes.NewReader(ex.body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, base+"/r1/"+ex.path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(r1.HeaderClient, ex.client)
	req.Header.Set(r1.HeaderID, ex.id)
	req.Header.Set("Traceparent", ex.trace)
	for k, v := range ex.header {
		req.Header.Set(k, v)
	}
	if ex.tamper != nil {
		w.tamper.Store(ex.tamper)
		defer w.tamper.Store(nil)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", ex.name, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != ex.cons.status || resp.Header.Get(r1.HeaderError) != ex.cons.errType {
		t.Errorf("%s: status %d %q, want %d %q; body %s", ex.name, resp.StatusCode, resp.Header.Get(r1.HeaderError), ex.cons.status, ex.cons.errType, b)
	}
	return resp
}

// runExchanges sends one exchange of each kind the metrics and the
// monitoring records tell apart: successes (a GET and a POST with a body
// of known size), a refusal for want of an access right, policy
// refusals by the consumer's and by the provider's gateway, a request
// tampered with between the gateways, an unregistered client, and a
// failure of the consumer's message log (last: the log stays broken).
func runExchanges(t *testing.T, w *world, prefix string) []*opsExchange {
	t.Helper()
	ok := func(status int, svc, client, decision string) sideWant {
		return sideWant{status: status, service: svc, client: client, decision: decision}
	}
	refused := func(typ, svc, client, decision string, rules ...string) sideWant {
		return sideWant{status: 500, errType: typ, service: svc, client: client, decision: decision, rules: rules}
	}
	upload := bytes.Repeat([]byte("annual statement"), 200) // 3,200 bytes
	list := []*opsExchange{
		{name: "success", consumer: hcmcGW, provider: mofGW, client: hcmcClient, service: companies, path: companies + "/0100109106",
			cons: ok(200, companies, hcmcClient, "allow"), prov: ok(200, companies, hcmcClient, "allow")},
		{name: "upload", consumer: hcmcGW, provider: mofGW, client: hcmcClient, service: filings, method: http.MethodPost, path: filings, body: upload,
			cons: ok(201, filings, hcmcClient, "allow"), prov: ok(201, filings, hcmcClient, "allow")},
		{name: "no access right", consumer: hcmcGW, provider: mpsGW, client: hcmcClient, service: persons, path: persons, header: purposeHdr,
			cons: refused(r1.TypeServerAccessDenied, persons, hcmcClient, "allow"),
			prov: refused(r1.TypeServerAccessDenied, persons, hcmcClient, "")},
		{name: "policy denied at the consumer", consumer: hcmcGW, routed: mpsGW, client: hcmcClient, service: persons, path: persons + "/079200001234",
			cons: refused(r1.TypeClientPolicyDenied, persons, hcmcClient, "deny",
				"rule/vn-personal-domestic/purpose", "rule/vn-purpose-declared/purpose-declared")},
		{name: "policy denied at the provider", consumer: spfGW, provider: mpsGW, client: spfClient, service: persons, path: persons + "/079200001234",
			header: map[string]string{r1.HeaderPurpose: "scam-investigation"},
			cons:   refused(r1.TypeServerPolicyDenied, persons, spfClient, "allow"),
			prov: refused(r1.TypeServerPolicyDenied, persons, spfClient, "deny", "rule/vn-core-stays",
				"rule/vn-personal-export/agreement", "rule/vn-personal-export/purpose", "rule/vn-personal-export/reference:transfer-assessment")},
		{name: "bad signature", consumer: hcmcGW, provider: mofGW, client: hcmcClient, service: filings, method: http.MethodPost, path: filings, body: []byte("statement"),
			tamper: &tamper{req: func(r *http.Request) { r.Body = flipFirst(r.Body) }},
			cons:   refused(r1.TypeServerSignature, filings, hcmcClient, "allow"),
			prov:   refused(r1.TypeServerSignature, filings, hcmcClient, "allow")},
		{name: "unknown client", consumer: hcmcGW, client: "VN/GOV/HCMC/nobody", service: companies, path: companies + "/0100109106",
			cons: refused(r1.TypeUnknownClient, "other", "other", "")},
	}
	var done []*opsExchange
	for i, ex := range list {
		ex.id, ex.trace = fmt.Sprintf("%s-%d", prefix, i), traceOf(i)
		w.send(t, ex)
		done = append(done, ex)
	}

	// The consumer's record index loses its table: the exchange under
	// way when it does may still complete, the next is refused.
	breakIndex(t, filepath.Join(w.manifestGateway(hcmcGW).DataDir, "log"))
	for i := range 50 {
		ex := &opsExchange{name: "logging failure", id: fmt.Sprintf("%s-log-%d", prefix, i), trace: traceOf(100 + i),
			consumer: hcmcGW, provider: mofGW, client: hcmcClient, service: companies, path: companies + "/0100109106",
			cons: refused(r1.TypeClientLoggingFailed, companies, hcmcClient, "allow"), prov: ok(200, companies, hcmcClient, "allow")}
		base, hc := w.clientOf(t, ex.consumer, ex.client)
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+"/r1/"+ex.path, nil)
		req.Header.Set(r1.HeaderClient, ex.client)
		req.Header.Set(r1.HeaderID, ex.id)
		req.Header.Set("Traceparent", ex.trace)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done = append(done, ex)
		if resp.StatusCode == 200 {
			ex.name, ex.cons = "success before the log broke", ok(200, companies, hcmcClient, "allow")
			time.Sleep(100 * time.Millisecond)
			continue
		}
		wantError(t, resp, b, 500, r1.TypeClientLoggingFailed)
		return done
	}
	t.Fatal("the broken message log never refused an exchange")
	return nil
}

var consumerSteps = []string{"limits", "identify", "route", "decide", "sign", "send", "verify", "log", "answer"}
var providerSteps = []string{"authenticate", "limits", "identify", "authorize", "decide", "verify", "backend", "sign", "log", "answer"}

// TestMetricsCountExchanges: each exchange of runExchanges is counted
// once at each gateway it reached, under its side, service, client,
// status class and error type; the duration and step histograms, bytes
// and policy decisions follow; the message log's and the monitoring
// records' counters are served too.
func TestMetricsCountExchanges(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	gws := []string{hcmcGW, mofGW, mpsGW, spfGW}
	before := map[string]map[string]*dto.MetricFamily{}
	for _, id := range gws {
		before[id], _ = scrape(t, w.manifestGateway(id).OpsURL, "")
	}
	exs := runExchanges(t, w, "metrics")

	want := map[string]map[series]float64{}
	for _, id := range gws {
		want[id] = map[series]float64{}
	}
	for _, ex := range exs {
		want[ex.consumer][ex.cons.series("consumer")]++
		if ex.provider != "" {
			want[ex.provider][ex.prov.series("provider")]++
		}
	}
	// Metrics are counted as an exchange's answer ends, just after the
	// client has it: wait for the counts to come in, then compare them
	// exactly.
	after := map[string]map[string]*dto.MetricFamily{}
	var diffs []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		diffs = nil
		for _, id := range gws {
			after[id], _ = scrape(t, w.manifestGateway(id).OpsURL, "")
			b, a := exchangeSeries(before[id]), exchangeSeries(after[id])
			keys := map[series]bool{}
			for s := range a {
				keys[s] = true
			}
			for s := range want[id] {
				keys[s] = true
			}
			for s := range keys {
				if d := a[s] - b[s]; d != want[id][s] {
					diffs = append(diffs, fmt.Sprintf("%s: %s grew by %v, want %v", id, s, d, want[id][s]))
				}
			}
		}
		if len(diffs) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	slices.Sort(diffs)
	for _, d := range diffs {
		t.Error(d)
	}

	// Durations: one sample per exchange and side; each step of each
	// side's pipeline has samples.
	for _, id := range gws {
		for _, side := range []string{"consumer", "provider"} {
			var n uint64
			for s, c := range want[id] {
				if s.side == side {
					n += uint64(c)
				}
			}
			l := map[string]string{"side": side}
			if got := histCount(after[id], "sampan_gateway_exchange_duration_seconds", l) - histCount(before[id], "sampan_gateway_exchange_duration_seconds", l); got != n {
				t.Errorf("%s: %s exchange durations grew by %d, want %d", id, side, got, n)
			}
		}
	}
	for id, steps := range map[string][]string{hcmcGW: consumerSteps, mofGW: providerSteps} {
		side := map[string]string{hcmcGW: "consumer", mofGW: "provider"}[id]
		for _, s := range steps {
			l := map[string]string{"side": side, "step": s}
			if histCount(after[id], "sampan_gateway_step_duration_seconds", l) <= histCount(before[id], "sampan_gateway_step_duration_seconds", l) {
				t.Errorf("%s: no sample of step %s on the %s side", id, s, side)
			}
		}
	}

	// Bytes: the upload's body went through both gateways.
	for id, side := range map[string]string{hcmcGW: "consumer", mofGW: "provider"} {
		l := map[string]string{"side": side}
		if d := counter(after[id], "sampan_gateway_request_bytes_total", l) - counter(before[id], "sampan_gateway_request_bytes_total", l); d < 3200 {
			t.Errorf("%s: request bytes grew by %v, want at least the upload's 3200", id, d)
		}
		if d := counter(after[id], "sampan_gateway_response_bytes_total", l) - counter(before[id], "sampan_gateway_response_bytes_total", l); d <= 0 {
			t.Errorf("%s: response bytes did not grow", id)
		}
	}

	// Policy decisions, by result and, for a refusal, each of its rules.
	decisions := map[string]map[[3]string]float64{}
	for _, id := range gws {
		decisions[id] = map[[3]string]float64{}
	}
	for _, ex := range exs {
		for _, sd := range []struct {
			gw, side string
			w        sideWant
		}{{ex.consumer, "consumer", ex.cons}, {ex.provider, "provider", ex.prov}} {
			switch {
			case sd.gw == "" || sd.w.decision == "":
			case sd.w.decision == "allow":
				decisions[sd.gw][[3]string{sd.side, "allow", ""}]++
			default:
				for _, r := range sd.w.rules {
					decisions[sd.gw][[3]string{sd.side, "deny", r}]++
				}
			}
		}
	}
	for _, id := range gws {
		grew := func(mfs map[string]*dto.MetricFamily) map[[3]string]float64 {
			out := map[[3]string]float64{}
			for _, m := range matching(mfs, "sampan_gateway_policy_decisions_total", nil) {
				l := map[string]string{}
				for _, p := range m.GetLabel() {
					l[p.GetName()] = p.GetValue()
				}
				out[[3]string{l["side"], l["result"], l["rule"]}] += m.GetCounter().GetValue()
			}
			return out
		}
		b, a := grew(before[id]), grew(after[id])
		for k := range a {
			if d := a[k] - b[k]; d != decisions[id][k] {
				t.Errorf("%s: policy decisions {side=%s result=%s rule=%s} grew by %v, want %v", id, k[0], k[1], k[2], d, decisions[id][k])
			}
		}
		for k, n := range decisions[id] {
			if _, ok := a[k]; !ok {
				t.Errorf("%s: policy decisions {side=%s result=%s rule=%s} absent, want %v", id, k[0], k[1], k[2], n)
			}
		}
	}

	// The message log and the monitoring records are written after the
	// answer, the records in batches: scrape until both are counted.
	for _, id := range []string{hcmcGW, mofGW} {
		for _, name := range []string{"sampan_msglog_records_total", "sampan_opmon_records_total"} {
			mfs := after[id]
			for deadline := time.Now().Add(10 * time.Second); (mfs[name] == nil || counter(mfs, name, nil) <= 0) && time.Now().Before(deadline); {
				time.Sleep(100 * time.Millisecond)
				mfs, _ = scrape(t, w.manifestGateway(id).OpsURL, "")
			}
			if mfs[name] == nil || counter(mfs, name, nil) <= 0 {
				t.Errorf("%s: %s absent or zero", id, name)
			}
		}
	}
}

// TestMetricsCardinalityBounded: requests from a thousand unregistered
// clients, to a hundred unregistered providers, and answered with a
// hundred unknown error types all land in series labelled "other": the
// number of series and the size of /metrics barely move.
func TestMetricsCardinalityBounded(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	ops := w.manifestGateway(hcmcGW).OpsURL
	mfs, size0 := scrape(t, ops, "")
	n0 := len(exchangeSeries(mfs))

	for i := range 1000 {
		resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderClient: fmt.Sprintf("VN/GOV/HCMC/unknown-%d", i)}})
		if resp.Header.Get(r1.HeaderError) != r1.TypeUnknownClient {
			t.Fatalf("client %d: status %d %s", i, resp.StatusCode, body)
		}
	}
	for i := range 100 {
		resp, body := w.do(t, call{path: fmt.Sprintf("VN/GOV/MOF/nowhere-%d/companies", i)})
		if resp.Header.Get(r1.HeaderError) != r1.TypeUnknownService {
			t.Fatalf("provider %d: status %d %s", i, resp.StatusCode, body)
		}
	}
	// The provider's gateway answers with error types of its own making.
	for i := range 100 {
		typ := fmt.Sprintf("Server.ServerProxy.Invented%d", i)
		w.tamper.Store(&tamper{resp: func(r *http.Response) {
			r.Body.Close()
			b, _ := json.Marshal(r1.Body{Type: typ, Message: "invented"})
			r.StatusCode, r.Body, r.ContentLength = 500, io.NopCloser(bytes.NewReader(b)), int64(len(b))
			r.Header = http.Header{r1.HeaderError: {typ}, "Content-Type": {"application/json"}}
		}})
		resp, body := w.do(t, call{path: companies + "/0100109106"})
		if resp.Header.Get(r1.HeaderError) != typ {
			t.Fatalf("invented type %d: status %d %s", i, resp.StatusCode, body)
		}
	}
	w.tamper.Store(nil)

	total := func(m map[series]float64) (n float64) {
		for _, v := range m {
			n += v
		}
		return n
	}
	total0 := total(exchangeSeries(mfs))
	var got map[series]float64
	var size int
	waitFor(t, 10*time.Second, "the refusals counted", func() bool {
		mfs, size = scrape(t, ops, "")
		got = exchangeSeries(mfs)
		return total(got)-total0 >= 1200
	})
	for s, n := range map[series]float64{
		{"consumer", "other", "other", "5xx", r1.TypeUnknownClient}:     1000,
		{"consumer", "other", hcmcClient, "5xx", r1.TypeUnknownService}: 100,
		{"consumer", companies, hcmcClient, "5xx", "other"}:             100,
	} {
		if got[s] != n {
			t.Errorf("%s = %v, want %v", s, got[s], n)
		}
	}
	if n := len(got); n > n0+3 {
		t.Errorf("exchange series: %d, from %d before: unregistered identifiers made series of their own", n, n0)
	}
	if size > size0+8<<10 {
		t.Errorf("/metrics grew from %d to %d bytes", size0, size)
	}
	var leaked []string
	for s := range got {
		if strings.Contains(s.client, "unknown-") || strings.Contains(s.service, "nowhere-") || strings.Contains(s.errType, "Invented") {
			leaked = append(leaked, s.String())
		}
	}
	if len(leaked) > 0 {
		slices.Sort(leaked)
		t.Errorf("%d series carry a caller's identifier or error type, e.g. %s", len(leaked), leaked[0])
	}
}

// opsRecord is a monitoring record as GET /records gives it.
type opsRecord struct {
	Side          string    `json:"side"`
	Gateway       string    `json:"gateway"`
	PeerGateway   string    `json:"peer_gateway"`
	RequestInAt   time.Time `json:"request_in_at"`
	RequestOutAt  time.Time `json:"request_out_at"`
	ResponseInAt  time.Time `json:"response_in_at"`
	ResponseOutAt time.Time `json:"response_out_at"`
	Client        string    `json:"client"`
	Service       string    `json:"service"`
	XRoadID       string    `json:"x_road_id"`
	Method        string    `json:"method"`
	RequestBytes  int64     `json:"request_bytes"`
	ResponseBytes int64     `json:"response_bytes"`
	Status        int       `json:"status"`
	Succeeded     bool      `json:"succeeded"`
	ErrorType     string    `json:"error_type"`
	Traceparent   string    `json:"traceparent"`
	Steps         []struct {
		Name string `json:"name"`
	} `json:"steps"`
}

// records reads a gateway's monitoring records over HTTP, by X-Road-Id.
func records(t *testing.T, base, token, query string) map[string][]opsRecord {
	t.Helper()
	resp, body := opsGet(t, base, "/records?limit=1000&"+query, token)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/records: status %d, %s", base, resp.StatusCode, body)
	}
	var p struct{ Records []opsRecord }
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("records: %v; %s", err, body)
	}
	out := map[string][]opsRecord{}
	for _, r := range p.Records {
		out[r.XRoadID] = append(out[r.XRoadID], r)
	}
	return out
}

// TestMonitoringRecords: every exchange of runExchanges has one record at
// its consumer's gateway and, when the request got there, one at its
// provider's and none elsewhere; the times of the two records nest; the
// sizes of a success agree; status, outcome, error type and the client's
// traceparent are recorded. The records come as CSV too.
//
// Between gateways speaking HTTP/1.1 the provider's answer leaves whole as
// its handler ends, so the consumer's gateway has its head only after the
// provider's record's response_out. Over HTTP/2 the provider's gateway
// sends an answer before its log confirms it (the confirmation follows in
// a trailer), and its response_out, taken at the end, follows the
// consumer's response_in (the head's arrival); it still precedes the
// consumer's response_out, which waits for the confirmation (unless the
// consumer's gateway refuses the exchange itself, as when its own log
// fails).
func TestMonitoringRecords(t *testing.T) {
	t.Run("http1", func(t *testing.T) { testMonitoringRecords(t, "", true) })
	t.Run("http2", func(t *testing.T) { testMonitoringRecords(t, gateway.PeerHTTP2, false) })
}

func testMonitoringRecords(t *testing.T, proto string, headAfterEnd bool) {
	w := startWorld(t, sandbox.Options{PeerProtocol: proto})
	exs := runExchanges(t, w, "opmon")
	gws := []string{hcmcGW, mofGW, mpsGW, spfGW}
	got := map[string]map[string][]opsRecord{}
	waitFor(t, 10*time.Second, "the records stored", func() bool {
		for _, id := range gws {
			got[id] = records(t, w.manifestGateway(id).OpsURL, "", "")
		}
		for _, ex := range exs {
			if len(got[ex.consumer][ex.id]) == 0 || ex.provider != "" && len(got[ex.provider][ex.id]) == 0 {
				return false
			}
		}
		return true
	})
	check := func(ex *opsExchange, r opsRecord, side, gw, peer string, sw sideWant) {
		t.Helper()
		if r.Side != side || r.Gateway != gw || r.PeerGateway != peer || r.Client != ex.client || r.Service != ex.service {
			t.Errorf("%s: %s record %+v, want side %s gateway %s peer %q client %s service %s", ex.name, side, r, side, gw, peer, ex.client, ex.service)
		}
		if r.Status != sw.status || r.ErrorType != sw.errType || r.Succeeded != (sw.errType == "") {
			t.Errorf("%s: %s record: status %d, error %q, succeeded %v; want %d %q", ex.name, side, r.Status, r.ErrorType, r.Succeeded, sw.status, sw.errType)
		}
		if r.Traceparent != ex.trace {
			t.Errorf("%s: %s record: traceparent %q, want %q", ex.name, side, r.Traceparent, ex.trace)
		}
		if len(r.Steps) == 0 || r.RequestInAt.IsZero() || r.ResponseOutAt.Before(r.RequestInAt) {
			t.Errorf("%s: %s record: steps %v, in %v, out %v", ex.name, side, r.Steps, r.RequestInAt, r.ResponseOutAt)
		}
	}
	for _, ex := range exs {
		for _, id := range gws {
			want := 0
			if id == ex.consumer || id == ex.provider {
				want = 1
			}
			if n := len(got[id][ex.id]); n != want {
				t.Errorf("%s: %d records at %s, want %d", ex.name, n, id, want)
			}
		}
		if len(got[ex.consumer][ex.id]) != 1 {
			continue
		}
		c := got[ex.consumer][ex.id][0]
		check(ex, c, "consumer", ex.consumer, cmp.Or(ex.provider, ex.routed), ex.cons)
		if ex.provider == "" {
			if !c.RequestOutAt.IsZero() || !c.ResponseInAt.IsZero() {
				t.Errorf("%s: refused before leaving, yet sent at %v, answered at %v", ex.name, c.RequestOutAt, c.ResponseInAt)
			}
			continue
		}
		if len(got[ex.provider][ex.id]) != 1 {
			continue
		}
		p := got[ex.provider][ex.id][0]
		check(ex, p, "provider", ex.provider, ex.consumer, ex.prov)
		// Both gateways read one machine's clock.
		type at struct {
			name string
			at   time.Time
		}
		chains := [][]at{{
			{"consumer request in", c.RequestInAt}, {"consumer request out", c.RequestOutAt},
			{"provider request in", p.RequestInAt}, {"provider response out", p.ResponseOutAt},
			{"consumer response in", c.ResponseInAt}, {"consumer response out", c.ResponseOutAt},
		}}
		if !headAfterEnd {
			chains = [][]at{{
				{"consumer request in", c.RequestInAt}, {"consumer request out", c.RequestOutAt},
				{"provider request in", p.RequestInAt}, {"provider response out", p.ResponseOutAt},
				{"consumer response out", c.ResponseOutAt},
			}, {
				{"provider request in", p.RequestInAt}, {"consumer response in", c.ResponseInAt}, {"consumer response out", c.ResponseOutAt},
			}}
			if ex.cons.errType != ex.prov.errType {
				// Refused by the consumer's gateway itself, without
				// waiting for the provider's confirmation.
				chains[0] = chains[0][:4]
			}
		}
		for _, chain := range chains {
			for i := 1; i < len(chain); i++ {
				if chain[i].at.IsZero() || chain[i].at.Before(chain[i-1].at) {
					t.Errorf("%s: %s %v, before %s %v", ex.name, chain[i].name, chain[i].at, chain[i-1].name, chain[i-1].at)
				}
			}
		}
		if ex.prov.errType == "" {
			if !p.RequestOutAt.Before(p.ResponseInAt.Add(time.Microsecond)) || p.RequestOutAt.Before(p.RequestInAt) || p.ResponseOutAt.Before(p.ResponseInAt) {
				t.Errorf("%s: provider times in %v, out %v, response in %v, out %v", ex.name, p.RequestInAt, p.RequestOutAt, p.ResponseInAt, p.ResponseOutAt)
			}
		}
		if ex.cons.errType == "" {
			if c.RequestBytes != int64(len(ex.body)) || p.RequestBytes != c.RequestBytes {
				t.Errorf("%s: request bytes %d at the consumer, %d at the provider, want %d", ex.name, c.RequestBytes, p.RequestBytes, len(ex.body))
			}
			if c.ResponseBytes <= 0 || p.ResponseBytes != c.ResponseBytes {
				t.Errorf("%s: response bytes %d at the consumer, %d at the provider", ex.name, c.ResponseBytes, p.ResponseBytes)
			}
		}
	}

	// CSV: a header, then one row per record.
	resp, body := opsGet(t, w.manifestGateway(hcmcGW).OpsURL, "/records?format=csv&side=consumer&limit=1000", "")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/csv") {
		t.Fatalf("CSV: status %d, type %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	rows, err := csv.NewReader(bytes.NewReader(body)).ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("CSV: %d rows, %v; %s", len(rows), err, body)
	}
	col := slices.Index(rows[0], "x_road_id")
	if rows[0][0] != "id" || col < 0 || !slices.Contains(rows[0], "traceparent") {
		t.Fatalf("CSV header %v", rows[0])
	}
	ids := map[string]bool{}
	for _, r := range rows[1:] {
		ids[r[col]] = true
	}
	for _, ex := range exs {
		if ex.consumer == hcmcGW && !ids[ex.id] {
			t.Errorf("CSV lacks %s (%s)", ex.id, ex.name)
		}
	}
	if n := len(got[hcmcGW]); len(rows)-1 < n {
		t.Errorf("CSV: %d rows, JSON %d records", len(rows)-1, n)
	}
}

// startDirect opens a gateway of a closed sandbox again on its data
// directory, with its configuration edited, and serves it; the authority
// is gone, and the gateway serves on its cached configuration. done
// receives what Run returns; stop ends the gateway, and is called at the
// test's end too.
func startDirect(t *testing.T, mg sandbox.ManifestGateway, edit func(*gateway.Config), o gateway.Options) (g *gateway.Gateway, done <-chan error, stop func()) {
	t.Helper()
	c, err := gateway.LoadConfig(mg.Config)
	if err != nil {
		t.Fatal(err)
	}
	c.ClientListen, c.PeerListen, c.OpsListen = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	edit(c)
	if o.Log == nil {
		o.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	g, err = gateway.New(t.Context(), c, mg.DataDir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Listen(); err != nil {
		g.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	finished := make(chan struct{})
	go func() { ran <- g.Run(ctx); close(finished) }()
	stop = sync.OnceFunc(func() {
		cancel()
		<-finished
		g.Close()
	})
	t.Cleanup(stop)
	return g, ran, stop
}

// TestMonitoringRetention: records whose request came in longer than
// monitoring.retention ago are purged, and newer ones kept. The purge runs
// as the records are opened and then every opmon.DefaultPurgeInterval (an
// hour; the gateway's configuration does not set it), by the gateway's
// clock: the gateway is opened again with its clock put where the
// retention ends between two records.
func TestMonitoringRetention(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	ops := w.manifestGateway(hcmcGW).OpsURL
	for _, id := range []string{"old-1", "old-2"} {
		if resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: id}}); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", id, resp.StatusCode, body)
		}
	}
	time.Sleep(50 * time.Millisecond)
	if resp, body := w.do(t, call{path: companies + "/0100109106", header: map[string]string{r1.HeaderID: "new-1"}}); resp.StatusCode != 200 {
		t.Fatalf("new-1: %d %s", resp.StatusCode, body)
	}
	var got map[string][]opsRecord
	waitFor(t, 10*time.Second, "the records stored", func() bool {
		got = records(t, ops, "", "side=consumer")
		return len(got["old-2"]) == 1 && len(got["new-1"]) == 1
	})
	oldIn, newIn := got["old-2"][0].RequestInAt, got["new-1"][0].RequestInAt
	if !oldIn.Before(newIn) {
		t.Fatalf("old record at %v, new at %v", oldIn, newIn)
	}
	cut := oldIn.Add(newIn.Sub(oldIn) / 2)
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}

	const retention = time.Minute
	g, _, _ := startDirect(t, w.manifestGateway(hcmcGW), func(c *gateway.Config) {
		c.Monitoring.Retention = cfg.Duration(retention)
	}, gateway.Options{Clock: func() time.Time { return cut.Add(retention) }})
	ops = "http://" + g.OpsAddr()
	waitFor(t, 10*time.Second, "the old records purged", func() bool {
		got = records(t, ops, "", "")
		return len(got["old-1"]) == 0 && len(got["old-2"]) == 0
	})
	if len(got["new-1"]) != 1 {
		t.Errorf("the record within retention was purged too: %v", got)
	}
	mfs, _ := scrape(t, ops, "")
	if n := counter(mfs, "sampan_opmon_purged_total", nil); n < 2 {
		t.Errorf("sampan_opmon_purged_total = %v, want at least the 2 old records", n)
	}
}

// TestOpsToken: with ops_token_file set, /metrics and /records answer
// only a request bearing the token; the probes stay open. A token file
// others may read is refused.
func TestOpsToken(t *testing.T) {
	w := startWorld(t, sandbox.Options{})
	mg := w.manifestGateway(hcmcGW)
	if err := w.sb.Close(); err != nil {
		t.Fatal(err)
	}
	const token = "s3cr3t-0ps-t0ken-0123456789"
	file := filepath.Join(t.TempDir(), "ops.token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A token file others may read: the gateway does not serve.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	_, done, stop := startDirect(t, mg, func(c *gateway.Config) { c.OpsTokenFile = file }, gateway.Options{})
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "ops_token_file") {
			t.Errorf("Run with a token file others may read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("a gateway served with a token file others may read")
	}
	stop()
	if err := os.Chmod(file, 0o600); err != nil {
		t.Fatal(err)
	}

	g, _, _ := startDirect(t, mg, func(c *gateway.Config) { c.OpsTokenFile = file }, gateway.Options{})
	base := "http://" + g.OpsAddr()
	for _, path := range []string{"/metrics", "/records", "/records?format=csv"} {
		for _, tok := range []string{"", "wrong-token-0123456789", token + "x", strings.ToUpper(token)} {
			resp, body := opsGet(t, base, path, tok)
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s with token %q: status %d, want 401", path, tok, resp.StatusCode)
			}
			if strings.Contains(string(body), "sampan_") || strings.Contains(string(body), "x_road_id") {
				t.Errorf("%s with token %q: answered %s", path, tok, body)
			}
		}
		if resp, body := opsGet(t, base, path, token); resp.StatusCode != http.StatusOK {
			t.Errorf("%s with the token: status %d, %s", path, resp.StatusCode, body)
		}
	}
	if _, n := scrape(t, base, token); n == 0 {
		t.Error("empty /metrics")
	}
	if resp, body := opsGet(t, base, "/healthz", ""); resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz without the token: status %d, %s", resp.StatusCode, body)
	}
	if resp, _ := opsGet(t, base, "/readyz", ""); resp.StatusCode == http.StatusUnauthorized {
		t.Error("/readyz asks for the token")
	}
}
