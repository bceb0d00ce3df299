//go:build !linux

package bench

import (
	"syscall"
	"time"
)

// childAttr: nothing to set.
func childAttr() *syscall.SysProcAttr { return nil }

// treeCPU: only Linux is asked.
func treeCPU(int) time.Duration { return 0 }

// fsType names the file system dir is on; only Linux is asked.
func fsType(string) string { return "" }
