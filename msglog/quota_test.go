package msglog

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/store/pgtest"
)

// A quota allows exactly its limit per day, and the count survives a
// restart (SQLite, one node).
func TestQuotaSQLite(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 11, 25, 23, 0, 0, 0, time.UTC)
	l := openTest(t, dir)
	for i, want := range []bool{true, true, false} {
		ok, n, err := l.CountCall(t.Context(), "A-1", now, 2)
		if err != nil || ok != want {
			t.Fatalf("call %d: %v (%d counted), %v", i, ok, n, err)
		}
	}
	l.Close(t.Context())
	l = openTest(t, dir)
	defer l.Close(t.Context())
	if ok, n, _ := l.CountCall(t.Context(), "A-1", now, 2); ok || n != 2 {
		t.Fatalf("after restart: allowed %v with %d counted", ok, n)
	}
	// A new day starts afresh.
	if ok, _, _ := l.CountCall(t.Context(), "A-1", now.Add(2*time.Hour), 2); !ok {
		t.Fatal("next day refused")
	}
}

// Two nodes sharing a PostgreSQL index share one count: of 200 calls
// against a limit of 50, exactly 50 pass.
func TestQuotaSharedAcrossNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	var nodes []*Log
	for _, name := range []string{"VN/GOV/MPS/gw1", "VN/GOV/MPS/gw2"} {
		l, err := Open(t.Context(), t.TempDir(), name, Options{IndexDSN: dsn}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close(t.Context())
		nodes = append(nodes, l)
	}
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				ok, _, err := nodes[i%2].CountCall(t.Context(), "VN-SG-SCAM", time.Now(), 50)
				if err != nil {
					t.Error(err)
					return
				}
				if ok {
					passed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if passed.Load() != 50 {
		t.Fatalf("%d calls passed a quota of 50", passed.Load())
	}
}
