package bench

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sampan-exchange/sampan/gateway"
	"github.com/sampan-exchange/sampan/ident"
	"github.com/sampan-exchange/sampan/internal/procs"
	"github.com/sampan-exchange/sampan/sandbox"
	"github.com/sampan-exchange/sampan/soap"
)

// Options configure a run. Zero values take the defaults.
type Options struct {
	// Duration of each measurement (default 20s; 5s with Quick).
	Duration time.Duration
	// Warmup before each measurement (default 3s; 1s with Quick).
	Warmup time.Duration
	// Connections is the number of closed-loop workers (default 64).
	Connections int
	// BodySize is the request body in bytes, echoed back (default 1024).
	BodySize int
	// MaxRequests bounds each measurement (default 10 million).
	MaxRequests int64
	Quick       bool
	// Rounds splits each of the floor's and Sampan's measurements, closed
	// loop and open loop, into this many, alternated (floor, Sampan,
	// Sampan, floor, …), so that a shared machine's slow spells fall on
	// both (default 4; 2 with Quick; 1 with a CPU profile).
	Rounds int
	// StreamBytes is the size of the body streamed once each way through
	// Sampan to measure memory (default 100 MiB; -1 skips it).
	StreamBytes int64
	// Dir is where a new directory holding the gateways' state and
	// message logs is made, and removed afterwards (default: the system's
	// temporary directory). Each exchange waits for log syncs there, so
	// the disk under it shapes the latency (docs/design/performance.md).
	Dir string
	// Nginx is the nginx binary for a second floor: nginx's own reverse
	// proxies, chained as the Go floor's are ("": nginx on the PATH or in
	// /usr/sbin when installed, and none, with a note, when it does not
	// start; NginxOff: none). One named here must start.
	Nginx string
	// CPUProfile, when set, receives a CPU profile of the Sampan
	// measurement.
	CPUProfile string
	// Monitoring is the gateways' (gateway.MonitoringConfig): "on"
	// (default) keeps the exchange metrics and the monitoring records,
	// "off" neither, to measure their cost.
	Monitoring string
	// OpenRate is the rate of the open-loop latency measurement (default:
	// half of Sampan's measured peak), so that two builds can be compared
	// at the same rate.
	OpenRate float64
	// Procs is the number of Ps (GOMAXPROCS) for Sampan's measurements
	// (default: procs.Gateway(), what `sampan gateway` runs with). The
	// backend and the floor's closed loop run with Go's default, a plain
	// Go proxy's setting: the floor carried more with it than with spare
	// Ps in our runs. The open-loop latency measurement runs both with
	// Procs: the floor's tail was the shorter with it.
	Procs int
	// PeerProtocol is what the gateways speak to each other, and the
	// floor's proxies to each other: "http/1.1" (the gateway's default)
	// or "h2".
	PeerProtocol string
	// Protocol is the client protocol measured: "rest" (r1, default) or
	// "soap", which measures r1 and SOAP (the same exchange as a SOAP
	// envelope of BodySize bytes) in alternation, and reports SOAP's
	// throughput over r1's.
	Protocol string
}

// Client protocols the bench measures.
const (
	ProtocolREST = "rest"
	ProtocolSOAP = "soap"
)

// Report is what a run measured.
type Report struct {
	Backend Result `json:"backend"`
	Floor   Result `json:"floor"`
	// Nginx is the second floor, when nginx was there: its CPU (Linux
	// only) counts nginx's processes and this one's (load generator,
	// backend, the idle gateways).
	Nginx  *Result `json:"nginx,omitempty"`
	Sampan Result  `json:"sampan"`
	// RatioSampanToFloor is Sampan's throughput over the floor's,
	// measured in the same run (all rounds pooled).
	RatioSampanToFloor float64 `json:"ratio_sampan_to_floor"`
	// RatioSampanToNginx is Sampan's throughput over nginx's.
	RatioSampanToNginx float64 `json:"ratio_sampan_to_nginx,omitempty"`
	// SOAP is the same exchange through Sampan as a SOAP request (with
	// Protocol "soap"), measured in alternation with r1's (Sampan);
	// RatioSOAPToR1 its throughput over r1's.
	SOAP          *Result `json:"soap,omitempty"`
	RatioSOAPToR1 float64 `json:"ratio_soap_to_r1,omitempty"`
	// Rounds are the alternated measurements the figures pool.
	Rounds []Round `json:"rounds"`
	// HalfPeak is latency at half of Sampan's peak rate, open loop.
	HalfPeak *HalfPeak `json:"half_peak,omitempty"`
	// Stream is one large body streamed each way through Sampan.
	Stream *Stream `json:"stream,omitempty"`
	Config Config  `json:"config"`
}

