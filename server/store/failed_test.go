package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestFailed_AgreesWithTheSQLThatCountsErrors stores spans and LLM calls with every status that
// matters and checks that what the SQL filters count as failed (error rates, errors-only searches)
// is what Failed says in Go (rollups, RCA, rendering).
func TestFailed_AgreesWithTheSQLThatCountsErrors(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("team-a")
		var b store.Batch
		for _, status := range []int16{0, 1, store.StatusError} {
			for _, http := range []int32{0, 200, 404, 499, 500, 503} {
				b.Spans = append(b.Spans, store.Span{TraceID: fmt.Sprintf("%032x", len(b.Spans)+1), SpanID: "0000000000000001",
					Service: "api", Operation: "GET /", IsEntry: true, StartNS: int64(len(b.Spans)+1) * 1e6, DurationNS: 1e6,
					StatusCode: status, HTTPStatusCode: http})
			}
			for _, errType := range []string{"", "timeout"} {
				b.LLMCalls = append(b.LLMCalls, store.LLMCall{TraceID: fmt.Sprintf("%032x", 100+len(b.LLMCalls)), SpanID: "0000000000000001",
					Service: "api", Operation: "chat", RequestModel: "m", StartNS: int64(len(b.LLMCalls)+1) * 1e6, DurationNS: 1e6,
					StatusCode: status, ErrorType: errType})
			}
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, s := range b.Spans {
			spans, _, err := tn.TraceSpans(ctx, s.TraceID, 10)
			if err != nil || len(spans) != 1 {
				t.Fatalf("trace %s: %d spans, %v", s.TraceID, len(spans), err)
			}
			if spans[0].Error != s.Failed() {
				t.Errorf("status %d, HTTP %d: SQL says failed=%v, Span.Failed %v", s.StatusCode, s.HTTPStatusCode, spans[0].Error, s.Failed())
			}
		}
		for _, c := range b.LLMCalls {
			failed, err := tn.SearchLLMCalls(ctx, store.LLMQuery{From: 0, To: 1 << 62, TraceID: c.TraceID, ErrorsOnly: true, Limit: 10})
			if err != nil {
				t.Fatal(err)
			}
			if (len(failed) == 1) != c.Failed() {
				t.Errorf("status %d, error type %q: SQL says failed=%v, LLMCall.Failed %v", c.StatusCode, c.ErrorType, len(failed) == 1, c.Failed())
			}
		}
	})
}
