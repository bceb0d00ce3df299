package msglog

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/transparency-dev/tessera"
)

// The integrator appends the digests of committed records to the tree, in
// the order their rows were committed, in large batches: an exchange is
// acknowledged once its record is durable in the index, and its leaf
// follows within the merge delay (as certificate transparency logs
// promise inclusion within a maximum merge delay). If the tree cannot be
// extended, or falls behind by more than MaxMergeDelay, Append refuses
// new records until it recovers: fail closed.
type integrator struct {
	l       *Log
	mu      sync.Mutex
	queue   []*row
	kick    chan struct{}
	idle    *sync.Cond
	busy    int // rows taken from the queue and not yet resolved
	err     error
	oldest  time.Time // commit time of the oldest row not yet in the tree
	stopped chan struct{}
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
	it.mu.Lock()
	if len(it.queue) == 0 && it.busy == 0 {
		it.oldest = time.Now()
	}
	it.queue = append(it.queue, rows...)
	it.mu.Unlock()
	select {
	case it.kick <- struct{}{}:
	default:
	}
}

// health reports why new records must be refused, if they must.
func (it *integrator) health(maxDelay time.Duration) error {
	it.mu.Lock()
	defer it.mu.Unlock()
	if it.err != nil {
		return fmt.Errorf("%w: the tree cannot be extended: %w", ErrLogging, it.err)
	}
	if (len(it.queue) > 0 || it.busy > 0) && time.Since(it.oldest) > maxDelay {
		return fmt.Errorf("%w: the tree is %v behind the record index (limit %v)", ErrLogging, time.Since(it.oldest).Round(time.Millisecond), maxDelay)
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
		it.mu.Unlock()
		if len(batch) == 0 {
			it.idle.Broadcast()
			if closing {
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
		} else if len(it.queue) > 0 {
			it.oldest = time.Now()
		}
		it.mu.Unlock()
		if len(failed) > 0 {
			if closing {
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
	}
	it.mu.Lock()
	it.err = firstErr
	it.mu.Unlock()
	if firstErr != nil {
		it.l.log.Error("extending the message log's tree failed; new exchanges are refused until it recovers", "err", firstErr, "pending", len(failed))
	}
	return failed
}

// wait blocks until every row handed over so far is in the tree, or ctx
// ends.
func (it *integrator) wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		it.mu.Lock()
		for len(it.queue) > 0 || it.busy > 0 {
			it.idle.Wait()
		}
		it.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
