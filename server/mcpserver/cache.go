package mcpserver

import (
	"context"
	"sync"
	"time"
)

// answers remembers recent answers for a short time, so that identical calls (an assistant repeating
// itself, several people looking at the same incident) cost one computation, and identical calls
// arriving together wait for the one in flight instead of each scanning the same rows.
type answers struct {
	ttl time.Duration
	mu  sync.Mutex
	m   map[string]*answer
}

type answer struct {
	done    chan struct{}
	out     any
	text    string
	err     error
	expires time.Time // zero while in flight
}

// Bounds of the cache: entries (answers are at most 80 KB) and how long a computation shared by
// several callers may run once its first caller has gone.
const (
	maxAnswers    = 2048
	sharedTimeout = 30 * time.Second
)

func newAnswers(ttl time.Duration) *answers {
	return &answers{ttl: ttl, m: map[string]*answer{}}
}

// get returns the answer under key, computing it when there is none fresh. The computation runs
// detached from the first caller's cancellation, since others may be waiting for it.
func (a *answers) get(ctx context.Context, key string, compute func(context.Context) (any, string, error)) (any, string, error) {
	if a.ttl <= 0 {
		return compute(ctx)
	}
	now := time.Now()
	a.mu.Lock()
	if e, ok := a.m[key]; ok && (e.expires.IsZero() || now.Before(e.expires)) {
		a.mu.Unlock()
		select {
		case <-e.done:
			return e.out, e.text, e.err
		case <-ctx.Done():
			return nil, "", ctx.Err()
		}
	}
	if len(a.m) >= maxAnswers {
		a.evict(now)
	}
	e := &answer{done: make(chan struct{})}
	a.m[key] = e
	a.mu.Unlock()

	shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), sharedTimeout)
	e.out, e.text, e.err = compute(shared)
	cancel()
	a.mu.Lock()
	if e.err != nil {
		delete(a.m, key) // errors are not remembered: the next call tries again
	} else {
		e.expires = time.Now().Add(a.ttl)
	}
	a.mu.Unlock()
	close(e.done)
	return e.out, e.text, e.err
}

// evict drops expired answers, and everything but computations in flight if that is not enough.
// Called with a.mu held.
func (a *answers) evict(now time.Time) {
	for k, e := range a.m {
		if !e.expires.IsZero() && !now.Before(e.expires) {
			delete(a.m, k)
		}
	}
	if len(a.m) < maxAnswers {
		return
	}
	for k, e := range a.m {
		if !e.expires.IsZero() {
			delete(a.m, k)
		}
	}
}
