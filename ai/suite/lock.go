package suite

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

// Lock pins a suite's content: the SHA-256 of each file read and of the
// whole suite.
type Lock struct {
	// Files maps each file's path (as read, relative to the suite's file
	// system) to the SHA-256 of its bytes, in hex.
	Files map[string]string `json:"files"`
	// Suite is the SHA-256 of the canonical listing: one line per file,
	// sorted by path, "<hex digest>  <path>\n" — the output of
	// `sha256sum` over the files, sorted by path.
	Suite string `json:"suite"`
}

func newLock(files map[string][]byte) Lock {
	l := Lock{Files: map[string]string{}}
	for name, b := range files {
		d := sha256.Sum256(b)
		l.Files[name] = hex.EncodeToString(d[:])
	}
	l.Suite = l.digest()
	return l
}

func (l Lock) digest() string {
	names := make([]string, 0, len(l.Files))
	for n := range l.Files {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		b.WriteString(l.Files[n] + "  " + n + "\n")
	}
	d := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(d[:])
}

// Check compares a suite's lock with a recorded one and names the first
// file added, removed or changed.
func (l Lock) Check(recorded Lock) error {
	names := map[string]bool{}
	for n := range l.Files {
		names[n] = true
	}
	for n := range recorded.Files {
		names[n] = true
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	for _, n := range sorted {
		a, inL := l.Files[n]
		b, inR := recorded.Files[n]
		switch {
		case !inR:
			return fmt.Errorf("suite lock: %s is not in the recorded suite", n)
		case !inL:
			return fmt.Errorf("suite lock: %s is missing", n)
		case a != b:
			return fmt.Errorf("suite lock: %s has changed (sha256 %s, recorded %s)", n, a, b)
		}
	}
	if l.Suite != recorded.Suite {
		return fmt.Errorf("suite lock: suite digest %s, recorded %s", l.Suite, recorded.Suite)
	}
	return nil
}

// Verify re-reads the locked files from fsys and checks them against the
// lock.
func (l Lock) Verify(fsys fs.FS) error {
	now := map[string][]byte{}
	for n := range l.Files {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return fmt.Errorf("suite lock: %w", err)
		}
		now[n] = b
	}
	return newLock(now).Check(l)
}
