package warm

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// deep uses about n × 600 bytes of stack and reports where its deepest
// frame lies.
//
//go:noinline
func deep(n int, at *uintptr) byte {
	var pad [512]byte
	pad[n%len(pad)] = byte(n)
	if n == 0 {
		var x byte
		*at = uintptr(unsafe.Pointer(&x))
		return x
	}
	return deep(n-1, at) + pad[(n*7)%len(pad)]
}

func waitIdle(t *testing.T, p *Pool, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); p.Idle() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("idle workers: %d, want %d", p.Idle(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// A worker keeps its grown stack across requests and collections: the
// deepest frame of the second request lies where that of the first did.
// Without the ballast the collection shrinks the waiting worker's stack
// and the second request grows (and moves) it again.
func TestWorkerKeepsItsStack(t *testing.T) {
	p := New(4)
	defer p.Close()
	var at uintptr
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deep(30, &at) // about 18 KiB
	}))
	serve := func() uintptr {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		return at
	}
	first := serve()
	for i := range 3 {
		waitIdle(t, p, 1)
		runtime.GC()
		runtime.GC()
		if got := serve(); got != first {
			t.Fatalf("request %d: deepest frame at %#x, first request's at %#x: the stack was moved", i+2, got, first)
		}
	}
}

// Requests never queue: each finds a worker at once, however many run.
func TestRequestsRunConcurrently(t *testing.T) {
	p := New(8)
	defer p.Close()
	const n = 50
	var started sync.WaitGroup
	started.Add(n)
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		started.Wait() // every request runs at the same time, or none ends
		fmt.Fprint(w, r.URL.Path)
	}))
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			rec := httptest.NewRecorder()
			path := fmt.Sprintf("/%d", i)
			h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
			if rec.Body.String() != path {
				errs <- fmt.Errorf("request %s answered %q", path, rec.Body.String())
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// Eight wait for the next requests; the others ended.
	waitIdle(t, p, 8)
	p.Close()
	waitIdle(t, p, 0)
}

// One request after another is served by one worker: the worker waits
// again before its caller is released, so the next request finds it.
func TestSequentialRequestsShareOneWorker(t *testing.T) {
	p := New(4)
	defer p.Close()
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	for i := range 500 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		if n := p.Idle(); n != 1 {
			t.Fatalf("after request %d: %d idle workers, want 1", i+1, n)
		}
	}
}

// A worker that finishes after Close ends instead of waiting.
func TestWorkerEndsAfterClose(t *testing.T) {
	p := New(4)
	started, release := make(chan struct{}, 1), make(chan struct{})
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case started <- struct{}{}:
		default:
		}
		<-release
	}))
	done := make(chan struct{})
	go func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		close(done)
	}()
	<-started // the worker is under way when the pool closes
	p.Close()
	close(release)
	<-done
	if n := p.Idle(); n != 0 {
		t.Fatalf("idle workers after Close: %d, want 0", n)
	}
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) // still serves
	if n := p.Idle(); n != 0 {
		t.Fatalf("idle workers after a request past Close: %d, want 0", n)
	}
}

// Close ends the waiting workers' goroutines, not only their count.
func TestCloseEndsWaitingWorkers(t *testing.T) {
	p := New(16)
	var started sync.WaitGroup
	const n = 10
	started.Add(n)
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Done()
		started.Wait() // n workers at once
	}))
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil)) })
	}
	wg.Wait()
	if got := p.Idle(); got != n {
		t.Fatalf("idle workers: %d, want %d", got, n)
	}
	// Workers of pools that earlier tests closed may still be ending.
	for deadline := time.Now().Add(5 * time.Second); workers() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d worker goroutines, want %d", workers(), n)
		}
		time.Sleep(time.Millisecond)
	}
	p.Close()
	for deadline := time.Now().Add(5 * time.Second); workers() > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("%d worker goroutines after Close: they did not end", workers())
		}
		time.Sleep(time.Millisecond)
	}
}

// workers counts the goroutines in a worker's serving loop, of any pool.
func workers() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return strings.Count(string(buf[:n]), "warm.(*Pool).serve(")
		}
		buf = make([]byte, 2*len(buf))
	}
}

// recovered serves one request and returns what the calling goroutine
// panicked with.
func recovered(h http.Handler) (v any) {
	defer func() { v = recover() }()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	return nil
}

// A panic in a handler is raised again in the goroutine the server
// called it on, and the worker goes on serving.
func TestPanicsReachTheCaller(t *testing.T) {
	p := New(4)
	defer p.Close()
	var raise any
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { panic(raise) }))

	raise = http.ErrAbortHandler
	if v := recovered(h); v != http.ErrAbortHandler {
		t.Fatalf("ErrAbortHandler came back as %v", v)
	}
	raise = "boom"
	if v, _ := recovered(h).(string); !strings.HasPrefix(v, "boom") || !strings.Contains(v, "TestPanicsReachTheCaller") {
		t.Fatalf("a string panic came back as %q, want it with the handler's stack", v)
	}
	sentinel := errors.New("sentinel")
	raise = sentinel
	if err, _ := recovered(h).(error); !errors.Is(err, sentinel) {
		t.Fatalf("an error panic came back as %v", err)
	}
	if n := p.Idle(); n != 1 {
		t.Fatalf("idle workers: %d, want 1 (the worker survived all three)", n)
	}
	ok := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	rec := httptest.NewRecorder()
	ok.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusTeapot {
		t.Fatalf("after the panics: status %d", rec.Code)
	}
}

// runtime.Goexit in a handler ends the calling goroutine too, as it would
// without the pool, instead of leaving it waiting.
func TestGoexitEndsTheCaller(t *testing.T) {
	p := New(4)
	defer p.Close()
	h := p.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { runtime.Goexit() }))
	returned := make(chan bool)
	go func() {
		ret := false
		defer func() { returned <- ret }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
		ret = true
	}()
	select {
	case ret := <-returned:
		if ret {
			t.Fatal("ServeHTTP returned after the handler called runtime.Goexit")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the caller still waits after the handler called runtime.Goexit")
	}
	if n := p.Idle(); n != 0 {
		t.Fatalf("idle workers: %d, want 0 (the worker ended)", n)
	}
}

func BenchmarkDeepHandler(b *testing.B) {
	var at uintptr
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { deep(30, &at) })
	req := httptest.NewRequest("GET", "/", nil)
	run := func(b *testing.B, h http.Handler) {
		b.RunParallel(func(pb *testing.PB) {
			w := httptest.NewRecorder()
			for pb.Next() {
				done := make(chan struct{})
				go func() { // as the HTTP/2 server does: a goroutine per request
					h.ServeHTTP(w, req)
					close(done)
				}()
				<-done
			}
		})
	}
	b.Run("fresh", func(b *testing.B) { run(b, h) })
	b.Run("warm", func(b *testing.B) {
		p := New(64)
		defer p.Close()
		run(b, p.Handler(h))
	})
}
