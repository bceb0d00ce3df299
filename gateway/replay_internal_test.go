package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sampan-exchange/sampan/internal/cfg"
	"github.com/sampan-exchange/sampan/r1"
)

// TestReplayFloorSurvivesRestart: a node that accepted a request signed
// ahead of its clock refuses it after a restart, although the request
// was signed after the restart's time; requests signed later pass.
func TestReplayFloorSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	c := ReplayConfig{MaxSkew: cfg.Duration(2 * time.Minute)}
	start := time.Now()
	first, err := newReplayGuard(c, nil, dir, start)
	if err != nil {
		t.Fatal(err)
	}
	ahead := start.Add(30 * time.Second).UTC().Format(signedAtLayout)
	nonce := strings.Repeat("ab", 16)
	st, e := first.check(ahead, nonce, start.Add(time.Second))
	if e != nil {
		t.Fatal(e)
	}
	if e := first.remember(t.Context(), st, start.Add(time.Second)); e != nil {
		t.Fatal(e)
	}
	if _, err := os.Stat(filepath.Join(dir, replayFloorFile)); err != nil {
		t.Fatalf("no floor file: %v", err)
	}
	// Restarted two seconds later: the memory of nonces is gone.
	second, err := newReplayGuard(c, nil, dir, start.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, e := second.check(ahead, nonce, start.Add(3*time.Second)); e == nil || e.Type != r1.TypeServerReplayed {
		t.Fatalf("after the restart, the request accepted before: %v", e)
	}
	later := start.Add(32 * time.Second)
	if _, e := second.check(later.UTC().Format(signedAtLayout), strings.Repeat("cd", 16), later); e != nil {
		t.Fatalf("a request signed after the floor: %v", e)
	}
}

// TestReplayGuardMemory: a nonce is accepted once within its window, and
// malformed signed times and nonces are refused as such.
func TestReplayGuardMemory(t *testing.T) {
	now := time.Now()
	g, err := newReplayGuard(ReplayConfig{MaxSkew: cfg.Duration(time.Minute)}, nil, t.TempDir(), now.Add(-time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	at := now.UTC().Format(signedAtLayout)
	nonce := strings.Repeat("0f", 16)
	for i, want := range []string{"", r1.TypeServerReplayed} {
		st, e := g.check(at, nonce, now)
		if e == nil {
			e = g.remember(t.Context(), st, now)
		}
		if got := typeOf(e); got != want {
			t.Errorf("delivery %d: %q, want %q", i+1, got, want)
		}
	}
	for _, tc := range []struct{ at, nonce, want string }{
		{"", nonce, r1.TypeServerSignature},
		{at, "", r1.TypeServerSignature},
		{now.UTC().Format(time.RFC3339), nonce, r1.TypeServerInvalidReq},
		{at, strings.ToUpper(strings.Repeat("0e", 16)), r1.TypeServerInvalidReq},
		{at, strings.Repeat("0g", 16), r1.TypeServerInvalidReq},
		{at, "0e", r1.TypeServerInvalidReq},
		{now.Add(-61 * time.Second).UTC().Format(signedAtLayout), strings.Repeat("1e", 16), r1.TypeServerReplayed},
		{now.Add(61 * time.Second).UTC().Format(signedAtLayout), strings.Repeat("2e", 16), r1.TypeServerReplayed},
	} {
		if _, e := g.check(tc.at, tc.nonce, now); typeOf(e) != tc.want {
			t.Errorf("check(%q, %q) = %v, want %s", tc.at, tc.nonce, e, tc.want)
		}
	}
}

func typeOf(e *r1.Error) string {
	if e == nil {
		return ""
	}
	return e.Type
}
