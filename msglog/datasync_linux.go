package msglog

import (
	"os"
	"syscall"
)

// datasync makes a file's data durable without its metadata (a
// preallocated segment's size and blocks do not change when it is
// written).
func datasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
