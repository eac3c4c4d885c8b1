package mcpserver

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestAnswers_ConcurrentIdenticalCallsComputeOnceAndErrorsAreNotKept(t *testing.T) {
	a := newAnswers(time.Hour)
	var computed atomic.Int32
	release := make(chan struct{})
	slow := func(context.Context) (any, string, error) {
		computed.Add(1)
		<-release
		return 42, "answer", nil
	}
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if v, text, err := a.get(context.Background(), "k", slow); v != 42 || text != "answer" || err != nil {
				t.Errorf("got %v %q %v", v, text, err)
			}
		}()
	}
	time.Sleep(50 * time.Millisecond) // callers pile up on the computation in flight; late ones find it done
	close(release)
	wg.Wait()
	if n := computed.Load(); n != 1 {
		t.Errorf("computed %d times, want once", n)
	}

	fail := func(context.Context) (any, string, error) {
		computed.Add(1)
		return nil, "", errors.New("database down")
	}
	a.get(context.Background(), "e", fail)
	a.get(context.Background(), "e", fail)
	if n := computed.Load(); n != 3 {
		t.Errorf("a failure was remembered: computed %d times, want 3", n)
	}
}

func TestAnswers_ExpireAfterTheirTTL(t *testing.T) {
	a := newAnswers(20 * time.Millisecond)
	n := 0
	f := func(context.Context) (any, string, error) { n++; return n, "", nil }
	a.get(context.Background(), "k", f)
	if v, _, _ := a.get(context.Background(), "k", f); v != 1 {
		t.Errorf("fresh answer recomputed: %v", v)
	}
	time.Sleep(30 * time.Millisecond)
	if v, _, _ := a.get(context.Background(), "k", f); v != 2 {
		t.Errorf("expired answer served: %v", v)
	}
}
