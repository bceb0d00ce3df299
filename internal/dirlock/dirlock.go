// Package dirlock marks a data directory as in use by a running node, so
// that an offline operation that replaces the directory (a restore) can
// refuse while the node runs instead of pulling the directory from under
// it.
package dirlock

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// File is the lock file's name in the data directory.
const File = ".lock"

// ErrHeld is returned by Lock when another holder has the directory: the
// node runs.
var ErrHeld = errors.New("the data directory is in use by a running node")

// Lock is a held directory lock.
type Lock struct{ f *os.File }

// Acquire takes the lock on dir without waiting. The operating system
// releases it when the process ends, however it ends.
func Acquire(dir string) (*Lock, error) {
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrHeld) {
			return nil, fmt.Errorf("%s: %w", dir, err)
		}
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. It may be called on a nil Lock.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// Held reports whether a node holds dir now. A directory no node has
// locked (no lock file) is not held; Held creates nothing.
func Held(dir string) (bool, error) {
	f, err := os.OpenFile(filepath.Join(dir, File), os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check data directory lock: %w", err)
	}
	defer f.Close()
	if err := lock(f); err != nil {
		if errors.Is(err, ErrHeld) {
			return true, nil
		}
		return false, fmt.Errorf("check data directory lock: %w", err)
	}
	return false, nil
}
