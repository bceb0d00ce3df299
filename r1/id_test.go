package r1

import (
	"fmt"
	"regexp"
	"testing"
	"time"
)

// TestNewIDTimeOrdered checks that generated X-Road-Ids are version 7
// UUIDs carrying their time, ordered as text by time, and unique.
func TestNewIDTimeOrdered(t *testing.T) {
	form := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	t0 := time.UnixMilli(1_790_000_000_000)
	a, b := newID(t0), newID(t0.Add(time.Millisecond))
	for _, id := range []string{a, b, NewID()} {
		if !form.MatchString(id) {
			t.Fatalf("%q is not a version 7 UUID", id)
		}
	}
	if !(a < b) {
		t.Fatalf("ids %q then %q: not ordered by time", a, b)
	}
	if got, want := a[:8]+a[9:13], fmt.Sprintf("%012x", t0.UnixMilli()); got != want {
		t.Fatalf("time field %s, want %s", got, want)
	}
	seen := map[string]bool{}
	for range 10000 {
		id := newID(t0)
		if seen[id] {
			t.Fatalf("id %s made twice", id)
		}
		seen[id] = true
	}
}
