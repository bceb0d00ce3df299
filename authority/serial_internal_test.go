package authority

import (
	"testing"
	"time"
)

func TestNextSerial(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_000)
	for _, tc := range []struct {
		name string
		prev uint64
		want uint64
	}{
		{"first publication follows the clock", 0, 1_800_000_000_000},
		{"a counter from before follows the clock", 41, 1_800_000_000_000},
		{"two in one millisecond step by one", 1_800_000_000_000, 1_800_000_000_001},
		{"a clock behind the last serial steps by one", 1_900_000_000_000, 1_900_000_000_001},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := nextSerial(tc.prev, at); got != tc.want {
				t.Errorf("nextSerial(%d) = %d, want %d", tc.prev, got, tc.want)
			}
		})
	}
}
