package bench

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/internal/procs"
)

func TestRunMeasuresAllThree(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	var mu sync.Mutex
	ran := map[string][]int{} // measurement → the Ps it started with
	measuring = func(name string) {
		mu.Lock()
		ran[name] = append(ran[name], runtime.GOMAXPROCS(0))
		mu.Unlock()
	}
	defer func() { measuring = func(string) {} }()
	dir := t.TempDir()
	// An nginx found on the PATH that does not start is left out, with a
	// note: the run goes on.
	t.Setenv("PATH", fakeNginx(t)+string(os.PathListSeparator)+os.Getenv("PATH"))
	rep, err := Run(t.Context(), Options{Duration: 600 * time.Millisecond, Warmup: 100 * time.Millisecond, Connections: 4, BodySize: 512, Rounds: 2, StreamBytes: 8 << 20, Dir: dir}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Nginx != nil || rep.RatioSampanToNginx != 0 || !strings.Contains(rep.Config.NginxSkipped, "no such directive") {
		t.Errorf("nginx that does not start: measured %+v, note %q", rep.Nginx, rep.Config.NginxSkipped)
	}
	// The gateways kept their state under the directory given, and it is
	// gone afterwards.
	if left, err := os.ReadDir(dir); err != nil || len(left) != 0 || !strings.HasPrefix(rep.Config.StateDir, dir+string(filepath.Separator)) {
		t.Errorf("state in %q, left under %s: %v (%v)", rep.Config.StateDir, dir, left, err)
	}
	if want := fsType(dir); rep.Config.StateFS != want {
		t.Errorf("the state's file system is %q, the directory's %q", rep.Config.StateFS, want)
	}
	// Sampan runs with the gateway's Ps, the floor with Go's default; the
	// process gets its own setting back.
	if rep.Config.PeerProtocol != "http/1.1" || !strings.Contains(rep.Config.Sampan, "(http/1.1)") {
		t.Errorf("peer protocol %q in %q, want the gateway's default, http/1.1", rep.Config.PeerProtocol, rep.Config.Sampan)
	}
	if c := rep.Config; c.ProcsSampan != procs.Gateway() || c.ProcsFloor != procs.Default() || runtime.GOMAXPROCS(0) != before {
		t.Errorf("Ps: floor %d, sampan %d, after the run %d; want %d, %d, %d", c.ProcsFloor, c.ProcsSampan, runtime.GOMAXPROCS(0), procs.Default(), procs.Gateway(), before)
	}
	// Each measurement ran with the Ps it should: two rounds of each
	// alternated one, closed and open loop.
	for name, want := range map[string][]int{
		"backend":          {procs.Default()},
		"floor":            {procs.Default(), procs.Default()},
		"sampan":           {procs.Gateway(), procs.Gateway()},
		"stream":           {procs.Gateway()},
		"floor open loop":  {procs.Gateway(), procs.Gateway()},
		"sampan open loop": {procs.Gateway(), procs.Gateway()},
	} {
		if !slices.Equal(ran[name], want) {
			t.Errorf("%s ran with %v Ps, want %v", name, ran[name], want)
		}
	}
	for name, r := range map[string]Result{"backend": rep.Backend, "floor": rep.Floor, "sampan": rep.Sampan} {
		if r.Requests == 0 || r.Errors != 0 || r.RPS <= 0 || r.P99ms < r.P50ms {
			t.Errorf("%s: %+v", name, r)
		}
	}
	// The streamed body went through whole, each way.
	if st := rep.Stream; st == nil || st.Bytes != 8<<20 || st.Seconds <= 0 || st.RSSPeakMB < st.RSSBeforeMB || st.RSSGrowthMB != st.RSSPeakMB-st.RSSBeforeMB {
		t.Errorf("stream figures %+v", rep.Stream)
	}
	if rep.Sampan.CPUsPer1k <= 0 || rep.Sampan.RSSMB <= 0 || rep.Floor.CPUsPer1k <= 0 {
		t.Errorf("CPU and RSS not measured: floor %+v, sampan %+v", rep.Floor, rep.Sampan)
	}
	// Every exchange allocates (request and answer at least).
	if rep.Floor.AllocKiBPerExchange < 1 || rep.Sampan.AllocKiBPerExchange < 1 {
		t.Errorf("allocation per exchange: floor %v KiB, sampan %v KiB", rep.Floor.AllocKiBPerExchange, rep.Sampan.AllocKiBPerExchange)
	}
	// Each exchange reads and writes on several sockets: counted on Linux.
	if _, err := os.Stat("/proc/self/io"); err == nil && (rep.Floor.SyscallsPerExchange < 2 || rep.Sampan.SyscallsPerExchange < 2) {
		t.Errorf("system calls per exchange not measured: floor %v, sampan %v", rep.Floor.SyscallsPerExchange, rep.Sampan.SyscallsPerExchange)
	}
	// The open-loop run at half of Sampan's peak drives both targets at
	// that rate: about half as many requests per second as the peak.
	hp := rep.HalfPeak
	if hp == nil || hp.Rate != rep.Sampan.RPS/2 || hp.Sampan.Requests == 0 || hp.Floor.Requests == 0 || hp.Sampan.Errors != 0 ||
		hp.Sampan.RPS > hp.Rate*1.2 || hp.AddedP99ms != hp.Sampan.P99ms-hp.Floor.P99ms {
		t.Errorf("half-peak figures %+v", hp)
	}
	// The open loop alternates too, and pools its rounds.
	if hp != nil {
		if len(hp.Rounds) != 2 {
			t.Fatalf("open-loop rounds %+v, want 2", hp.Rounds)
		}
		var floors, sampans int64
		for i, r := range hp.Rounds {
			if r.FloorRequests == 0 || r.SampanRequests == 0 || r.FloorP99ms <= 0 || r.SampanP99ms <= 0 || r.AddedP99ms != r.SampanP99ms-r.FloorP99ms {
				t.Errorf("open-loop round %d: %+v", i, r)
			}
			floors, sampans = floors+r.FloorRequests, sampans+r.SampanRequests
		}
		if hp.Floor.Requests != floors || hp.Sampan.Requests != sampans {
			t.Errorf("pooled requests floor %d, sampan %d; the rounds' add up to %d, %d", hp.Floor.Requests, hp.Sampan.Requests, floors, sampans)
		}
	}
	if want := rep.Sampan.RPS / rep.Floor.RPS; rep.RatioSampanToFloor != want {
		t.Errorf("ratio = %v, want %v", rep.RatioSampanToFloor, want)
	}
	// Two alternated rounds, pooled: the pooled rate lies between the
	// rounds' rates.
	if len(rep.Rounds) != 2 {
		t.Fatalf("rounds %+v, want 2", rep.Rounds)
	}
	lo, hi := min(rep.Rounds[0].SampanRPS, rep.Rounds[1].SampanRPS), max(rep.Rounds[0].SampanRPS, rep.Rounds[1].SampanRPS)
	for i, r := range rep.Rounds {
		if r.FloorRPS <= 0 || r.SampanRPS <= 0 || r.Ratio != r.SampanRPS/r.FloorRPS {
			t.Errorf("round %d: %+v", i, r)
		}
	}
	if rep.Sampan.RPS < lo*0.999 || rep.Sampan.RPS > hi*1.001 {
		t.Errorf("pooled sampan rate %v outside the rounds' %v…%v", rep.Sampan.RPS, lo, hi)
	}
	out := filepath.Join(t.TempDir(), "bench.json")
	if err := rep.WriteJSON(out); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"backend", "floor", "sampan", "ratio_sampan_to_floor", "config", "half_peak", "rounds", "stream"} {
		if _, ok := m[k]; !ok {
			t.Errorf("report JSON lacks %q", k)
		}
	}
}

