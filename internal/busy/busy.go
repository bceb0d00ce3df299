// Package busy tells whether this process's processors are saturated:
// whether goroutines wait long for one. Work that can be done in
// batches — signatures, log syncs — is batched only then: batching trades
// a little latency for CPU, which pays when CPU is what limits the
// exchanges (goroutines already wait longer for a processor than a batch
// makes them wait) and only adds latency when it is not. A fixed rate
// threshold cannot tell the two apart: the same rate saturates a small
// machine and leaves a large one idle.
//
// Two signals say so. The first is how long goroutines wait, runnable,
// for a processor (P). The second is how much of the CPUs the process
// may use it did use: a gateway runs with spare Ps (package procs), so
// that goroutines get a P at once while the threads wait for a CPU, and
// the first signal alone then misses a saturated process.
package busy

import (
	"math"

	"github.com/sampan-exchange/sampan/internal/procs"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
)

// The scheduler's record of how long goroutines waited, runnable, for a
// processor is read at most every sampleEvery by whichever caller comes
// first; the mean wait since the previous reading is smoothed over about
// smoothing (a reading after a quiet spell counts for the whole spell);
// the process is busy while that is at least threshold.
const (
	sampleEvery = 5 * time.Millisecond
	smoothing   = 20 * time.Millisecond
	threshold   = 250 * time.Microsecond
	// fullUse is the share of the CPUs the process may use (procs.CPUs)
	// from which it is busy, smoothed the same way.
	fullUse = 0.85
)

var (
	start  = time.Now() // readings are timed from here, on the monotonic clock
	last   atomic.Int64 // when the last reading was taken (since start)
	busy   atomic.Bool
	mu     sync.Mutex
	wait   float64 // smoothed mean wait, seconds
	prev   []uint64
	prevAt time.Duration
	sample = []metrics.Sample{{Name: "/sched/latencies:seconds"}}

	use     float64       // smoothed share of the CPUs used
	prevCPU time.Duration // CPU time at the previous reading
	// cpuTime is the CPU time the process has used (user and system; 0
	// where the system does not tell); capacity is the CPUs it may use.
	cpuTime  = processCPU
	capacity = procs.CPUs()
)

// Busy reports whether goroutines have recently waited, on average, at
// least 0.25 ms for a processor, or the process has recently used at
// least 85 % of the CPUs it may use. It is cheap: a caller reads the
// scheduler's figures at most every 5 ms.
func Busy() bool {
	now := int64(time.Since(start))
	if l := last.Load(); now-l >= int64(sampleEvery) && last.CompareAndSwap(l, now) {
		update(time.Duration(now))
	}
	return busy.Load()
}

// Use returns the smoothed share of the CPUs the process may use that it
// recently used (0 to about 1).
func Use() float64 {
	mu.Lock()
	defer mu.Unlock()
	return use
}

// Wait returns the smoothed mean time goroutines recently waited for a
// processor.
func Wait() time.Duration {
	mu.Lock()
	defer mu.Unlock()
	return time.Duration(wait * float64(time.Second))
}

func update(now time.Duration) {
	mu.Lock()
	defer mu.Unlock()
	elapsed := now - prevAt
	if elapsed <= 0 {
		return // a reading taken before the previous one, applied after it
	}
	prevAt = now
	// Both signals decide, on every path out of this reading.
	defer func() { busy.Store(wait >= threshold.Seconds() || use >= fullUse) }()
	// Weighted by the time since the previous reading: a long quiet spell
	// (few or no goroutines scheduled) forgets the busy past at once.
	alpha := 1 - math.Exp(-float64(elapsed)/float64(smoothing))
	// CPU time that is not known (0) or went backwards gives no reading;
	// the first known one only starts the count.
	if cpu := cpuTime(); cpu > 0 && cpu >= prevCPU && capacity > 0 {
		if prevCPU > 0 {
			u := float64(cpu-prevCPU) / float64(elapsed) / capacity
			use += (u - use) * alpha
		}
		prevCPU = cpu
	}
	metrics.Read(sample)
	if sample[0].Value.Kind() != metrics.KindFloat64Histogram {
		return // not provided by this runtime: busy by CPU use alone
	}
	h := sample[0].Value.Float64Histogram()
	if len(prev) != len(h.Counts) {
		prev = append(prev[:0], h.Counts...)
		return
	}
	var n, sum float64
	for i, c := range h.Counts {
		d := float64(c - prev[i])
		prev[i] = c
		if d == 0 {
			continue
		}
		// Bucket i spans Buckets[i] to Buckets[i+1]; the first and last
		// are open-ended.
		lo, hi := h.Buckets[i], h.Buckets[i+1]
		mid := (lo + hi) / 2
		switch {
		case math.IsInf(lo, -1) || lo < 0:
			mid = max(hi, 0)
		case math.IsInf(hi, 1):
			mid = lo
		}
		n += d
		sum += d * mid
	}
	mean := 0.0
	if n > 0 {
		mean = sum / n
	}
	wait += (mean - wait) * alpha
}