// Round is one alternated pair of measurements.
type Round struct {
	FloorRPS  float64 `json:"floor_rps"`
	SampanRPS float64 `json:"sampan_rps"`
	Ratio     float64 `json:"ratio"`
	// NginxRPS is the second floor's, measured next to the floor's.
	NginxRPS float64 `json:"nginx_rps,omitempty"`
	// SOAPRPS is SOAP's, measured next to Sampan's r1.
	SOAPRPS float64 `json:"soap_rps,omitempty"`
}

// Config records the conditions of a run.
type Config struct {
	Rounds      int     `json:"rounds"`
	DurationS   float64 `json:"duration_s"`
	WarmupS     float64 `json:"warmup_s"`
	Connections int     `json:"connections"`
	BodyBytes   int     `json:"body_bytes"`
	CPUs        int     `json:"cpus"`
	GoVersion   string  `json:"go_version"`
	// ProcsFloor and ProcsSampan are the Ps (GOMAXPROCS) of the closed
	// loop's floor and Sampan measurements; the open loop runs both with
	// ProcsSampan.
	ProcsFloor  int `json:"procs_floor"`
	ProcsSampan int `json:"procs_sampan"`
	// PeerProtocol is spoken between the gateways, and between the
	// floor's two proxies.
	PeerProtocol string `json:"peer_protocol"`
	// Protocol is the client protocol measured ("rest", or "soap" for
	// r1 and SOAP alternated).
	Protocol string `json:"protocol"`
	// Monitoring says whether the gateways kept exchange metrics and
	// monitoring records ("on" or "off").
	Monitoring string `json:"monitoring"`
	// StateDir holds the gateways' state and message logs during the run,
	// on a file system of type StateFS ("" when unknown).
	StateDir string `json:"state_dir"`
	StateFS  string `json:"state_fs"`
	// Nginx is the version of nginx measured as a second floor;
	// NginxSkipped why an nginx found was not measured.
	Nginx        string `json:"nginx,omitempty"`
	NginxSkipped string `json:"nginx_skipped,omitempty"`
	Sampan       string `json:"sampan"`
	Note         string `json:"note"`
}

func (o *Options) defaults() {
	if o.Duration == 0 {
		o.Duration = 20 * time.Second
		if o.Quick {
			o.Duration = 5 * time.Second
		}
	}
	if o.Warmup == 0 {
		o.Warmup = 3 * time.Second
		if o.Quick {
			o.Warmup = time.Second
		}
	}
	if o.Connections == 0 {
		o.Connections = 64
	}
	if o.BodySize == 0 {
		o.BodySize = 1024
	}
	if o.MaxRequests == 0 {
		o.MaxRequests = 10_000_000
	}
	if o.Procs == 0 {
		o.Procs = procs.Gateway()
	}
	if o.StreamBytes == 0 {
		o.StreamBytes = 100 << 20
	}
	if o.Rounds == 0 {
		o.Rounds = 4
		if o.Quick {
			o.Rounds = 2
		}
		if o.CPUProfile != "" {
			o.Rounds = 1
		}
	}
}

