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
)

// ballast is the stack a waiting worker keeps in use: stacks up to four
// times as large are not shrunk while the worker waits.
const ballast = 8 << 10

// Pool runs handlers on warm goroutines. The zero Pool is not usable:
// see New.
type Pool struct {
	maxIdle int

	mu     sync.Mutex
	idle   []*worker // waiting workers; the last one served most recently
	closed bool
}

// A worker waits for its next job on its own channel. The channel holds
// one job, so handing a job over never blocks; Close closes it.
type worker struct {
	jobs chan *job
}

// New returns a pool that keeps at most maxIdle workers waiting; a
// worker that finishes when that many wait ends.
func New(maxIdle int) *Pool {
	return &Pool{maxIdle: max(maxIdle, 1)}
}

// Close ends the waiting workers. Handlers under way finish; a Pool
// used after Close still serves, each request on a goroutine of its own.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, w := range p.idle {
		close(w.jobs)
		p.idle[i] = nil
	}
	p.idle = nil
}

// Idle reports how many workers wait for a request.
func (p *Pool) Idle() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.idle)
}

// take removes and returns the worker that waited last, or nil.
func (p *Pool) take() *worker {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.idle)
	if n == 0 {
		return nil
	}
	w := p.idle[n-1]
	p.idle[n-1] = nil
	p.idle = p.idle[:n-1]
	return w
}

// park adds w to the waiting workers and reports whether it was added:
// not when the pool is closed or maxIdle workers wait already.
func (p *Pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.maxIdle {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

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
		if wk := p.take(); wk != nil {
			wk.jobs <- j
		} else {
			go p.start(j)
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

// start holds the ballast in its frame and serves below it.
//
//go:noinline
func (p *Pool) start(j *job) {
	var b [ballast]byte
	p.serve(j, &b)
}

//go:noinline
func (p *Pool) serve(j *job, b *[ballast]byte) {
	b[0] = 1 // the ballast is used: the compiler keeps it
	w := &worker{jobs: make(chan *job, 1)}
	for j != nil {
		if !p.run(j, w) {
			return
		}
		j = <-w.jobs // nil once Close closed the channel
	}
}

// run serves one job and reports whether the worker waits for another.
// The worker joins the waiting ones before the caller is released, so
// that a caller's next request finds it.
func (p *Pool) run(j *job, w *worker) (wait bool) {
	returned := false
	defer func() {
		if returned {
			wait = p.park(w)
		} else if v := recover(); v != nil {
			// recover returns nil for runtime.Goexit (and, only under
			// GODEBUG=panicnil=1, for panic(nil), taken for Goexit here).
			j.panicked, j.stack = v, debug.Stack()
			wait = p.park(w) // the panic is recovered: the worker goes on
		} else {
			j.goexit = true // this goroutine ends
		}
		close(j.done)
	}()
	j.h.ServeHTTP(j.w, j.r)
	returned = true
	return false
}
