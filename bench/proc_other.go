//go:build !linux

package bench

import (
	"syscall"
	"time"
)

// childAttr: nothing to set.
func childAttr() *syscall.SysProcAttr { return nil }

// killGroup: the child alone is killed (stop does it).
func killGroup(int) {}

// treeCPU: only Linux is asked.
func treeCPU(int) time.Duration { return 0 }

// fileLimit: asked for as it is.
func fileLimit(want int) int { return want }

// childCPU says whether treeCPU counts a child's CPU here.
const childCPU = false

// fsType names the file system dir is on; only Linux is asked.
func fsType(string) string { return "" }
