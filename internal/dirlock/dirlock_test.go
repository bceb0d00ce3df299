package dirlock

import (
	"errors"
	"testing"
)

// TestLockExcludes: a held directory cannot be taken again until it is
// released.
func TestLockExcludes(t *testing.T) {
	dir := t.TempDir()
	l, err := Acquire(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(dir); !errors.Is(err, ErrHeld) {
		t.Fatalf("second Acquire while held: %v, want ErrHeld", err)
	}
	if held, err := Held(dir); !held || err != nil {
		t.Fatalf("Held while held: %v, %v", held, err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	if held, err := Held(dir); held || err != nil {
		t.Fatalf("Held after Release: %v, %v", held, err)
	}
	if held, err := Held(t.TempDir()); held || err != nil {
		t.Fatalf("Held on a directory never locked: %v, %v", held, err)
	}
	l2, err := Acquire(dir)
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	l2.Release()
	var none *Lock
	if err := none.Release(); err != nil {
		t.Fatal(err)
	}
}
