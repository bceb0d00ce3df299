package msglog

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/client"
	"github.com/transparency-dev/tessera/fsck"
	"golang.org/x/mod/sumdb/note"
	"k8s.io/klog/v2"
)

// Report is what Verify found in a sound log.
type Report struct {
	Origin     string
	Size       uint64
	Records    uint64
	Timestamps int
}

// Verify checks a log offline: the checkpoint's signature against the
// log's verifier key, every entry as a well-formed record, the leaf
// hashes against the tiles and the tree's root against the checkpoint.
// It returns the first fault found. each, when not nil, sees every record.
func Verify(ctx context.Context, dir string, each func(*Record)) (*Report, error) {
	vb, err := os.ReadFile(filepath.Join(dir, VerifierKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read verifier key: %w", err)
	}
	v, err := note.NewVerifier(strings.TrimSpace(string(vb)))
	if err != nil {
		return nil, fmt.Errorf("verifier key: %w", err)
	}
	fetcher := client.FileFetcher{Root: filepath.Join(dir, TilesDir)}
	cp, _, _, err := client.FetchCheckpoint(ctx, fetcher.ReadCheckpoint, v, v.Name())
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %w", err)
	}
	var records uint64
	hasher := func(bundle []byte) ([][]byte, error) {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(bundle); err != nil {
			return nil, fmt.Errorf("entry bundle: %w", err)
		}
		out := make([][]byte, 0, len(eb.Entries))
		for i, e := range eb.Entries {
			rec, err := ParseRecord(e)
			if err != nil {
				return nil, fmt.Errorf("entry %d of a bundle is not a valid record: %w", i, err)
			}
			if each != nil {
				each(rec)
			}
			out = append(out, rfc6962.DefaultHasher.HashLeaf(e))
		}
		records += uint64(len(eb.Entries))
		return out, nil
	}
	f := fsck.New(v.Name(), v, fetcher, hasher, fsck.Opts{N: 1})
	if err := f.Check(ctx); err != nil {
		return nil, fmt.Errorf("tree does not match its entries or checkpoint: %s", clip(err.Error(), 300))
	}
	n, err := verifyTimestamps(dir, func(b []byte) error {
		_, err := note.Open(b, note.VerifierList(v))
		return err
	})
	if err != nil {
		return nil, err
	}
	return &Report{Origin: cp.Origin, Size: cp.Size, Records: records, Timestamps: n}, nil
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
