package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// Batch consumers start a trace of their own and link to the producers of their messages: each
// message's wait is counted from the linked producer that ended first, found in the same batch or
// stored by an earlier one; a link to a span that is no producer, or was never stored, counts none.
func TestRollups_QueueLagOfConsumersLinkedToTheirProducers(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		base := int64(1_700_000_000) / 3600 * 3600 * 1e9
		producer := func(trace string, end int64) store.Span {
			return store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("p"), ParentSpanID: storetest.SpanID("r"), Service: "orders", Operation: "orders publish",
				Kind: store.KindProducer, StartNS: base + end - 1e6, DurationNS: 1e6}
		}
		consumer := func(trace string, start int64, links string) store.Span {
			return store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("c"), Service: "shipping", Operation: "orders process",
				Kind: store.KindConsumer, IsEntry: true, StartNS: base + start, DurationNS: 5e6, Links: []byte(links)}
		}
		ref := func(trace, span string) string { // a link's ids, its object left open
			return `{"trace_id":"` + storetest.TraceID(trace) + `","span_id":"` + storetest.SpanID(span) + `"`
		}
		batches := []store.Batch{
			{Spans: []store.Span{producer("a", 1e9), producer("b", 3e9),
				consumer("x", 5e9, `[`+ref("a", "p")+`,"attributes":{"messaging.message.id":"1"}}]`)}},
			{Spans: []store.Span{
				consumer("y", 43e9, `[`+ref("b", "p")+`},`+ref("a", "p")+`}]`), // waited 42 s
				consumer("z", 9e9, `[`+ref("a", "r")+`},`+ref("q", "p")+`}]`),  // no producer stored
			}},
		}
		for _, b := range batches {
			if err := tn.InsertBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		rows, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupQueueLag, Service: "shipping", From: base, To: base + store.Hour})
		if err != nil {
			t.Fatal(err)
		}
		n, _, _, h := rollupTotals(t, rows)
		if n != 2 {
			t.Fatalf("queue lag rows %+v count %d messages, want 2 (consumers x and y)", rows, n)
		}
		if lo, hi := h.Quantile(0), h.Quantile(1); lo < 3.9e9 || lo > 4.1e9 || hi < 41e9 || hi > 43e9 {
			t.Errorf("lags range from %.2fs to %.2fs, want 4s and 42s", lo/1e9, hi/1e9)
		}

		spans, _, err := tn.TraceSpans(ctx, storetest.TraceID("x"), 10)
		if err != nil {
			t.Fatal(err)
		}
		links := store.ParseLinks(spans[0].Links)
		if len(links) != 1 || links[0].SpanRef != (store.SpanRef{TraceID: storetest.TraceID("a"), SpanID: storetest.SpanID("p")}) || !strings.Contains(string(links[0].Attributes), `"messaging.message.id"`) {
			t.Errorf("stored links %s read back as %+v", spans[0].Links, links)
		}
		linked, err := tn.LinkedSpans(ctx, []store.SpanRef{links[0].SpanRef, {TraceID: storetest.TraceID("q"), SpanID: storetest.SpanID("p")}, {TraceID: "not hex", SpanID: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		if p, ok := linked[links[0].SpanRef]; len(linked) != 1 || !ok || p.Service != "orders" || p.Kind != store.KindProducer || p.EndNS() != base+1e9 {
			t.Errorf("linked spans %+v; want only orders' producer of trace a, ended at 1 s", linked)
		}
	})
}
