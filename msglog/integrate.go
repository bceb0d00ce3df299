package msglog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
)

// The integrator appends the digests of indexed records to the tree, in
// the order their rows were committed, in large batches: an exchange is
// acknowledged once its record is durable in a write-ahead segment, its
// row and then its leaf follow within the merge delay (as certificate
// transparency logs promise inclusion within a maximum merge delay). If
// the tree cannot be extended, or falls behind by more than
// MaxMergeDelay, Append refuses new records until it recovers: fail
// closed.
type integrator struct {
	l     *Log
	mu    sync.Mutex
	queue []*row
	kick  chan struct{}
	idle  *sync.Cond
	busy  int // rows taken from the queue and not yet resolved
	err   error
	// busyOldest is when the oldest row of the batch being integrated
	// was acknowledged; queued rows carry their own times.
	busyOldest time.Time
	nextSeq    uint64 // sequence number of the next row handed over
	doneSeq    uint64 // every row up to this one is in the tree
	closed     bool
	stopped    chan struct{}
}

func newIntegrator(l *Log) *integrator {
	it := &integrator{l: l, kick: make(chan struct{}, 1), stopped: make(chan struct{})}
	it.idle = sync.NewCond(&it.mu)
	return it
}

// enqueue hands committed rows over, in commit order.
func (it *integrator) enqueue(rows []*row) {
	if len(rows) == 0 {
		return
	}
	now := time.Now()
	it.mu.Lock()
	for _, r := range rows {
		it.nextSeq++
		r.seq = it.nextSeq
		if r.acked.IsZero() { // left over from a previous run
			r.acked = now
		}
	}
	it.queue = append(it.queue, rows...)
	it.mu.Unlock()
	select {
	case it.kick <- struct{}{}:
	default:
	}
}

// handed returns the sequence number of the last row handed over.
func (it *integrator) handed() uint64 {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.nextSeq
}

// lag is how many committed rows are not yet leaves of the tree.
func (it *integrator) lag() int64 {
	it.mu.Lock()
	defer it.mu.Unlock()
	return int64(len(it.queue) + it.busy)
}

// health reports why new records must be refused, if they must.
func (it *integrator) health(maxDelay time.Duration) error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.err != nil {
		return fmt.Errorf("%w: the tree cannot be extended: %w", ErrLogging, it.err)
	}
	oldest := it.busyOldest
	if it.busy == 0 && len(it.queue) > 0 {
		oldest = it.queue[0].acked
	}
	if (it.busy > 0 || len(it.queue) > 0) && time.Since(oldest) > maxDelay {
		return fmt.Errorf("%w: the tree is %v behind the acknowledged records (limit %v)", ErrLogging, time.Since(oldest).Round(time.Millisecond), maxDelay)
	}
	return nil
}

// run integrates until done is closed and the queue is empty.
func (it *integrator) run(done <-chan struct{}) {
	defer close(it.stopped)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	closing := false
	for {
		it.mu.Lock()
		batch := it.queue
		it.queue = nil
		it.busy = len(batch)
		if len(batch) > 0 {
			it.busyOldest = batch[0].acked
		}
		it.mu.Unlock()
		if len(batch) == 0 {
			it.idle.Broadcast()
			if closing {
				it.markClosed()
				return
			}
			select {
			case <-it.kick:
			case <-retry.C:
			case <-done:
				closing = true
			}
			continue
		}
		failed := it.integrate(batch)
		it.mu.Lock()
		it.busy = 0
		if len(failed) > 0 {
			// Keep order: the failed rows go first on the next attempt.
			it.queue = append(failed, it.queue...)
			if failed[0].seq > 0 {
				it.doneSeq = max(it.doneSeq, failed[0].seq-1)
			}
		} else {
			it.doneSeq = max(it.doneSeq, batch[len(batch)-1].seq)
		}
		it.mu.Unlock()
		it.idle.Broadcast()
		if len(failed) > 0 {
			if closing {
				it.markClosed()
				return
			}
			retry.Reset(time.Second)
			select {
			case <-retry.C:
			case <-done:
				closing = true
			}
		}
	}
}

// markClosed records that the integrator has stopped and wakes waiters.
func (it *integrator) markClosed() {
	it.mu.Lock()
	it.closed = true
	it.mu.Unlock()
	it.idle.Broadcast()
}

// integrate appends one batch's leaves and records where they went; it
// returns the rows that failed.
func (it *integrator) integrate(batch []*row) []*row {
	ctx := context.Background()
	futures := make([]tessera.IndexFuture, len(batch))
	for i, r := range batch {
		futures[i] = it.l.add(ctx, tessera.NewEntry(r.digest[:]))
	}
	var failed []*row
	var firstErr error
	var top uint64 // one past the highest position given
	for i, f := range futures {
		idx, err := f()
		if err != nil {
			failed = append(failed, batch[i])
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		it.l.idx.leafAssigned(batch[i], idx.Index)
		top = max(top, idx.Index+1)
	}
	// Every position the tree has given is now recorded or queued: the
	// tree gives positions to these rows alone, in a row. After a batch
	// without failures the next row handed over takes the position after
	// the batch's last (base), whatever happened before.
	if top > 0 {
		last := batch[len(batch)-1]
		it.l.idx.confirm(top, int64(last.leaf)-int64(last.seq), firstErr == nil)
	}
	it.mu.Lock()
	it.err = firstErr
	it.mu.Unlock()
	if firstErr != nil {
		it.l.log.Error("extending the message log's tree failed; new exchanges are refused until it recovers", "err", firstErr, "pending", len(failed))
	}
	return failed
}

// failing reports whether the last attempt to extend the tree failed.
func (it *integrator) failing() bool {
	it.mu.Lock()
	defer it.mu.Unlock()
	return it.err != nil
}

// wait blocks until every row handed over so far is in the tree, or ctx
// ends, or the integrator stops.
func (it *integrator) wait(ctx context.Context) error {
	it.mu.Lock()
	seq := it.nextSeq
	it.mu.Unlock()
	return it.waitSeq(ctx, seq)
}

// waitSeq blocks until the row with sequence number seq (and all before
// it) is in the tree.
func (it *integrator) waitSeq(ctx context.Context, seq uint64) error {
	done := make(chan error, 1)
	go func() {
		it.mu.Lock()
		defer it.mu.Unlock()
		for it.doneSeq < seq && !it.closed && ctx.Err() == nil {
			it.idle.Wait()
		}
		switch {
		case it.doneSeq >= seq:
			done <- nil
		case it.closed:
			done <- fmt.Errorf("%w: the log is closed", ErrLogging)
		default:
			done <- ctx.Err()
		}
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		it.idle.Broadcast() // let the waiter see ctx and leave
		return ctx.Err()
	}
}
