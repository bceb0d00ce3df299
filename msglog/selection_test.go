package msglog

import (
	"strings"
	"testing"
	"time"
)

func TestSelectionMatches(t *testing.T) {
	at := time.Date(2026, 12, 7, 16, 35, 12, 345000000, time.UTC)
	r := &Record{XRoadID: "x", Side: "provider", RequestHash: "h1", RequestAt: at}
	for _, tc := range []struct {
		sel  Selection
		want bool
	}{
		{Selection{XRoadID: "x"}, true},
		{Selection{RequestHash: "h1"}, true},
		{Selection{RequestHash: "h2"}, false},
		{Selection{Side: "provider"}, true},
		{Selection{Side: "consumer"}, false},
		{Selection{At: at}, true},
		{Selection{At: at.Truncate(time.Second)}, true},
		{Selection{At: at.Add(time.Millisecond)}, false},
		{Selection{At: at.Truncate(time.Second).Add(time.Second)}, false},
		{Selection{RequestHash: "h1", Side: "consumer"}, false},
	} {
		if got := tc.sel.matches(r); got != tc.want {
			t.Errorf("%+v matches = %v, want %v", tc.sel, got, tc.want)
		}
	}
	e := &AmbiguousError{XRoadID: "x", Candidates: []Candidate{{Side: "consumer", RequestAt: at, RequestHash: "h1"}, {Side: "provider", RequestAt: at, RequestHash: "h1"}}}
	for _, want := range []string{"2 exchanges", `"x"`, "--request-hash", "--side", "2026-12-07T16:35:12.345Z  consumer  request hash h1"} {
		if !strings.Contains(e.Error(), want) {
			t.Errorf("%q does not say %q", e.Error(), want)
		}
	}
}