// Run measures the three targets one after the other and reports.
// Progress goes to progress.
func Run(ctx context.Context, o Options, progress io.Writer) (*Report, error) {
	o.defaults()
	if o.Connections < 1 || o.Connections > 4096 {
		return nil, fmt.Errorf("connections: %d is not between 1 and 4096", o.Connections)
	}
	if o.BodySize < 0 || o.BodySize > 64<<20 {
		return nil, fmt.Errorf("body size: %d is not between 0 and 64 MiB", o.BodySize)
	}
	if o.OpenRate < 0 || o.OpenRate > 1e6 {
		return nil, fmt.Errorf("open rate: %v requests/s is not between 0 and 1,000,000", o.OpenRate)
	}
	if o.Rounds < 1 || o.Rounds > 100 {
		return nil, fmt.Errorf("rounds: %d is not between 1 and 100", o.Rounds)
	}
	if o.Procs < 1 || o.Procs > 1024 {
		return nil, fmt.Errorf("procs: %d is not between 1 and 1024", o.Procs)
	}
	if o.PeerProtocol == "" {
		o.PeerProtocol = gateway.PeerHTTP1
	}
	if o.Monitoring == "" {
		o.Monitoring = gateway.On
	}
	if o.Monitoring != gateway.On && o.Monitoring != gateway.Off {
		return nil, fmt.Errorf("monitoring: %q is neither %q nor %q", o.Monitoring, gateway.On, gateway.Off)
	}
	if o.Protocol == "" {
		o.Protocol = ProtocolREST
	}
	if o.Protocol != ProtocolREST && o.Protocol != ProtocolSOAP {
		return nil, fmt.Errorf("protocol: %q is neither %q nor %q", o.Protocol, ProtocolREST, ProtocolSOAP)
	}
	if o.PeerProtocol != gateway.PeerHTTP1 && o.PeerProtocol != gateway.PeerHTTP2 {
		return nil, fmt.Errorf("peer protocol: %q is neither %q nor %q", o.PeerProtocol, gateway.PeerHTTP1, gateway.PeerHTTP2)
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	floorProcs := procs.Default()
	if o.CPUProfile != "" && o.Rounds != 1 {
		return nil, fmt.Errorf("a CPU profile needs --rounds 1 (got %d)", o.Rounds)
	}
	if o.Duration/time.Duration(o.Rounds) < 100*time.Millisecond || o.Warmup < 0 {
		return nil, fmt.Errorf("duration: %v in %d rounds leaves less than 100ms a round, or the warm-up %v is negative", o.Duration, o.Rounds, o.Warmup)
	}
	nginxBin, nginxNamed, err := findNginx(o.Nginx)
	if err != nil {
		return nil, err
	}
	if o.Dir != "" {
		if st, err := os.Stat(o.Dir); err != nil {
			return nil, fmt.Errorf("dir: %w", err)
		} else if !st.IsDir() {
			return nil, fmt.Errorf("dir: %s is not a directory", o.Dir)
		}
	}
	var profile *os.File
	if o.CPUProfile != "" {
		f, err := os.Create(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		profile = f
	}
	body := make([]byte, o.BodySize)
	for i := range body {
		body[i] = byte('a' + i%26)
	}
	per := o.Duration / time.Duration(o.Rounds)
	ld := &load{conns: o.Connections, duration: per, maxRequests: o.MaxRequests, body: body}
	rep := &Report{Config: Config{
		Rounds: o.Rounds, DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), Connections: o.Connections, BodyBytes: o.BodySize,
		CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), ProcsFloor: floorProcs, ProcsSampan: o.Procs, PeerProtocol: o.PeerProtocol, Protocol: o.Protocol, Monitoring: o.Monitoring,
		Sampan: "consumer gateway -> provider gateway over mutual TLS 1.3 (" + o.PeerProtocol + "), request and response signed and verified (in batches while the process is busy), access rights, sovereignty policy decided by both gateways (the service is internal data, so no national rule refuses it), durable message log (write-ahead segments, SQLite record index, Merkle tiles) on both gateways; exchange metrics and monitoring records " + o.Monitoring,
		Note:   "load generator, backend, the floor's proxies and the gateways share this process and its CPUs (nginx, when measured, runs in processes of its own); loopback only; floor and Sampan alternate in rounds, nginx measured next to the floor",
	}}

	backend, err := serve(http.HandlerFunc(echo), nil)
	if err != nil {
		return nil, err
	}
	defer backend.Close()

	var nginx *nginxFloor
	if nginxBin != "" {
		fp, err := newFloorPKI("bench nginx floor CA")
		if err != nil {
			return nil, err
		}
		nginx, err = startNginx(ctx, nginxSetup{bin: nginxBin, backend: backend.Addr().String(), conns: o.Connections, pki: fp})
		switch {
		case err != nil && (nginxNamed || ctx.Err() != nil):
			return nil, err
		case err != nil:
			// Found, not asked for: the run goes on without it.
			rep.Config.NginxSkipped = fmt.Sprintf("%s: %v", nginxBin, err)
			fmt.Fprintf(progress, "nginx    not measured: %s\n", rep.Config.NginxSkipped)
		default:
			defer nginx.stop()
			rep.Config.Nginx = nginx.version
		}
	}

	var measureBody func(name, target string, hdr http.Header, body []byte, extra, ps int, warmup, d time.Duration, ext func() time.Duration) (samples, usage)
	// measure warms up, then measures; what the process used (CPU, system
	// calls) is counted for the measurement alone.
	// ext, when not nil, is the CPU time of processes outside this one
	// that serve the target (nginx's).
	measure := func(name, target string, hdr http.Header, ps int, warmup, d time.Duration, ext func() time.Duration) (samples, usage) {
		return measureBody(name, target, hdr, body, 0, ps, warmup, d, ext)
	}
	measureBody = func(name, target string, hdr http.Header, body []byte, extra, ps int, warmup, d time.Duration, ext func() time.Duration) (samples, usage) {
		runtime.GOMAXPROCS(ps)
		fmt.Fprintf(progress, "%-8s warming up %v, measuring %v with %d connections…\n", name, warmup, d, o.Connections)
		warm := &load{conns: o.Connections, duration: warmup, maxRequests: o.MaxRequests, body: body, header: hdr, extra: extra}
		warm.run(ctx, target)
		runtime.GC()
		ld.header, ld.duration, ld.body, ld.extra = hdr, d, body, extra
		var e0 time.Duration
		if ext != nil {
			e0 = ext()
		}
		u0 := readUsage()
		measuring(name)
		s := ld.run(ctx, target)
		u := readUsage().minus(u0)
		if ext != nil {
			e := ext() - e0
			extMeasured(name, e)
			u.cpu += e
		}
		return s, u
	}

	backendAll, _ := measure("backend", "http://"+backend.Addr().String()+"/echo", nil, floorProcs, o.Warmup, o.Duration, nil)
	rep.Backend = backendAll.result()

	floorURL, closeFloor, err := startFloor("http://"+backend.Addr().String(), o.PeerProtocol)
	if err != nil {
		return nil, err
	}
	defer closeFloor()

	tmp, err := os.MkdirTemp(o.Dir, "sampan-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	dir := filepath.Join(tmp, "sandbox")
	rep.Config.StateDir, rep.Config.StateFS = dir, fsType(tmp)
	mon := o.Monitoring
	sb, err := sandbox.Start(ctx, sandbox.Options{
		Monitoring:   gateway.MonitoringConfig{Metrics: mon, Records: mon},
		PeerProtocol: o.PeerProtocol,
		Dir:          dir,
		Log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		WrapBackends: func(http.Handler) http.Handler { return http.HandlerFunc(echo) },
	})
	if err != nil {
		return nil, fmt.Errorf("start the gateways: %w", err)
	}
	defer sb.Close()
	var hcmc string
	for _, g := range sb.Manifest.Gateways {
		if g.ID == "VN/GOV/HCMC/gw1" {
			hcmc = g.ClientURL
		}
	}
	hdr := http.Header{"X-Road-Client": {"VN/GOV/HCMC/one-stop"}}
	target := hcmc + "/r1/VN/GOV/MOF/business-registry/filings"
	// With SOAP, the same exchange as an envelope of BodySize bytes; the
	// answer (the envelope echoed) gains requestHash.
	var soapBody []byte
	var soapExtra int
	var soapRounds []samples
	var soapAll samples
	var soapUse usage
	soapHdr := http.Header{"Content-Type": {soap.ContentTypeSOAP}, "Soapaction": {`""`}}
	if o.Protocol == ProtocolSOAP {
		if soapBody, soapExtra, err = soapEnvelope(o.BodySize); err != nil {
			return nil, err
		}
	}
	if o.StreamBytes > 0 {
		fmt.Fprintf(progress, "sampan   streaming %d MiB each way…\n", o.StreamBytes>>20)
		runtime.GOMAXPROCS(o.Procs)
		measuring("stream")
		if rep.Stream, err = stream(ctx, target, hdr, o.StreamBytes); err != nil {
			return nil, fmt.Errorf("stream: %w", err)
		}
	}

	var floorAll, sampanAll, nginxAll samples
	var floorUse, sampanUse, nginxUse usage
	var nginxRounds []samples
	measureSampan := func(warmup time.Duration) (samples, error) {
		if o.CPUProfile == "" {
			s, u := measure("sampan", target, hdr, o.Procs, warmup, per, nil)
			sampanUse = sampanUse.plus(u)
			return s, nil
		}
		fmt.Fprintf(progress, "sampan   warming up %v, profiling %v into %s\n", warmup, per, o.CPUProfile)
		runtime.GOMAXPROCS(o.Procs)
		(&load{conns: o.Connections, duration: warmup, maxRequests: o.MaxRequests, body: body, header: hdr}).run(ctx, target)
		if err := pprof.StartCPUProfile(profile); err != nil {
			return samples{}, err
		}
		u0 := readUsage()
		measuring("sampan")
		ld.header, ld.duration = hdr, per
		s := ld.run(ctx, target)
		sampanUse = sampanUse.plus(readUsage().minus(u0))
		pprof.StopCPUProfile()
		return s, nil
	}
	// The full warm-up comes before each target's first measurement, a
	// shorter one before the others.
	warmup := func(round int) time.Duration {
		if round == 0 {
			return o.Warmup
		}
		return max(o.Warmup/time.Duration(o.Rounds), 200*time.Millisecond)
	}
	floors, sampans, err := alternate(o.Rounds,
		// nginx, when there, is measured next to the floor: floor, nginx,
		// Sampan, Sampan, nginx, floor, …
		func(i int) (samples, error) {
			var f samples
			goFloor := func() {
				var u usage
				f, u = measure("floor", floorURL+"/echo", nil, floorProcs, warmup(i), per, nil)
				floorUse = floorUse.plus(u)
			}
			if nginx == nil {
				goFloor()
				return f, nil
			}
			ngx := func() error {
				n, u := measure("nginx", nginx.url+"/echo", nil, floorProcs, warmup(i), per, nginx.cpu)
				nginxUse = nginxUse.plus(u)
				nginxRounds = append(nginxRounds, n)
				return nginx.alive()
			}
			if i%2 == 0 {
				goFloor()
				return f, ngx()
			}
			err := ngx()
			goFloor()
			return f, err
		},
		func(i int) (samples, error) {
			if soapBody == nil {
				return measureSampan(warmup(i))
			}
			// r1 and SOAP, in alternated order.
			var s samples
			var err error
			goSOAP := func() {
				x, u := measureBody("soap", hcmc+"/", soapHdr, soapBody, soapExtra, o.Procs, warmup(i), per, nil)
				soapUse = soapUse.plus(u)
				soapRounds = append(soapRounds, x)
			}
			if i%2 == 1 {
				goSOAP()
			}
			s, err = measureSampan(warmup(i))
			if i%2 == 0 {
				goSOAP()
			}
			return s, err
		})
	if err != nil {
		return nil, err
	}
	for i := range floors {
		r := Round{FloorRPS: floors[i].result().RPS, SampanRPS: sampans[i].result().RPS}
		if r.FloorRPS > 0 {
			r.Ratio = r.SampanRPS / r.FloorRPS
		}
		if i < len(nginxRounds) {
			r.NginxRPS = nginxRounds[i].result().RPS
			nginxAll.add(nginxRounds[i])
		}
		if i < len(soapRounds) {
			r.SOAPRPS = soapRounds[i].result().RPS
			soapAll.add(soapRounds[i])
		}
		rep.Rounds = append(rep.Rounds, r)
		floorAll.add(floors[i])
		sampanAll.add(sampans[i])
	}
	rep.Floor, rep.Sampan = floorAll.result(), sampanAll.result()
	floorUse.fill(&rep.Floor)
	sampanUse.fill(&rep.Sampan)
	rep.Sampan.RSSMB = float64(procStatus("VmRSS")) / (1 << 20)
	if rep.Floor.RPS > 0 {
		rep.RatioSampanToFloor = rep.Sampan.RPS / rep.Floor.RPS
	}
	if soapBody != nil {
		x := soapAll.result()
		soapUse.fill(&x)
		rep.SOAP = &x
		if rep.Sampan.RPS > 0 {
			rep.RatioSOAPToR1 = x.RPS / rep.Sampan.RPS
		}
	}
	if nginx != nil {
		n := nginxAll.result()
		nginxUse.fill(&n)
		// This process's system calls and heap are not nginx's, nor is its
		// CPU alone, where nginx's is not read.
		n.SyscallsPerExchange, n.AllocKiBPerExchange = 0, 0
		if !childCPU {
			n.CPUsPer1k = 0
		}
		rep.Nginx = &n
		if n.RPS > 0 {
			rep.RatioSampanToNginx = rep.Sampan.RPS / n.RPS
		}
	}
	// Latency at half of Sampan's peak, open loop, for the floor and for
	// Sampan at the same rate: what Sampan adds when not saturated.
	rate := rep.Sampan.RPS / 2
	if o.OpenRate > 0 {
		rate = o.OpenRate
	}
	if rate >= 1 {
		runtime.GOMAXPROCS(o.Procs)
		rep.HalfPeak = halfPeak(ctx, o, rate, body, hdr, floorURL+"/echo", target, progress)
	}
	return rep, nil
}

// alternate measures the floor and Sampan once per round, in the order
// floor, Sampan, Sampan, floor, … so that neither always runs first and
// a slow spell of the shared machine falls on both; it returns each
// one's measurements, by round.
func alternate(rounds int, floor, sampan func(round int) (samples, error)) (floors, sampans []samples, err error) {
	for i := range rounds {
		first, second := floor, sampan
		if i%2 == 1 {
			first, second = sampan, floor
		}
		a, err := first(i)
		if err != nil {
			return nil, nil, err
		}
		b, err := second(i)
		if err != nil {
			return nil, nil, err
		}
		if i%2 == 1 {
			a, b = b, a
		}
		floors, sampans = append(floors, a), append(sampans, b)
	}
	return floors, sampans, nil
}

// extMeasured sees the CPU time counted outside this process for a
// measurement (nginx's), for tests.
var extMeasured = func(name string, d time.Duration) {}

// measuring is called as each measurement starts, with its name: a test
// sees there what it runs under.
var measuring = func(name string) {}

// minOpenRound is the least time an open-loop round lasts.
const minOpenRound = 500 * time.Millisecond

// halfPeak measures latency open loop at rate, for the floor and for
// Sampan, alternated in rounds as the closed loop is, and pools each
// one's latencies. Each round starts after a collection and a short
// open-loop warm-up, not measured, so that neither target's round pays
// for what the other left behind (garbage, the log's work behind its
// acknowledgements).
func halfPeak(ctx context.Context, o Options, rate float64, body []byte, hdr http.Header, floorURL, target string, progress io.Writer) *HalfPeak {
	per := max(max(o.Duration/2, 2*time.Second)/time.Duration(o.Rounds), minOpenRound)
	warm := max(o.Warmup/time.Duration(o.Rounds), 200*time.Millisecond)
	hp := &HalfPeak{Rate: rate, RateGiven: o.OpenRate > 0}
	fmt.Fprintf(progress, "floor and sampan open loop at %.0f req/s, %d rounds of %v each…\n", rate, o.Rounds, per)
	one := func(name, url string, h http.Header) func(int) (samples, error) {
		return func(int) (samples, error) {
			(&load{duration: warm, maxRequests: o.MaxRequests, body: body, header: h}).runRate(ctx, url, rate)
			runtime.GC()
			measuring(name)
			return (&load{duration: per, maxRequests: o.MaxRequests, body: body, header: h}).runRate(ctx, url, rate), nil
		}
	}
	floors, sampans, _ := alternate(o.Rounds, one("floor open loop", floorURL, nil), one("sampan open loop", target, hdr))
	var floorAll, sampanAll samples
	for i := range floors {
		fr, sr := floors[i].result(), sampans[i].result()
		hp.Rounds = append(hp.Rounds, OpenRound{FloorRequests: fr.Requests, SampanRequests: sr.Requests,
			FloorP99ms: fr.P99ms, SampanP99ms: sr.P99ms, AddedP99ms: sr.P99ms - fr.P99ms})
		floorAll.add(floors[i])
		sampanAll.add(sampans[i])
	}
	hp.Floor, hp.Sampan = floorAll.result(), sampanAll.result()
	hp.AddedP99ms = hp.Sampan.P99ms - hp.Floor.P99ms
	return hp
}

// Stream is what streaming one large body each way through Sampan cost.
type Stream struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	MiBps   float64 `json:"mib_per_s"`
	// RSSBeforeMB and RSSPeakMB are the process's resident set before
	// (freed memory returned to the system first) and at its highest during
	// the exchange (sampled every 20 ms): their difference is what the
	// whole process — client, gateways, backend — grew by.
	RSSBeforeMB float64 `json:"rss_before_mb"`
	RSSPeakMB   float64 `json:"rss_peak_mb"`
	RSSGrowthMB float64 `json:"rss_growth_mb"`
}

