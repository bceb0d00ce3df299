//go:build unix

package dirlock

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive flock on f without waiting. flock belongs to
// the open file, so a second Acquire in the same process conflicts too.
func lock(f *os.File) error {
	err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return ErrHeld
	}
	return err
}