// The floor's proxies speak to each other what the gateways do.
func TestFloorSpeaksThePeerProtocol(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(echo))
	defer backend.Close()
	for proto, want := range map[string]string{"http/1.1": "HTTP/1.1", "h2": "HTTP/2.0"} {
		var mu sync.Mutex
		var saw []string
		floorLink = func(p string) {
			mu.Lock()
			saw = append(saw, p)
			mu.Unlock()
		}
		url, stop, err := startFloor(backend.URL, proto)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(url+"/echo", "text/plain", strings.NewReader("hello"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		stop()
		mu.Lock()
		if resp.StatusCode != 200 || string(b) != "hello" || !slices.Equal(saw, []string{want}) {
			t.Errorf("%s: %d %q, the proxies spoke %v; want 200, the body echoed, %s", proto, resp.StatusCode, b, saw, want)
		}
		mu.Unlock()
	}
	floorLink = func(string) {}
}

// TestAlternate: rounds run floor, Sampan, Sampan, floor, …, and each
// measurement comes back in its own target's list, in round order; an
// error stops the rounds.
func TestAlternate(t *testing.T) {
	var order []string
	mark := func(name string, base time.Duration) func(int) (samples, error) {
		return func(i int) (samples, error) {
			order = append(order, name)
			return samples{elapsed: base + time.Duration(i)}, nil
		}
	}
	floors, sampans, err := alternate(4, mark("floor", 100), mark("sampan", 200))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, " "); got != "floor sampan sampan floor floor sampan sampan floor" {
		t.Errorf("order %q", got)
	}
	for i := range 4 {
		if floors[i].elapsed != time.Duration(100+i) || sampans[i].elapsed != time.Duration(200+i) {
			t.Errorf("round %d: floor %v, sampan %v", i, floors[i].elapsed, sampans[i].elapsed)
		}
	}
	calls := 0
	boom := func(int) (samples, error) { calls++; return samples{}, errors.New("boom") }
	if _, _, err := alternate(3, mark("floor", 0), boom); err == nil || calls != 1 {
		t.Errorf("error %v after %d calls; want the first failure to stop the rounds", err, calls)
	}
}

