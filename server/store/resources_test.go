package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// Exporters of many new processes at once (a deployment rolling out) send spans of the same new
// resources in batches of their own: every batch is stored, none fails on another's resources.
func TestInsertBatch_ConcurrentWritersOfTheSameNewResourcesAllSucceed(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	storetest.Open(t, dsn) // migrated
	now := time.Now().UnixNano()
	const writers, rounds, resources = 8, 10, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers*rounds)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A store per writer: each is a server replica that has stored none of them yet.
			db, err := store.Open(ctx, dsn)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			for r := range rounds {
				var b store.Batch
				for _, i := range rand.Perm(resources) {
					b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("w%d-r%d-%d", w, r, i)), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /",
						IsEntry: true, StartNS: now, DurationNS: 1,
						ResourceAttributes: []byte(fmt.Sprintf(`{"service.name":"api","k8s.pod.name":"api-%d-%d"}`, r, i))})
				}
				if err := db.ForTenant("acme").InsertBatch(ctx, b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := storetest.QueryInt(t, dsn, "SELECT count(*) FROM span_resources"); n != rounds*resources {
		t.Errorf("%d resources stored, want %d", n, rounds*resources)
	}
}
