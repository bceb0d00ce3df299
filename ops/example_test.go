package ops_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	"github.com/sampan-exchange/sampan/ops"
)

// A daemon builds its operations listener from its registry, its
// readiness and the handlers it mounts, then runs it until its context
// ends.
func ExampleServer() {
	s, err := ops.NewServer(ops.Config{
		Addr:     "127.0.0.1:0",
		Gatherer: ops.NewRegistry(),
		Ready:    func() (bool, any) { return true, map[string]int{"serial": 42} },
		Handlers: map[string]http.Handler{"GET /records/": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "[]")
		})},
		Token: "a-long-random-operations-token",
		Log:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		panic(err)
	}
	if err := s.Listen(); err != nil {
		panic(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/records/"} {
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	stop()
	fmt.Println("stopped:", <-done)
	// Output:
	// /healthz 200
	// /readyz 200
	// /metrics 401
	// /records/ 401
	// stopped: <nil>
}
