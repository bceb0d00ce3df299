package msglog

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"

	"github.com/sampan-exchange/sampan/store"
)

// Report is what Verify found in a sound log.
type Report struct {
	Origin  string
	Size    uint64
	Records uint64
	Purged  uint64
	Purges  int
	// Pending counts records durable in the index whose leaves are not
	// yet in the checkpoint's tree (the gateway appends them within its
	// merge delay, or at its next start).
	Pending uint64
	// Unindexed counts acknowledged records still only in the write-ahead
	// segments (the gateway commits them to the index within 50 ms, or at
	// its next start after a crash); Damaged counts damaged segments,
	// including those kept aside at a start (*.seg.damaged).
	Unindexed  uint64
	Damaged    int
	Timestamps int
}

// Verify checks a log offline: the checkpoint's signature against the
// log's verifier key; that every leaf is the SHA-256 of a well-formed
// record in the index, or of a record purged by a purge record that is
// itself in the log and whose count and digest hash match what it purged;
// the leaf hashes against the tiles and the tree's root against the
// checkpoint; and every time-stamp token. dsn selects a PostgreSQL index
// (empty: SQLite in dir). It returns the first fault found. each, when not
// nil, sees every record still held.
func Verify(ctx context.Context, dir, dsn string, each func(*Record)) (*Report, error) {
	_, v, db, err := openExisting(ctx, dir, dsn)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	origin := v.Name()
	fetcher := client.FileFetcher{Root: filepath.Join(dir, TilesDir)}
	cp, cpRaw, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, v, v.Name())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	rep := &Report{Origin: cp.Origin, Size: cp.Size}
	purges := map[string]*Record{}
	// Leaves are looked up by position. Rows whose position is not yet
	// recorded or not yet confirmed (within the merge delay on a running
	// gateway, or after a crash until the next start; see indexWriter) are
	// looked up by time and digest when their position is not the leaf's;
	// a row below the confirmed position keeps it, so those noted now
	// cover every leaf of the checkpoint read above.
	unplaced, err := unplacedRows(ctx, db, origin)
	if err != nil {
		return nil, err
	}
	byLeaf := db.Q(`SELECT record, purged_by, request_at FROM records WHERE log = ? AND leaf_index = ? AND digest = ?`)
	byKey := db.Q(`SELECT record, purged_by, request_at FROM records WHERE log = ? AND request_at = ? AND digest = ?`)
	var next uint64   // the position of the next leaf: bundles come in order
	var leafErr error // our own finding, clearer than the checker's wrapping
	hasher := func(bundle []byte) (_ [][]byte, err error) {
		defer func() {
			if err != nil && leafErr == nil {
				leafErr = err
			}
		}()
		var eb api.EntryBundle
		if err := eb.UnmarshalText(bundle); err != nil {
			return nil, fmt.Errorf("entry bundle: %w", err)
		}
		out := make([][]byte, 0, len(eb.Entries))
		for _, e := range eb.Entries {
			if len(e) != 32 {
				return nil, fmt.Errorf("a leaf of %d bytes is not a record digest", len(e))
			}
			if next >= cp.Size {
				// A bundle read after the tree grew past the checkpoint
				// (its partial file replaced by the full one): leaves
				// beyond the checkpoint are hashed, not checked — their
				// rows may be younger than this check.
				next++
				out = append(out, rfc6962.DefaultHasher.HashLeaf(e))
				continue
			}
			var data, purgedBy []byte
			var at int64
			err := db.QueryRowContext(ctx, byLeaf, origin, int64(next), e).Scan(&data, &purgedBy, &at)
			if key, ok := unplaced[[32]byte(e)]; ok && errors.Is(err, sql.ErrNoRows) {
				err = db.QueryRowContext(ctx, byKey, origin, key, e).Scan(&data, &purgedBy, &at)
			}
			if err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return nil, fmt.Errorf("leaf %d (%x) has no record in the index", next, e[:8])
				}
				return nil, fmt.Errorf("record index: %w", err)
			}
			next++
			switch {
			case data != nil:
				if d := recordDigest(data); !bytes.Equal(d[:], e) {
					return nil, fmt.Errorf("record of leaf %x was altered: its digest is %x", e[:8], d[:8])
				}
				rec, err := ParseRecord(data)
				if err != nil {
					return nil, fmt.Errorf("record of leaf %x: %w", e[:8], err)
				}
				if rec.RequestAt.UnixMilli() != at {
					return nil, fmt.Errorf("record of leaf %x is filed under another time in the index (%s, the record says %s)", e[:8],
						time.UnixMilli(at).UTC().Format(time.RFC3339Nano), rec.RequestAt.UTC().Format(time.RFC3339Nano))
				}
				if rec.Kind == KindPurge {
					purges[string(e)] = rec
				} else if each != nil {
					each(rec)
				}
				rep.Records++
			case purgedBy != nil:
				rep.Purged++
			default:
				return nil, fmt.Errorf("record of leaf %x is missing and no purge names it", e[:8])
			}
			out = append(out, rfc6962.DefaultHasher.HashLeaf(e))
		}
		return out, nil
	}
	// The checker reads the checkpoint read above, not a newer one.
	f := fsck.New(v.Name(), v, pinnedCheckpoint{FileFetcher: fetcher, raw: cpRaw}, hasher, fsck.Opts{N: 1})
	if err := f.Check(ctx); err != nil {
		if leafErr != nil {
			return nil, leafErr
		}
		return nil, fmt.Errorf("tree does not match its entries or checkpoint: %s", clip(err.Error(), 300))
	}
	if next < cp.Size {
		return nil, fmt.Errorf("checked %d leaves of the %d in the checkpoint", next, cp.Size)
	}
	if err := checkPurges(ctx, db, origin, purges); err != nil {
		return nil, err
	}
	rep.Purges = len(purges)
	var rows uint64
	if err := db.QueryRowContext(ctx, db.Q(`SELECT count(*) FROM records WHERE log = ?`), origin).Scan(&rows); err != nil {
		return nil, fmt.Errorf("record index: %w", err)
	}
	if rows > cp.Size {
		rep.Pending = rows - cp.Size
	}
	if err := countUnindexed(ctx, dir, db, origin, rep); err != nil {
		return nil, err
	}
	n, err := verifyTimestamps(dir, func(b []byte) error {
		_, err := note.Open(b, note.VerifierList(v))
		return err
	})
	if err != nil {
		return nil, err
	}
	rep.Timestamps = n
	return rep, nil
}

