// Package warm runs HTTP handlers on long-lived goroutines whose stacks
// have already grown.
//
// Go's HTTP/2 server starts a goroutine for every request. A goroutine
// starts with a small stack (the average of the process's goroutines,
// most of which wait in shallow frames), and a gateway's handler needs
// tens of kilobytes: its stack is grown, and copied, two or three times
// per request. At the benchmark's peak that was about a thirtieth of the
// process's CPU, and with the scheduling of a fresh goroutine per request
// more (docs/design/performance.md, "Handlers on warm goroutines").
//
// A Pool hands each request to an idle worker goroutine, or starts one
// when none is idle: requests never queue behind each other. A worker
// keeps its stack between requests. Go halves, at each collection, the
// stack of a goroutine that uses less than a quarter of it; a worker
// therefore waits below a ballast frame (ballast bytes), so that stacks
// up to four times that size are kept.
package warm

import (
	"fmt"
	"net/http"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
)

// ballast is the stack a waiting worker keeps in use: stacks up to four
// times as large are not shrunk while the worker waits.
const ballast = 8 << 10

// Pool runs handlers on warm goroutines. The zero Pool is not usable:
// see New.
type Pool struct {
	jobs    chan *job
	quit    chan struct{}
	maxIdle int32
	idle    atomic.Int32
	once    sync.Once
}

// New returns a pool that keeps at most maxIdle workers waiting; a
// worker that finishes when that many wait ends.
func New(maxIdle int) *Pool {
	return &Pool{jobs: make(chan *job), quit: make(chan struct{}), maxIdle: int32(max(maxIdle, 1))}
}

// Close ends the waiting workers. Handlers under way finish; a Pool
// used after Close still serves, each request on a goroutine of its own.
func (p *Pool) Close() {
	p.once.Do(func() { close(p.quit) })
}

// Idle reports how many workers wait for a request.
func (p *Pool) Idle() int { return int(p.idle.Load()) }

type job struct {
	h    http.Handler
	w    http.ResponseWriter
	r    *http.Request
	done chan struct{}
	// How the handler ended, when it did not return: a panic's value
	// (and the worker's stack), or runtime.Goexit.
	panicked any
	stack    []byte
	goexit   bool
}

// Handler returns h run on the pool's workers. The calling goroutine
// waits for the handler: a panic in h is raised again there, so that
// the HTTP server handles it as its own; runtime.Goexit likewise.
func (p *Pool) Handler(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j := &job{h: h, w: w, r: r, done: make(chan struct{})}
		select {
		case p.jobs <- j:
		default:
			go p.worker(j)
		}
		<-j.done
		switch {
		case j.goexit:
			runtime.Goexit()
		case j.panicked == http.ErrAbortHandler:
			panic(http.ErrAbortHandler)
		case j.panicked != nil:
			if err, ok := j.panicked.(error); ok {
				panic(fmt.Errorf("%w\n\nraised on a warm goroutine:\n%s", err, j.stack))
			}
			panic(fmt.Sprintf("%v\n\nraised on a warm goroutine:\n%s", j.panicked, j.stack))
		}
	})
}

// worker holds the ballast in its frame and serves below it.
//
//go:noinline
func (p *Pool) worker(j *job) {
	var b [ballast]byte
	p.serve(j, &b)
}

//go:noinline
func (p *Pool) serve(j *job, b *[ballast]byte) {
	b[0] = 1 // the ballast is used: the compiler keeps it
	for {
		if !run(j) {
			return // the handler called runtime.Goexit: this goroutine ends
		}
		if p.idle.Add(1) > p.maxIdle {
			p.idle.Add(-1)
			return
		}
		select {
		case j = <-p.jobs:
			p.idle.Add(-1)
		case <-p.quit:
			p.idle.Add(-1)
			return
		}
	}
}

// run serves one job and reports whether the worker may go on.
func run(j *job) (ok bool) {
	returned := false
	defer func() {
		if !returned {
			// recover returns nil for runtime.Goexit (and, only under
			// GODEBUG=panicnil=1, for panic(nil), taken for Goexit here).
			if v := recover(); v != nil {
				j.panicked, j.stack = v, debug.Stack()
				ok = true // the panic is recovered: the worker goes on
			} else {
				j.goexit = true
			}
		}
		close(j.done)
	}()
	j.h.ServeHTTP(j.w, j.r)
	returned = true
	return true
}
