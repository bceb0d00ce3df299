package procs

import (
	"runtime"
	"testing"
)

func TestGatewayHasSpares(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	if got, want := Gateway(), Default()+Spare; got != want {
		t.Fatalf("Gateway() = %d, want %d (default %d plus %d)", got, want, Default(), Spare)
	}
	prev := runtime.GOMAXPROCS(0)
	defer runtime.GOMAXPROCS(prev)
	if n := Set(0); n != Default()+Spare || runtime.GOMAXPROCS(0) != n {
		t.Fatalf("Set(0) = %d and GOMAXPROCS is %d, want both %d", n, runtime.GOMAXPROCS(0), Default()+Spare)
	}
	if n := Set(5); n != 5 || runtime.GOMAXPROCS(0) != 5 {
		t.Fatalf("Set(5) = %d and GOMAXPROCS is %d, want 5", n, runtime.GOMAXPROCS(0))
	}
}

func TestEnvironmentWins(t *testing.T) {
	t.Setenv("GOMAXPROCS", "3")
	if got := Gateway(); got != Default() {
		t.Fatalf("with GOMAXPROCS set, Gateway() = %d, want Go's own choice %d", got, Default())
	}
	// Values Go ignores leave the spares.
	for _, v := range []string{"0", "-2", "abc"} {
		t.Setenv("GOMAXPROCS", v)
		if got := Gateway(); got != Default()+Spare {
			t.Errorf("with GOMAXPROCS=%q, Gateway() = %d, want %d", v, got, Default()+Spare)
		}
	}
}

func TestQuota(t *testing.T) {
	for in, want := range map[string]float64{
		"150000 100000\n": 1.5,
		"max 100000\n":    0,
		"50000 100000":    0.5,
		"":                0,
		"-1 100000":       0,
		"abc 100000":      0,
	} {
		if got := quota(in); got != want {
			t.Errorf("quota(%q) = %v, want %v", in, got, want)
		}
	}
	if c := CPUs(); c <= 0 || c > float64(runtime.NumCPU()) {
		t.Errorf("CPUs() = %v with %d CPUs", c, runtime.NumCPU())
	}
}