// HalfPeak is latency measured open loop at half of Sampan's peak rate.
type HalfPeak struct {
	Rate float64 `json:"rate"`
	// RateGiven is set when the rate was given (Options.OpenRate) rather
	// than half of the peak measured.
	RateGiven bool   `json:"rate_given,omitempty"`
	Floor     Result `json:"floor"`
	Sampan    Result `json:"sampan"`
	// AddedP99ms is Sampan's p99 minus the floor's, at that rate, each
	// over all its rounds.
	AddedP99ms float64 `json:"added_p99_ms"`
	// Rounds are the alternated open-loop measurements pooled above.
	Rounds []OpenRound `json:"rounds"`
}

// OpenRound is one alternated open-loop measurement of each.
type OpenRound struct {
	FloorRequests  int64   `json:"floor_requests"`
	SampanRequests int64   `json:"sampan_requests"`
	FloorP99ms     float64 `json:"floor_p99_ms"`
	SampanP99ms    float64 `json:"sampan_p99_ms"`
	AddedP99ms     float64 `json:"added_p99_ms"`
}

// Print writes the report as a table.
func (r *Report) Print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\trequests\terrors\treq/s\tp50 ms\tp99 ms\tCPU s/1k\tsyscalls/ex\talloc KiB/ex\tRSS MB\t")
	row := func(name string, x Result) {
		cpu, calls, alloc, rss := "", "", "", ""
		if x.CPUsPer1k > 0 {
			cpu = strconv.FormatFloat(x.CPUsPer1k, 'f', 3, 64)
		}
		if x.AllocKiBPerExchange > 0 {
			alloc = strconv.FormatFloat(x.AllocKiBPerExchange, 'f', 1, 64)
		}
		if x.SyscallsPerExchange > 0 {
			calls = strconv.FormatFloat(x.SyscallsPerExchange, 'f', 1, 64)
		}
		if x.RSSMB > 0 {
			rss = strconv.FormatFloat(x.RSSMB, 'f', 0, 64)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t\n", name, x.Requests, x.Errors, x.RPS, x.P50ms, x.P99ms, cpu, calls, alloc, rss)
	}
	row("backend", r.Backend)
	row("floor", r.Floor)
	if r.Nginx != nil {
		row("nginx", *r.Nginx)
	}
	row("sampan", r.Sampan)
	if r.SOAP != nil {
		row("soap", *r.SOAP)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nratio sampan/floor: %.2f  (%d connections, %d-byte bodies, %.0fs each in %d rounds, %d CPUs; Ps: floor %d, sampan %d)\n",
		r.RatioSampanToFloor, r.Config.Connections, r.Config.BodyBytes, r.Config.DurationS, r.Config.Rounds, r.Config.CPUs, r.Config.ProcsFloor, r.Config.ProcsSampan)
	if r.Nginx != nil {
		fmt.Fprintf(w, "ratio sampan/nginx: %.2f  (%s; HTTP/1.1 between its proxies; its CPU counts nginx's processes and this one's)\n", r.RatioSampanToNginx, r.Config.Nginx)
	}
	if r.SOAP != nil {
		fmt.Fprintf(w, "ratio soap/r1: %.2f  (the same exchange as a %d-byte SOAP envelope, alternated with r1's)\n", r.RatioSOAPToR1, r.Config.BodyBytes)
	}
	if r.Config.NginxSkipped != "" {
		fmt.Fprintf(w, "nginx not measured: %s\n", r.Config.NginxSkipped)
	}
	if c := r.Config; c.StateDir != "" {
		fs := c.StateFS
		if fs == "" {
			fs = "file system not known"
		}
		fmt.Fprintf(w, "gateways' state and message logs under %s (%s)", filepath.Dir(filepath.Dir(c.StateDir)), fs)
		if fs == "tmpfs" {
			fmt.Fprint(w, ": in memory, so log syncs cost nothing and nothing would survive a power cut; a gateway's disk gives other figures")
		}
		fmt.Fprintln(w)
	}
	if len(r.Rounds) > 1 {
		fmt.Fprint(w, "per round:")
		for _, x := range r.Rounds {
			fmt.Fprintf(w, "  %.2f (%.0f / %.0f", x.Ratio, x.SampanRPS, x.FloorRPS)
			if x.NginxRPS > 0 {
				fmt.Fprintf(w, "; nginx %.0f", x.NginxRPS)
			}
			fmt.Fprint(w, ")")
		}
		fmt.Fprintln(w)
	}
	if st := r.Stream; st != nil {
		fmt.Fprintf(w, "%d MiB streamed each way through Sampan in %.1f s (%.0f MiB/s); process RSS %.0f -> %.0f MB at its peak (+%.0f MB)\n",
			st.Bytes>>20, st.Seconds, st.MiBps, st.RSSBeforeMB, st.RSSPeakMB, st.RSSGrowthMB)
	}
	if hp := r.HalfPeak; hp != nil {
		at := "at half of Sampan's peak"
		if hp.RateGiven {
			at = "at the rate given"
		}
		fmt.Fprintf(w, "%s (%.0f req/s, open loop): floor p50 %.2f / p99 %.2f ms, sampan p50 %.2f / p99 %.2f ms; p99 added %.2f ms (errors %d / %d)\n",
			at, hp.Rate, hp.Floor.P50ms, hp.Floor.P99ms, hp.Sampan.P50ms, hp.Sampan.P99ms, hp.AddedP99ms, hp.Floor.Errors, hp.Sampan.Errors)
		if len(hp.Rounds) > 1 {
			fmt.Fprint(w, "p99 added per round:")
			for _, x := range hp.Rounds {
				fmt.Fprintf(w, "  %.2f (%.2f - %.2f)", x.AddedP99ms, x.SampanP99ms, x.FloorP99ms)
			}
			fmt.Fprintln(w)
		}
	}
}

