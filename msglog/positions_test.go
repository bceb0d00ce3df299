package msglog

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
)

// appendConcurrently appends n records from as many goroutines and waits
// until they are leaves with their positions committed.
func appendConcurrently(t *testing.T, l *Log, base, n int) {
	t.Helper()
	appendN(t, l, base, n)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.idx.sync(t.Context()); err != nil { // the positions the tree gave
		t.Fatal(err)
	}
}

// confirmedPositions returns the confirmed position and how many rows
// lack one below it.
func confirmedPositions(t *testing.T, l *Log) (confirmed, unconfirmed int64) {
	t.Helper()
	if err := l.db.QueryRowContext(t.Context(), `SELECT reconciled FROM log_state WHERE log = ?`, l.origin).Scan(&confirmed); err != nil {
		t.Fatal(err)
	}
	if err := l.db.QueryRowContext(t.Context(), `SELECT count(*) FROM records WHERE log = ? AND (leaf_index IS NULL OR leaf_index >= ?)`, l.origin, confirmed).Scan(&unconfirmed); err != nil {
		t.Fatal(err)
	}
	return confirmed, unconfirmed
}

// verifyPlaced checks a closed log whose every row has a confirmed
// position: Verify then finds each leaf's record by its position alone.
func verifyPlaced(t *testing.T, dir string, leaves uint64) {
	t.Helper()
	rep, err := Verify(t.Context(), dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Size != leaves || rep.Records != leaves || rep.Pending != 0 {
		t.Fatalf("verify: %+v, want %d leaves, all records, none pending", rep, leaves)
	}
}

// closeConfirmed checks that a running log with n leaves has confirmed
// every position, closes it and verifies it.
func closeConfirmed(t *testing.T, l *Log, dir string, n int64) {
	t.Helper()
	if c, u := confirmedPositions(t, l); c != n || u != 0 {
		t.Errorf("while running: confirmed position %d with %d rows unconfirmed, want %d and 0", c, u, n)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	verifyPlaced(t, dir, uint64(n))
}

// Rows are inserted with the positions their leaves take: none is
// written a second time, and the confirmed position follows the tree
// while the log runs.
func TestPositionsPredicted(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	appendConcurrently(t, l, 0, 300)
	if n := l.idx.corrected.Load(); n != 0 {
		t.Errorf("%d positions written after their rows, want 0", n)
	}
	closeConfirmed(t, l, dir, 300)
}

// Wrong predictions are corrected from the positions the tree gives, and
// the next rows are predicted right again.
func TestMispredictedPositionsCorrected(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	l.idx.base.Add(7) // as if the tree had taken 7 leaves unseen
	appendConcurrently(t, l, 0, 200)
	first := l.idx.corrected.Load()
	if first == 0 {
		t.Fatal("no position corrected, though every prediction was wrong")
	}
	appendConcurrently(t, l, 200, 100)
	if n := l.idx.corrected.Load(); n != first {
		t.Errorf("%d more positions corrected after the first batch, want 0", n-first)
	}
	closeConfirmed(t, l, dir, 300)
}

// A row whose append fails while later rows' appends succeed keeps its
// prediction, which the tree then gave to another row: the confirmed
// position stays below it until the tree places the row, so that a stop
// meanwhile leaves it to the next start, which appends it.
func TestFailedAppendStaysUnconfirmed(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	a := testRecord(1)
	b, err := a.marshal()
	if err != nil {
		t.Fatal(err)
	}
	da := recordDigest(b)
	var failing atomic.Bool
	failing.Store(true)
	add := l.add
	l.add = func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
		if failing.Load() && bytes.Equal(e.Data(), da[:]) {
			return func() (tessera.Index, error) { return tessera.Index{}, errors.New("injected append failure") }
		}
		return add(ctx, e)
	}
	if err := l.Append(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	for i := 2; i <= 3; i++ {
		if err := l.Append(t.Context(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	// The other two become leaves 0 and 1, the positions predicted for
	// the first two rows.
	for deadline := time.Now().Add(10 * time.Second); ; {
		if err := l.idx.sync(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n, _ := l.reader.IntegratedSize(t.Context()); n >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other rows did not become leaves")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := l.idx.sync(t.Context()); err != nil { // their positions
		t.Fatal(err)
	}
	var leaf sql.NullInt64
	if err := l.db.QueryRowContext(t.Context(), `SELECT leaf_index FROM records WHERE digest = ?`, da[:]).Scan(&leaf); err != nil {
		t.Fatal(err)
	}
	if c, _ := confirmedPositions(t, l); leaf.Valid && leaf.Int64 < c {
		t.Fatalf("the failing row holds position %d below the confirmed position %d", leaf.Int64, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	l.Close(ctx) // reports the failing append; the row stays in the index
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v while the tree was failing: it waited for it", d)
	}

	l = openTest(t, dir)
	if err := l.Append(t.Context(), testRecord(4)); err != nil {
		t.Fatal(err)
	}
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	verifyPlaced(t, dir, 4)
}

// checkConfirmed checks, in one read of the index, what the confirmed
// position promises: every leaf below it has its row's position recorded
// (and no two rows share one).
func checkConfirmed(ctx context.Context, l *Log) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var confirmed int64
	if err := tx.QueryRowContext(ctx, `SELECT reconciled FROM log_state WHERE log = ?`, l.origin).Scan(&confirmed); err != nil {
		return err
	}
	rs, err := tx.QueryContext(ctx, `SELECT digest, leaf_index FROM records WHERE log = ? AND leaf_index < ?`, l.origin, confirmed)
	if err != nil {
		return err
	}
	defer rs.Close()
	at := map[int64][]byte{}
	for rs.Next() {
		var d []byte
		var p int64
		if err := rs.Scan(&d, &p); err != nil {
			return err
		}
		if _, twice := at[p]; twice {
			return fmt.Errorf("confirmed %d: two rows at position %d", confirmed, p)
		}
		at[p] = d
	}
	if err := rs.Err(); err != nil {
		return err
	}
	size, err := l.reader.IntegratedSize(ctx)
	if err != nil {
		return err
	}
	if uint64(confirmed) > size {
		return fmt.Errorf("confirmed %d beyond the tree's %d leaves", confirmed, size)
	}
	eb := entryBundles{rd: l.reader, size: size}
	for p := range confirmed {
		e, err := eb.entry(ctx, uint64(p))
		if err != nil {
			return err
		}
		if !bytes.Equal(e, at[p]) {
			return fmt.Errorf("confirmed %d: leaf %d has no row placed there", confirmed, p)
		}
	}
	return nil
}

// Appends that fail at random, some once, some until the end, while
// records keep coming: the confirmed position keeps its promise
// throughout, and after a restart every acknowledged record is a leaf
// with its position.
func TestConfirmedPositionUnderFailingAppends(t *testing.T) {
	dir := t.TempDir()
	l := openTest(t, dir)
	var mu sync.Mutex
	failures := map[[32]byte]int{} // failures still to come, by digest
	rng := rand.New(rand.NewPCG(1, 2))
	var healed atomic.Bool
	add := l.add
	l.add = func(ctx context.Context, e *tessera.Entry) tessera.IndexFuture {
		k := [32]byte(e.Data())
		mu.Lock()
		n, seen := failures[k]
		if !seen {
			switch r := rng.IntN(40); {
			case r == 0:
				n = 1 << 30 // until healed
			case r < 4:
				n = 1 + rng.IntN(3)
			}
		}
		fail := n > 0 && !healed.Load()
		if fail {
			n--
		}
		failures[k] = n
		mu.Unlock()
		if fail {
			return func() (tessera.Index, error) { return tessera.Index{}, errors.New("injected append failure") }
		}
		return add(ctx, e)
	}
	stop := make(chan struct{})
	checked := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			select {
			case <-stop:
				checked <- nil
				return
			case <-time.After(3 * time.Millisecond):
			}
			err = checkConfirmed(t.Context(), l)
		}
		checked <- err
	}()
	var acked atomic.Int64
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 60 {
				// Refusals while the tree cannot be extended are expected.
				if l.Append(t.Context(), testRecord(g*1000+i)) == nil {
					acked.Add(1)
				}
				time.Sleep(time.Duration(g*97+i*31) % 2000 * time.Microsecond)
			}
		})
	}
	wg.Wait()
	healed.Store(true)
	if err := l.Sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	close(stop)
	if err := <-checked; err != nil {
		t.Fatal(err)
	}
	if err := l.idx.sync(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := checkConfirmed(t.Context(), l); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if acked.Load() == 0 {
		t.Fatal("no record was acknowledged")
	}
	verifyPlaced(t, dir, uint64(acked.Load()))
}

// Export finds a record whose stored position is not its leaf's (a
// prediction not yet corrected) by searching the tree from the confirmed
// position, and proves the leaf it is at.
func TestExportSearchesPastAWrongPosition(t *testing.T) {
	dir := t.TempDir()
	writeLog(t, dir, 0, 20)
	db, err := OpenIndex(t.Context(), dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var leaf int64
	if err := db.QueryRow(`SELECT leaf_index FROM records WHERE x_road_id = 'id-7'`).Scan(&leaf); err != nil {
		t.Fatal(err)
	}
	// Two rows' positions swapped, with the confirmed position moved back
	// to the lower of them, as a stop before the corrections committed
	// would leave them.
	for _, q := range []string{
		`UPDATE log_state SET reconciled = (SELECT min(leaf_index) FROM records WHERE x_road_id IN ('id-7', 'id-8'))`,
		`UPDATE records SET leaf_index = (SELECT sum(leaf_index) FROM records WHERE x_road_id IN ('id-7', 'id-8')) - leaf_index WHERE x_road_id IN ('id-7', 'id-8')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	out := t.TempDir()
	if err := Export(t.Context(), dir, "", Selection{XRoadID: "id-7"}, out); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, bundleLeafIndex))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != strconv.FormatInt(leaf, 10) {
		t.Errorf("exported at leaf %s, want %d", got, leaf)
	}
}
