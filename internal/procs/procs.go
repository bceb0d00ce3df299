// Package procs sizes the Go scheduler of a process that runs gateways.
//
// A gateway's message log syncs files: write-ahead segments, the record
// index, the Merkle tiles. A goroutine blocked in such a system call keeps
// its processor (P) until the runtime's monitor takes it back, and the
// monitor, when it has had little to take back lately, sleeps up to 10 ms
// between looks. At the peak, a trace of the benchmark showed the two Ps
// of a 2-CPU machine held by syncs for a fifth of the time (most syncs
// took 0.3–2 ms and were never taken back): the CPUs stood idle while
// exchanges waited for a P. Spare Ps keep the CPUs busy during syncs; the
// operating system shares the CPUs between the threads. A log has three
// writers that sync (segments, index, tiles); with the benchmark's
// rounds alternated in one run, one spare P carried 13 % more exchanges
// than none and two a further 4 %, at the same CPU per exchange
// (docs/design/performance.md).
//
// GOMAXPROCS, when set in the environment, is left as it is.
package procs

import (
	"os"
	"runtime"
)

// Spare is how many Ps a gateway's process runs with beyond Go's default
// (the CPUs it may use).
const Spare = 2

// base is Go's choice at start: GOMAXPROCS from the environment, or the
// CPUs this process may use.
var base = runtime.GOMAXPROCS(0)

// Default is the number of Ps Go chose at start.
func Default() int { return base }

// Gateway is the number of Ps a process running gateways should have:
// Default plus Spare, or Default when GOMAXPROCS is set in the
// environment.
func Gateway() int {
	if os.Getenv("GOMAXPROCS") != "" {
		return base
	}
	return base + Spare
}

// Set makes the process run with n Ps (n < 1: Gateway) and returns the
// number it now has.
func Set(n int) int {
	if n < 1 {
		n = Gateway()
	}
	runtime.GOMAXPROCS(n)
	return n
}
