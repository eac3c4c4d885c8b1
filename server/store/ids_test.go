package store_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// Requests that tie on start time are paged by trace id, then span id, in hex order: PostgreSQL
// stores span ids as bigints with the top bit flipped (ids.go), so ids on both sides of
// 8000000000000000 must page in the order their hex gives, each once, and read back unchanged.
func TestSearchTraces_KeysetPagesSpanIDsAboveAndBelowTheTopBitInHexOrder(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		traces := []string{"7fffffffffffffffffffffffffffffff", "80000000000000000000000000000000"}
		spans := []string{"0000000000000001", "00000000000000ff", "7fffffffffffffff", "8000000000000000",
			"c000000000000000", "ffffffffffffffff"}
		var b store.Batch
		var want []string
		for _, trace := range traces {
			for _, span := range spans {
				b.Spans = append(b.Spans, store.Span{TraceID: trace, SpanID: span, ParentSpanID: "0000000000000abc",
					Service: "pay", Operation: "POST /pay", Kind: store.KindServer, IsEntry: true, StartNS: 1e9, DurationNS: ms})
				want = append(want, trace+"/"+span)
			}
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		slices.Reverse(want) // newest first, then the greatest ids
		for _, sortByDuration := range []bool{false, true} {
			q := store.TraceQuery{From: 0, To: 2e9, Service: "pay", SortByDuration: sortByDuration, Limit: 5}
			var got []string
			for page := 0; page < 10; page++ {
				hits, err := tn.SearchTraces(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				for _, h := range hits {
					got = append(got, h.TraceID+"/"+h.SpanID)
				}
				if len(hits) < q.Limit {
					break
				}
				last := hits[len(hits)-1].Key(sortByDuration)
				q.After = &last
			}
			if strings.Join(got, ",") != strings.Join(want, ",") {
				t.Errorf("by duration %t: pages gave\n%v\nwant\n%v", sortByDuration, got, want)
			}
		}
		trace, _, err := tn.TraceSpans(ctx, traces[1], 10)
		if err != nil || len(trace) != len(spans) || trace[0].SpanID != spans[0] || trace[5].SpanID != spans[5] ||
			trace[5].ParentSpanID != "0000000000000abc" {
			t.Errorf("TraceSpans: %+v, %v", trace, err)
		}
	})
}

// PostgreSQL stores only ids ingest can produce (16-byte trace ids, 8-byte span ids, in hex): a
// caller's other id is refused with an error naming it, and the batch stores nothing; reading an id
// that cannot be stored finds nothing, as on SQLite.
func TestInsertBatch_RefusesIdsPostgreSQLCannotStore(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	db := storetest.Open(t, dsn)
	tn := db.ForTenant("acme")
	good := store.Span{TraceID: storetest.TraceID("t1"), SpanID: storetest.SpanID("a"), Service: "api", Operation: "GET /",
		IsEntry: true, StartNS: 1e9, DurationNS: 1}
	for _, tc := range []struct {
		change func(s *store.Span)
		want   string
	}{
		{func(s *store.Span) { s.TraceID = "t1" }, `trace id "t1" is not 32 hex digits`},
		{func(s *store.Span) { s.TraceID = strings.Repeat("g", 32) }, "is not 32 hex digits"},
		{func(s *store.Span) { s.SpanID = "w0-r0-18" }, `span id "w0-r0-18" is not 16 hex digits`},
		{func(s *store.Span) { s.ParentSpanID = "root" }, `parent of span 0000000000000062: span id "root" is not 16 hex digits`},
	} {
		bad := good
		bad.SpanID = storetest.SpanID("b")
		tc.change(&bad)
		err := tn.InsertBatch(ctx, store.Batch{Spans: []store.Span{good, bad}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("batch with %+v: %v, want an error saying %q", bad, err, tc.want)
		}
	}
	if n := storetest.Count(t, dsn, "spans", "acme"); n != 0 {
		t.Errorf("%d spans stored from refused batches, want none", n)
	}
	if spans, total, err := tn.TraceSpans(ctx, "t1", 10); err != nil || len(spans) != 0 || total != 0 {
		t.Errorf("TraceSpans of a non-hex id: %+v, %d, %v; want nothing", spans, total, err)
	}
}
