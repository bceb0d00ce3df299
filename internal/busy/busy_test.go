package busy

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor calls Busy until it reports want, for at most 10 s.
func waitFor(t *testing.T, want bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for Busy() != want {
		if time.Now().After(deadline) {
			t.Fatalf("Busy() did not become %v (goroutines wait %v for a processor)", want, Wait())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBusyFollowsTheScheduler: goroutines competing for the processors
// make the process busy; once they stop, it is not.
func TestBusyFollowsTheScheduler(t *testing.T) {
	waitFor(t, false)
	var stop atomic.Bool
	var wg sync.WaitGroup
	for range 4 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for !stop.Load() {
				for i := 0; i < 1e5; i++ {
				}
			}
		})
	}
	waitFor(t, true)
	// Busy by the scheduler's waits, not only by the CPUs used.
	deadline := time.Now().Add(10 * time.Second)
	for Busy(); Wait() < threshold; Busy() {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines four to a processor wait %v, below the threshold %v", Wait(), threshold)
		}
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	waitFor(t, false)
}

// TestBusyFollowsCPUUse: a process using most of the CPUs it may use is
// busy even when its goroutines get a processor at once (spare Ps), and
// stops being so when its use falls. The CPU time is fed in, the readings
// timed by hand.
func TestBusyFollowsCPUUse(t *testing.T) {
	mu.Lock()
	savedCPU, savedCap, savedAt := cpuTime, capacity, prevAt
	now := prevAt
	var cpu time.Duration
	cpuTime, capacity, use, prevCPU = func() time.Duration { return cpu }, 2, 0, 0
	mu.Unlock()
	defer func() {
		mu.Lock()
		cpuTime, capacity, use, prevCPU, prevAt = savedCPU, savedCap, 0, 0, savedAt
		mu.Unlock()
	}()
	// run spends share of both CPUs for d, read every 5 ms.
	run := func(share float64, d time.Duration) {
		for range d / sampleEvery {
			now += sampleEvery
			cpu += time.Duration(share * 2 * float64(sampleEvery))
			update(now)
		}
	}
	cpu = time.Second // a process that has run a while
	run(0.95, 100*time.Millisecond)
	if u := Use(); u < fullUse || u > 0.96 {
		t.Fatalf("using 95 %% of the CPUs, Use() = %.3f", u)
	}
	if !busy.Load() {
		t.Fatal("using 95 % of the CPUs, not busy")
	}
	run(0.30, 100*time.Millisecond)
	if u := Use(); u > 0.35 || u < 0.25 {
		t.Fatalf("using 30 %% of the CPUs, Use() = %.3f", u)
	}
	if busy.Load() && Wait() < threshold {
		t.Fatalf("using 30 %% of the CPUs, goroutines waiting %v: still busy", Wait())
	}
	// CPU time unknown (0) or gone backwards, or a reading older than the
	// previous one: no change.
	before := Use()
	saved := cpu
	cpu = 0
	run(0.95, 50*time.Millisecond)
	cpu = saved - time.Second
	run(0, 50*time.Millisecond)
	update(now - time.Millisecond)
	if u := Use(); u != before {
		t.Fatalf("readings without a usable CPU time moved Use() from %.3f to %.3f", before, u)
	}
	cpu = saved
	run(0.70, 200*time.Millisecond)
	if u := Use(); u >= fullUse {
		t.Fatalf("using 70 %% of the CPUs, Use() = %.3f: busy by use", u)
	}
	// A long quiet spell forgets the busy past at once.
	run(0.95, 100*time.Millisecond)
	now += time.Second
	update(now)
	if u := Use(); u > 0.01 {
		t.Fatalf("after a quiet second, Use() = %.3f", u)
	}
}