func TestRunRefusesBadOptions(t *testing.T) {
	if _, err := Run(t.Context(), Options{Connections: -1}, io.Discard); err == nil {
		t.Error("negative connections accepted")
	}
	if _, err := Run(t.Context(), Options{BodySize: 1 << 30}, io.Discard); err == nil {
		t.Error("a 1 GiB body accepted")
	}
	if _, err := Run(t.Context(), Options{Duration: -time.Second}, io.Discard); err == nil {
		t.Error("a negative duration accepted")
	}
	if _, err := Run(t.Context(), Options{Procs: -1}, io.Discard); err == nil {
		t.Error("negative Ps accepted")
	}
	if _, err := Run(t.Context(), Options{PeerProtocol: "h3"}, io.Discard); err == nil {
		t.Error("an unknown peer protocol accepted")
	}
	if _, err := Run(t.Context(), Options{Protocol: "grpc"}, io.Discard); err == nil {
		t.Error("an unknown client protocol accepted")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{file, filepath.Join(t.TempDir(), "missing")} {
		if _, err := Run(t.Context(), Options{Dir: d}, io.Discard); err == nil || !strings.Contains(err.Error(), "dir: ") {
			t.Errorf("state under %s: %v, want a refusal", d, err)
		}
	}
	if _, err := Run(t.Context(), Options{Rounds: -2}, io.Discard); err == nil {
		t.Error("negative rounds accepted")
	}
	if _, err := Run(t.Context(), Options{Rounds: 3, CPUProfile: filepath.Join(t.TempDir(), "cpu")}, io.Discard); err == nil {
		t.Error("a profile over several rounds accepted")
	}
}

// fsType names the file systems logs are likely to sit on.
func TestFSType(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("file systems are named on Linux only")
	}
	if _, err := os.Stat("/dev/shm"); err == nil {
		if got := fsType("/dev/shm"); got != "tmpfs" {
			t.Errorf("/dev/shm is on %q, want tmpfs", got)
		}
	}
	if got := fsType(filepath.Join(t.TempDir(), "missing")); got != "" {
		t.Errorf("a missing directory is on %q, want \"\"", got)
	}
}

// The printed report says where the logs were, and warns when that was
// memory.
func TestPrintNamesTheLogsFileSystem(t *testing.T) {
	for fs, memory := range map[string]bool{"tmpfs": true, "ext4": false} {
		var b strings.Builder
		r := &Report{Config: Config{StateDir: "/srv/bench/sampan-bench-1/sandbox", StateFS: fs}}
		r.Print(&b)
		out := b.String()
		if !strings.Contains(out, "message logs under /srv/bench ("+fs+")") || strings.Contains(out, "in memory") != memory {
			t.Errorf("%s: printed %q", fs, out)
		}
	}
}

// TestRunSOAP: with the SOAP protocol, r1 and SOAP are measured in
// alternation through the same gateways, every SOAP answer is the echoed
// envelope with requestHash (anything else counts as an error), and the
// ratio is SOAP's throughput over r1's.
func TestRunSOAP(t *testing.T) {
	rep, err := Run(t.Context(), Options{Duration: 600 * time.Millisecond, Warmup: 100 * time.Millisecond, Connections: 4, BodySize: 1024, Rounds: 2, StreamBytes: -1, Nginx: NginxOff, Protocol: ProtocolSOAP}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if rep.SOAP == nil || rep.SOAP.Requests == 0 || rep.SOAP.Errors != 0 || rep.Sampan.Errors != 0 {
		t.Fatalf("soap %+v, r1 %+v", rep.SOAP, rep.Sampan)
	}
	if want := rep.SOAP.RPS / rep.Sampan.RPS; rep.RatioSOAPToR1 != want || len(rep.Rounds) != 2 || rep.Rounds[0].SOAPRPS == 0 || rep.Config.Protocol != ProtocolSOAP {
		t.Errorf("ratio %v (want %v), rounds %+v, protocol %q", rep.RatioSOAPToR1, want, rep.Rounds, rep.Config.Protocol)
	}
	body, extra, err := soapEnvelope(1024)
	if err != nil || len(body) != 1024 || extra <= 0 {
		t.Errorf("envelope of %d bytes, answer %d longer: %v", len(body), extra, err)
	}
}