// WriteJSON writes the report to a file.
func (r *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// streamHeader marks the request streamed to measure memory.
const streamHeader = "Bench-Stream"

// echo answers with the request body. A request with the stream header is
// read through, counting, and answered with as many bytes of a pattern,
// so that neither direction is held in memory.
func echo(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(streamHeader) != "" {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.Copy(w, &pattern{n: n})
		return
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	if err != nil {
		http.Error(w, "read body", http.StatusBadRequest)
		return
	}
	ct := "application/octet-stream"
	if soap.IsSOAP(r.Header.Get("Content-Type")) {
		// A SOAP request is echoed as its own answer: same header.
		ct = soap.ContentTypeSOAP
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.Write(b)
}

// serve runs h on a loopback listener, with TLS when tc is set.
func serve(h http.Handler, tc *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	if tc != nil {
		srv.TLSConfig = tc
		go srv.ServeTLS(ln, "", "")
	} else {
		go srv.Serve(ln)
	}
	return ln, nil
}

// startFloor chains two standard-library reverse proxies in front of the
// backend: the first takes plain HTTP and forwards over mutual TLS 1.3,
// speaking proto as the gateways do to each other, to the second, which
// forwards to the backend. No signing, no
// logging, no policy: the least any secure exchange must cost.
func startFloor(backend, proto string) (string, func(), error) {
	fp, err := newFloorPKI("bench floor CA")
	if err != nil {
		return "", nil, err
	}
	serverCert, clientCert := fp.server, fp.client
	roots := x509.NewCertPool()
	roots.AddCert(fp.ca.Cert)
	bu, _ := url.Parse(backend)
	quiet := log.New(io.Discard, "", 0) // cancelled requests at the end of a run are expected
	inner := httputil.NewSingleHostReverseProxy(bu)
	inner.ErrorLog = quiet
	inner.Transport = &http.Transport{MaxIdleConnsPerHost: 256, DisableCompression: true}
	innerLn, err := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		floorLink(r.Proto)
		inner.ServeHTTP(w, r)
	}), &tls.Config{
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{serverCert},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots, NextProtos: []string{"h2", "http/1.1"},
	})
	if err != nil {
		return "", nil, err
	}
	iu, _ := url.Parse("https://" + innerLn.Addr().String())
	outer := httputil.NewSingleHostReverseProxy(iu)
	outer.ErrorLog = quiet
	outer.Transport = &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: roots, Certificates: []tls.Certificate{clientCert}, NextProtos: []string{proto}},
		ForceAttemptHTTP2:   proto == gateway.PeerHTTP2,
		MaxIdleConnsPerHost: 256,
		DisableCompression:  true,
	}
	outerLn, err := serve(outer, nil)
	if err != nil {
		innerLn.Close()
		return "", nil, err
	}
	return "http://" + outerLn.Addr().String(), func() { outerLn.Close(); innerLn.Close() }, nil
}