// pinnedCheckpoint reads the log's files but always the same checkpoint.
type pinnedCheckpoint struct {
	client.FileFetcher
	raw []byte
}

func (p pinnedCheckpoint) ReadCheckpoint(context.Context) ([]byte, error) { return p.raw, nil }

// unplacedRows returns the request time of each row, by digest, whose
// leaf position is not recorded, or not confirmed.
func unplacedRows(ctx context.Context, db *store.DB, origin string) (map[[32]byte]int64, error) {
	rs, err := db.QueryContext(ctx, db.Q(`SELECT digest, request_at FROM records WHERE log = ? AND (leaf_index IS NULL OR leaf_index >= (SELECT reconciled FROM log_state WHERE log = ?))`), origin, origin)
	if err != nil {
		return nil, fmt.Errorf("record index: %w", err)
	}
	defer rs.Close()
	out := map[[32]byte]int64{}
	for rs.Next() {
		var d []byte
		var at int64
		if err := rs.Scan(&d, &at); err != nil {
			return nil, fmt.Errorf("record index: %w", err)
		}
		if len(d) == 32 {
			out[[32]byte(d)] = at
		}
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("record index: %w", err)
	}
	return out, nil
}

// checkPurges checks that every purged record was purged by a purge
// record in the log, and that each purge removed exactly the records it
// names (or none, if it was interrupted before removing them).
func checkPurges(ctx context.Context, db *store.DB, origin string, purges map[string]*Record) error {
	rs, err := db.QueryContext(ctx, db.Q(`SELECT purged_by, digest FROM records WHERE log = ? AND record IS NULL ORDER BY leaf_index`), origin)
	if err != nil {
		return fmt.Errorf("record index: %w", err)
	}
	defer rs.Close()
	type acc struct {
		n int
		h hash.Hash
	}
	got := map[string]*acc{}
	for rs.Next() {
		var by, d []byte
		if err := rs.Scan(&by, &d); err != nil {
			return err
		}
		if _, ok := purges[string(by)]; !ok {
			return fmt.Errorf("record %x was removed without a purge record in the log", d[:8])
		}
		a := got[string(by)]
		if a == nil {
			a = &acc{h: sha256.New()}
			got[string(by)] = a
		}
		a.n++
		a.h.Write(d)
	}
	if err := rs.Err(); err != nil {
		return err
	}
	for by, a := range got {
		p := purges[by]
		if a.n != p.PurgedCount {
			return fmt.Errorf("purge of %s removed %d records, not the %d it logged", p.RequestAt.Format(time.RFC3339), a.n, p.PurgedCount)
		}
		if hex.EncodeToString(a.h.Sum(nil)) != p.PurgedDigestsSHA256 {
			return fmt.Errorf("purge of %s removed %d records, but not the ones it logged: the hash of their digests, in leaf order, differs", p.RequestAt.Format(time.RFC3339), a.n)
		}
	}
	return nil
}

