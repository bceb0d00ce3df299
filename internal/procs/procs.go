// Package procs sizes the Go scheduler of a process that runs gateways.
//
// A gateway's message log syncs files: write-ahead segments, the record
// index, the Merkle tiles. A goroutine blocked in such a system call keeps
// its processor (P) until the runtime's monitor takes it back, and the
// monitor, when it has had little to take back lately, sleeps up to 10 ms
// between looks. At the peak, a trace of the benchmark showed the two Ps
// of a 2-CPU machine held by file system calls for about a fifth of the
// time (segment syncs: median 0.27 ms, p99 1.9 ms, 31 of 626 taken
// back): the CPUs stood idle while exchanges waited for a P. Spare Ps
// keep the CPUs busy during syncs; the operating system shares the CPUs
// between the threads. A log has three writers that sync (segments,
// index, tiles). With the benchmark's rounds alternated in one run, one
// spare P carried 13 % more exchanges than none at the same CPU per
// exchange, and two a further 4 % (a weaker result: 6 of 8 rounds;
// docs/design/performance.md).
//
// GOMAXPROCS, when set in the environment, is left as it is.
package procs

import (
	"os"
	"runtime"
	"strconv"
	"strings"
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
// environment to a number Go takes.
func Gateway() int {
	// Go itself ignores a value that is not a positive number.
	if n, err := strconv.Atoi(os.Getenv("GOMAXPROCS")); err == nil && n > 0 {
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

// CPUs is how many CPUs the process may use: the machine's, or fewer
// under a cgroup (v2) quota, which may be a fraction. Unlike Default it
// is neither GOMAXPROCS from the environment nor Go's rounding of a
// quota (at least 2).
func CPUs() float64 {
	n := float64(runtime.NumCPU())
	if b, err := os.ReadFile("/sys/fs/cgroup/cpu.max"); err == nil {
		if q := quota(string(b)); q > 0 && q < n {
			n = q
		}
	}
	return n
}

// quota reads a cgroup v2 cpu.max ("QUOTA PERIOD", or "max PERIOD" for
// none): the CPUs it allows, or 0.
func quota(s string) float64 {
	f := strings.Fields(s)
	if len(f) != 2 {
		return 0
	}
	q, err1 := strconv.ParseFloat(f[0], 64)
	p, err2 := strconv.ParseFloat(f[1], 64)
	if err1 != nil || err2 != nil || q <= 0 || p <= 0 {
		return 0
	}
	return q / p
}
