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
	if w := Wait(); w < threshold {
		t.Errorf("busy with goroutines waiting %v, below the threshold %v", w, threshold)
	}
	stop.Store(true)
	wg.Wait()
	waitFor(t, false)
}
