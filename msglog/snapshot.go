package msglog

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/sampan-exchange/sampan/store"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/client"
)

// Snapshot copies the log in dir into dst (which must not exist) while a
// gateway may be appending to it, so that the copy verifies and loses
// no record acknowledged before the copy began. The order makes it
// consistent: first the write-ahead segments (every acknowledged record
// not yet indexed; a segment is removed only after its records are in the
// index, and a torn entry at the end of the newest is recovered as at a
// restart), then the checkpoint, then the tiles it needs (immutable once
// written, and a copy may hold more), then the record index with VACUUM
// INTO (every row the checkpoint's leaves name was committed before the
// leaf), then the rest (keys, certificates, time-stamps, bodies). A
// record both in a copied segment and in the index is committed once at
// the restored gateway's start. A PostgreSQL index is not copied: it is
// backed up with PostgreSQL's own tools.
func Snapshot(ctx context.Context, dir, dst string) error {
	if err := os.Mkdir(dst, 0o700); err != nil {
		return fmt.Errorf("snapshot log: %w", err)
	}
	copyTree := func(sub string, skip func(rel string) bool) error {
		root := filepath.Join(dir, sub)
		return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // a segment removed while listed, or no such directory
				}
				return err
			}
			rel, _ := filepath.Rel(dir, p)
			if skip != nil && skip(filepath.ToSlash(rel)) {
				if d.IsDir() && p != root {
					return filepath.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(dst, rel), 0o700)
			}
			if !d.Type().IsRegular() {
				return fmt.Errorf("%s is not a regular file", p)
			}
			if err := copyFile(p, filepath.Join(dst, rel)); err != nil && !os.IsNotExist(err) {
				return err
			}
			return nil
		})
	}
	// 1. Write-ahead segments.
	if err := copyTree(WALDir, func(rel string) bool { return strings.HasSuffix(rel, walTemp) }); err != nil {
		return fmt.Errorf("snapshot log: segments: %w", err)
	}
	// 2. The checkpoint, then 3. the tiles.
	cp, err := os.ReadFile(filepath.Join(dir, TilesDir, "checkpoint"))
	if err != nil {
		return fmt.Errorf("snapshot log: checkpoint: %w", err)
	}
	if err := copyTree(TilesDir, func(rel string) bool { return rel == TilesDir+"/checkpoint" || strings.Contains(rel, ".tmp") }); err != nil {
		return fmt.Errorf("snapshot log: tiles: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dst, TilesDir, "checkpoint"), cp, 0o644); err != nil {
		return fmt.Errorf("snapshot log: checkpoint: %w", err)
	}
	// 4. The record index.
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err == nil {
		if err := store.VacuumInto(ctx, filepath.Join(dir, IndexFile), filepath.Join(dst, IndexFile)); err != nil {
			return fmt.Errorf("snapshot log: %w", err)
		}
	}
	// 5. The rest.
	err = copyTree(".", func(rel string) bool {
		top, _, _ := strings.Cut(rel, "/")
		return top == WALDir || top == TilesDir || top == IndexFile || strings.HasPrefix(top, IndexFile+"-") || strings.HasSuffix(rel, ".tmp")
	})
	if err != nil {
		return fmt.Errorf("snapshot log: %w", err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Head is a log's latest checkpoint, verified with the log's key.
type Head struct {
	Origin string
	Size   uint64
	Root   []byte
}

// ReadHead reads and verifies the checkpoint of the log in dir.
func ReadHead(ctx context.Context, dir string) (*Head, error) {
	_, v, err := readVerifier(dir)
	if err != nil {
		return nil, err
	}
	f := client.FileFetcher{Root: filepath.Join(dir, TilesDir)}
	cp, _, _, err := client.FetchCheckpoint(ctx, f.ReadCheckpoint, v, v.Name())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	return &Head{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash}, nil
}

// CheckExtends returns nil when the log in newer holds all of old: the
// same origin, and a tree no smaller whose first old.Size leaves have
// old's root (a consistency proof built from newer's tiles). Otherwise it
// says how newer falls short: fewer records, or another history.
func CheckExtends(ctx context.Context, old *Head, newer string) error {
	h, err := ReadHead(ctx, newer)
	if err != nil {
		return err
	}
	if h.Origin != old.Origin {
		return fmt.Errorf("the log is %q, not %q", h.Origin, old.Origin)
	}
	if h.Size < old.Size {
		return fmt.Errorf("the log holds %d records, fewer than the %d in place", h.Size, old.Size)
	}
	if h.Size == old.Size {
		if !bytes.Equal(h.Root, old.Root) {
			return fmt.Errorf("the log of %d records has another head than the one in place", h.Size)
		}
		return nil
	}
	if old.Size == 0 {
		return nil
	}
	f := client.FileFetcher{Root: filepath.Join(newer, TilesDir)}
	pb, err := client.NewProofBuilder(ctx, h.Size, f.ReadTile)
	if err != nil {
		return fmt.Errorf("consistency proof: %w", err)
	}
	cons, err := pb.ConsistencyProof(ctx, old.Size, h.Size)
	if err != nil {
		return fmt.Errorf("consistency proof: %w", err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, old.Size, h.Size, cons, old.Root, h.Root); err != nil {
		return fmt.Errorf("the log does not extend the one in place (another history): %w", err)
	}
	return nil
}

// Missing returns how many of the records the log in dir acknowledged
// beyond the first size leaves of its tree (rows of write-ahead segments,
// and index rows of origin with no leaf or a leaf at or past size) the
// log in other holds neither in its index nor in its segments. A log
// stopped cleanly has no such records; one stopped uncleanly may, until
// it is opened again. Indexes are read from copies made in scratch (a
// directory that exists): neither log is written.
func Missing(ctx context.Context, dir, origin string, size uint64, other, scratch string) (int, error) {
	beyond := map[[32]byte]bool{}
	if err := walDigests(dir, beyond); err != nil {
		return 0, err
	}
	err := withIndex(ctx, dir, scratch, func(db *sql.DB) error {
		rows, err := db.QueryContext(ctx, `SELECT digest, leaf_index FROM records WHERE log = ?`, origin)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var d []byte
			var leaf sql.NullInt64
			if err := rows.Scan(&d, &leaf); err != nil {
				return err
			}
			k := [32]byte(d)
			if leaf.Valid && uint64(leaf.Int64) < size {
				delete(beyond, k) // in the tree compared by its checkpoint
				continue
			}
			beyond[k] = true
		}
		return rows.Err()
	})
	if err != nil || len(beyond) == 0 {
		return 0, err
	}
	held := map[[32]byte]bool{}
	if err := walDigests(other, held); err != nil {
		return 0, err
	}
	err = withIndex(ctx, other, scratch, func(db *sql.DB) error {
		for d := range beyond {
			var n int
			if err := db.QueryRowContext(ctx, `SELECT count(*) FROM records WHERE digest = ?`, d[:]).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				held[d] = true
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for d := range beyond {
		if !held[d] {
			n++
		}
	}
	return n, nil
}

func walDigests(dir string, into map[[32]byte]bool) error {
	wf, err := listWAL(dir)
	if err != nil {
		return fmt.Errorf("write-ahead segments: %w", err)
	}
	reads, err := readSegments(wf.segments)
	if err != nil {
		return fmt.Errorf("write-ahead segments: %w", err)
	}
	for _, s := range reads {
		for _, r := range s.rows {
			into[r.digest] = true
		}
	}
	return nil
}

// withIndex runs f on a copy of the record index of the log in dir (none
// when it has no SQLite index).
func withIndex(ctx context.Context, dir, scratch string, f func(*sql.DB) error) error {
	if _, err := os.Stat(filepath.Join(dir, IndexFile)); err != nil {
		return nil
	}
	cp, err := os.MkdirTemp(scratch, ".index-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cp)
	p := filepath.Join(cp, IndexFile)
	if err := store.VacuumInto(ctx, filepath.Join(dir, IndexFile), p); err != nil {
		return fmt.Errorf("record index: %w", err)
	}
	db, err := sql.Open("sqlite", "file:"+p+"?mode=ro")
	if err != nil {
		return fmt.Errorf("record index: %w", err)
	}
	defer db.Close()
	if err := f(db); err != nil {
		return fmt.Errorf("record index: %w", err)
	}
	return nil
}
