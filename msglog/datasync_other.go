//go:build !linux

package msglog

import "os"

// datasync makes a file's data durable.
func datasync(f *os.File) error { return f.Sync() }