// floorLink sees the protocol of each request between the floor's
// proxies (for tests).
var floorLink = func(proto string) {}

// usage is what the process used over a measurement.
type usage struct {
	cpu    time.Duration
	calls  int64 // read and write system calls (Linux; 0 elsewhere)
	allocs int64 // bytes allocated on the Go heap
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

func readUsage() usage {
	metrics.Read(allocSample)
	var allocs int64
	if allocSample[0].Value.Kind() == metrics.KindUint64 {
		allocs = int64(allocSample[0].Value.Uint64())
	}
	return usage{cpu: cpuTime(), calls: procIO("syscr") + procIO("syscw"), allocs: allocs}
}

func (u usage) minus(v usage) usage {
	return usage{u.cpu - v.cpu, u.calls - v.calls, u.allocs - v.allocs}
}
func (u usage) plus(v usage) usage {
	return usage{u.cpu + v.cpu, u.calls + v.calls, u.allocs + v.allocs}
}

// fill sets a result's CPU and system calls per exchange.
func (u usage) fill(r *Result) {
	if r.Requests == 0 {
		return
	}
	r.CPUsPer1k = u.cpu.Seconds() / float64(r.Requests) * 1000
	r.SyscallsPerExchange = float64(u.calls) / float64(r.Requests)
	r.AllocKiBPerExchange = float64(u.allocs) / float64(r.Requests) / 1024
}

// procIO returns a counter of /proc/self/io, or 0.
func procIO(field string) int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime returns the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procStatus returns a /proc/self/status figure in bytes, or 0.
func procStatus(field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// pattern is n bytes of a repeating pattern.
type pattern struct{ n, off int64 }

func (p *pattern) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	b = b[:min(int64(len(b)), p.n-p.off)]
	for i := range b {
		b[i] = byte('a' + (p.off+int64(i))%26)
	}
	p.off += int64(len(b))
	return len(b), nil
}

// stream sends one body of size bytes through url and reads the answer of
// the same size, sampling the process's resident set meanwhile.
func stream(ctx context.Context, url string, hdr http.Header, size int64) (*Stream, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, &pattern{n: size})
	if err != nil {
		return nil, err
	}
	req.ContentLength = size
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set(streamHeader, "1")
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	// Return freed memory first, so that the growth counts what the
	// exchange needed, not what the heap happened to hold.
	debug.FreeOSMemory()
	st := &Stream{Bytes: size, RSSBeforeMB: float64(procStatus("VmRSS")) / (1 << 20)}
	peak := st.RSSBeforeMB
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				peak = max(peak, float64(procStatus("VmRSS"))/(1<<20))
			}
		}
	}()
	start := time.Now()
	resp, err := (&http.Client{Transport: tr}).Do(req)
	var n int64
	if err == nil {
		n, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if err == nil && (resp.StatusCode != http.StatusOK || n != size) {
			err = fmt.Errorf("answered %d with %d bytes, want 200 with %d", resp.StatusCode, n, size)
		}
	}
	close(done)
	<-sampled
	if err != nil {
		return nil, err
	}
	st.Seconds = time.Since(start).Seconds()
	st.MiBps = float64(size) / (1 << 20) / st.Seconds
	st.RSSPeakMB = max(peak, float64(procStatus("VmRSS"))/(1<<20))
	st.RSSGrowthMB = st.RSSPeakMB - st.RSSBeforeMB
	return st, nil
}

// soapEnvelope is a SOAP request of HCMC's one-stop shop to MOF's
// filings service, padded to size bytes when the headers leave room,
// and how much longer than it the gateway's answer is (the echoed
// envelope with requestHash).
func soapEnvelope(size int) ([]byte, int, error) {
	client, _ := ident.ParseClient("VN/GOV/HCMC/one-stop")
	svc, _ := ident.ParseService("VN/GOV/MOF/business-registry/filings")
	h := soap.Header{Client: soap.ClientFromIdent(client), Service: soap.ServiceFromIdent(svc), ID: "bench", ProtocolVersion: "4.0"}
	build := func(pad int) []byte {
		return h.Marshal([]byte(`<f:filings xmlns:f="urn:sampan:bench"><f:data>` + strings.Repeat("a", pad) + `</f:data></f:filings>`))
	}
	b := build(0)
	if n := size - len(b); n > 0 {
		b = build(n)
	}
	hash, err := soap.HashRequest(b, soap.DigestSHA512)
	if err != nil {
		return nil, 0, err
	}
	ans, err := soap.InsertRequestHash(b, hash, soap.DigestSHA512)
	if err != nil {
		return nil, 0, err
	}
	return b, len(ans) - len(b), nil
}
