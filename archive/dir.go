package archive

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sampan-exchange/sampan/internal/dirlock"
)

// StagePrefix begins the name of the directory a backup stages its
// database copies in, inside the data directory (where the node's user
// may write, on the same file system); DirSources and Diff leave it out.
const StagePrefix = ".sampan-backup-"

// DirSources lists the regular files under dir as sources, in lexical
// order, leaving out those skip names (by slash-separated path relative
// to dir; a skipped directory is skipped whole), temporary files (*.tmp)
// and backup staging directories. A symlink or other special file fails the listing: an archive
// holds plain files only.
func DirSources(dir string, skip func(rel string) bool) ([]Source, error) {
	dir = filepath.Clean(dir)
	var out []Source
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel := filepath.ToSlash(strings.TrimPrefix(p, dir+string(filepath.Separator)))
		if (skip != nil && skip(rel)) || strings.HasPrefix(rel, StagePrefix) || rel == dirlock.File {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symlink: an archive holds plain files only", p)
		case !d.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", p)
		case strings.HasSuffix(rel, ".tmp"):
			return nil
		}
		if err := CheckPath(rel); err != nil {
			return err
		}
		out = append(out, Source{Path: rel, Disk: p})
		return nil
	})
	return out, err
}

// Diff compares the files of a manifest with those in dir: which the
// archive would replace (other content), add, or remove (in dir, not in
// the archive). Paths skip names are left out on both sides.
func Diff(dir string, m *Manifest, skip func(rel string) bool) (replaced, added, removed []string, err error) {
	replaced, added, removed = []string{}, []string{}, []string{}
	in := map[string]bool{}
	for _, f := range m.Files {
		if skip != nil && skip(f.Path) {
			continue
		}
		in[f.Path] = true
		sum, err := fileSHA256(filepath.Join(dir, filepath.FromSlash(f.Path)))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			added = append(added, f.Path)
		case err != nil:
			return nil, nil, nil, err
		case sum != f.SHA256:
			replaced = append(replaced, f.Path)
		}
	}
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return replaced, added, removed, nil
	}
	cur, err := DirSources(dir, skip)
	if err != nil {
		return nil, nil, nil, err
	}
	for _, s := range cur {
		if !in[s.Path] {
			removed = append(removed, s.Path)
		}
	}
	return replaced, added, removed, nil
}

func fileSHA256(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Replace puts the directory tmp in the place of dir by rename: dir (when
// it exists) moves aside to a sibling named after at, kept for the
// operator to delete, and its path is returned; if tmp cannot take dir's
// place, dir moves back. tmp must be on dir's file system.
func Replace(dir, tmp string, at time.Time) (previous string, err error) {
	dir = filepath.Clean(dir)
	if err := syncDir(tmp); err != nil {
		return "", err
	}
	if _, err := os.Stat(dir); err == nil {
		prev := fmt.Sprintf("%s.before-restore-%s", dir, at.UTC().Format("20060102T150405.000Z"))
		if err := os.Rename(dir, prev); err != nil {
			return "", fmt.Errorf("move the current directory aside: %w", err)
		}
		if err := os.Rename(tmp, dir); err != nil {
			if err2 := os.Rename(prev, dir); err2 != nil {
				return "", fmt.Errorf("put the restored directory in place: %w (and the old one back: %v; it is at %s)", err, err2, prev)
			}
			return "", fmt.Errorf("put the restored directory in place: %w", err)
		}
		previous = prev
	} else if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("put the restored directory in place: %w", err)
	}
	return previous, syncDir(filepath.Dir(dir))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// CheckInterrupted refuses to restore into dir when dir is absent but a
// directory an earlier restore moved aside is beside it: that restore was
// interrupted between its renames, and the directory moved aside, not a
// lost one, is what a restore must compare the archive with.
func CheckInterrupted(dir string) error {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	prev, err := filepath.Glob(dir + ".before-restore-*")
	if err != nil || len(prev) == 0 {
		return err
	}
	return fmt.Errorf("%s is absent but %s is beside it (a restore interrupted between its renames): move it back to %s, or away, and restore again", dir, prev[len(prev)-1], dir)
}