// readVerifier reads the log's checkpoint verifier key: its name is the
// log's origin, by which the index keys its rows.
func readVerifier(dir string) ([]byte, note.Verifier, error) {
	vb, err := os.ReadFile(filepath.Join(dir, VerifierKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("read verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vb)))
	if err != nil {
		return nil, nil, fmt.Errorf("verifier key: %w", err)
	}
	return vb, v, nil
}

// openExisting opens an existing log's verifier and record index, for
// the offline commands.
func openExisting(ctx context.Context, dir, dsn string) ([]byte, note.Verifier, *store.DB, error) {
	vb, v, err := readVerifier(dir)
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := openIndexReadOnly(ctx, dir, dsn)
	if err != nil {
		return nil, nil, nil, err
	}
	return vb, v, db, nil
}

// openIndexReadOnly opens the record index without creating it.
func openIndexReadOnly(ctx context.Context, dir, dsn string) (*store.DB, error) {
	if dsn == "" {
		if _, err := os.Stat(filepath.Join(dir, IndexFile)); err != nil {
			return nil, fmt.Errorf("no record index at %s (for a PostgreSQL index, give its DSN): %w", filepath.Join(dir, IndexFile), err)
		}
	}
	db, err := OpenIndex(ctx, dir, dsn)
	if err != nil {
		return nil, err
	}
	return db, nil
}

// clip shortens a message that may carry whole tiles in hex.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func init() {
	// The tree checker logs progress through klog; the verdict is ours to
	// report.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
}

// Records calls fn with every record still held (exchanges and denials)
// of exchanges that began in [from, to), in time order. It reads the
// index only; Verify is what checks the index against the tree.
func Records(ctx context.Context, dir, dsn string, from, to time.Time, fn func(*Record) error) error {
	_, v, db, err := openExisting(ctx, dir, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, db.Q(`SELECT record FROM records WHERE log = ? AND kind <> ? AND record IS NOT NULL AND request_at >= ? AND request_at < ? ORDER BY request_at`),
		v.Name(), KindPurge, from.UnixMilli(), to.UnixMilli())
	if err != nil {
		return fmt.Errorf("record index: %w", err)
	}
	defer rs.Close()
	for rs.Next() {
		var b []byte
		if err := rs.Scan(&b); err != nil {
			return err
		}
		r, err := ParseRecord(b)
		if err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return rs.Err()
}

// countUnindexed counts the records in the write-ahead segments that the
// index does not hold yet, and the damaged segments. It reads only, and a
// gateway may be running: a segment removed meanwhile is skipped (its
// records are in the index), and the newest segment, which may be read
// in the middle of a write, is judged damaged only if it still looks so a
// moment later.
func countUnindexed(ctx context.Context, dir string, db *store.DB, origin string, rep *Report) error {
	wf, err := listWAL(dir)
	if err != nil {
		return fmt.Errorf("write-ahead segments: %w", err)
	}
	reads, err := readSegments(wf.segments)
	if err != nil {
		return fmt.Errorf("write-ahead segments: %w", err)
	}
	rep.Damaged = len(wf.damaged)
	q := db.Q(`SELECT count(*) FROM records WHERE log = ? AND request_at = ? AND digest = ?`)
	for _, s := range reads {
		if s.sc.damaged && s.newest {
			time.Sleep(100 * time.Millisecond)
			switch _, sc, err := readSegment(s.path); {
			case errors.Is(err, os.ErrNotExist):
				s.sc.damaged = false // indexed and removed meanwhile
			case err == nil:
				s.sc.damaged = sc.damaged
			}
		}
		if s.sc.damaged {
			rep.Damaged++
		}
		for _, r := range s.rows {
			var n int
			if err := db.QueryRowContext(ctx, q, origin, r.requestAt(), r.digest[:]).Scan(&n); err != nil {
				return fmt.Errorf("record index: %w", err)
			}
			if n == 0 {
				rep.Unindexed++
			}
		}
	}
	return nil
}
