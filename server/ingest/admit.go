package ingest

import (
	"context"
	"sync"
	"time"
)

// memBudget bounds the request bytes held in memory at once (bodies being read, and what decoding
// them costs). A request reserves room as its bytes arrive, so a slow sender holds only what it has
// sent, and returns it all when it is answered.
type memBudget struct {
	mu      sync.Mutex
	free    int64
	size    int64
	changed chan struct{} // closed (and replaced) when room is returned
}

func newMemBudget(size int64) *memBudget {
	return &memBudget{free: size, size: size, changed: make(chan struct{})}
}

// reservation is one request's share of the budget.
type reservation struct {
	b    *memBudget
	held int64
}

// grow reserves n more bytes, waiting until the deadline for room; false when there was none. A
// request larger than the whole budget is capped to it, so it can still be served on its own.
func (r *reservation) grow(ctx context.Context, n int64, deadline time.Time) bool {
	n = min(n, r.b.size-r.held)
	if n <= 0 {
		return true
	}
	var timer *time.Timer
	for {
		r.b.mu.Lock()
		if r.b.free >= n {
			r.b.free -= n
			r.b.mu.Unlock()
			r.held += n
			return true
		}
		wait := r.b.changed
		r.b.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(time.Until(deadline))
			defer timer.Stop()
		}
		select {
		case <-wait:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

// release returns everything the reservation holds.
func (r *reservation) release() {
	if r.held == 0 {
		return
	}
	r.b.mu.Lock()
	r.b.free += r.held
	close(r.b.changed)
	r.b.changed = make(chan struct{})
	r.b.mu.Unlock()
	r.held = 0
}
