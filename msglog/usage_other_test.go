//go:build !unix

package msglog

import "time"

// cpuTime is not measured here.
func cpuTime() time.Duration { return 0 }
