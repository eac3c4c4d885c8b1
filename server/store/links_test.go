package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

// A producer trace finds the traces whose spans link to it (the consumers of its messages) through
// the attribute index, with each consumer's wait, whatever the index's value limit; a trace that
// links only to itself or elsewhere is no consumer. PostgreSQL, SQLite, and a tenant's own role.
func TestLinkingSpans_AProducerTraceFindsTheTracesThatConsumedItsMessages(t *testing.T) {
	run := func(t *testing.T, db *store.DB, tenant string) {
		ctx := context.Background()
		// A value limit of 1 a day: the link rows must not count against it.
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: store.DefaultIndexedAttributes, MaxValuesPerDay: 1}); err != nil {
			t.Fatal(err)
		}
		tn := db.ForTenant(tenant)
		base := time.Now().Add(-time.Hour).UnixNano()
		link := func(trace, span string) string {
			return `{"trace_id":"` + storetest.TraceID(trace) + `","span_id":"` + storetest.SpanID(span) + `"}`
		}
		consumer := func(trace string, start int64, status int16, links ...string) store.Span {
			return store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("c"), Service: "shipping", Operation: "orders process",
				Kind: store.KindConsumer, IsEntry: true, StartNS: base + start, DurationNS: 5e6, StatusCode: status,
				Links: []byte("[" + strings.Join(links, ",") + "]")}
		}
		batches := []store.Batch{
			{Spans: []store.Span{
				{TraceID: storetest.TraceID("a"), SpanID: storetest.SpanID("r"), Service: "gateway", Operation: "POST /orders", Kind: store.KindServer, IsEntry: true, StartNS: base, DurationNS: 3e9},
				{TraceID: storetest.TraceID("a"), SpanID: storetest.SpanID("p"), ParentSpanID: storetest.SpanID("r"), Service: "gateway", Operation: "orders publish", Kind: store.KindProducer, StartNS: base + 1e9, DurationNS: 1e9},
				consumer("x", 4e9, 0, link("a", "p")),                 // waited 2 s
				consumer("y", 9e9, 2, link("q", "p"), link("a", "p")), // failed, waited 7 s
				consumer("z", 5e9, 0, link("q", "p")),                 // another producer's
				consumer("w", 6e9, 0, link("w", "c")),                 // its own trace
				consumer("v", -3e9, 0, link("a", "r")),                // before the producer (clocks), no producer span
			}},
			// More of trace x in a later batch: one trace, counted once.
			{Spans: []store.Span{{TraceID: storetest.TraceID("x"), SpanID: storetest.SpanID("d"), ParentSpanID: storetest.SpanID("c"), Service: "shipping",
				Operation: "orders process item", Kind: store.KindConsumer, StartNS: base + 8e9, DurationNS: 1e6, Links: []byte("[" + link("a", "p") + "]")}}},
		}
		for _, b := range batches {
			if err := tn.InsertBatch(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		got, err := tn.LinkingSpans(ctx, strings.ToUpper(storetest.TraceID("a")), base)
		if err != nil {
			t.Fatal(err)
		}
		if got.Traces != 3 || got.AtLeast {
			t.Errorf("consuming traces %d (at least %v), want 3: v, x, y", got.Traces, got.AtLeast)
		}
		var desc []string
		for _, s := range got.Spans {
			desc = append(desc, fmt.Sprintf("%s/%s→%s lag=%.0fs err=%v", storetest.Name(s.TraceID), storetest.Name(s.SpanID), storetest.Name(s.LinkedSpanID), float64(s.QueueLagNS)/1e9, s.Error))
		}
		want := []string{"v/c→r lag=0s err=false", "x/c→p lag=2s err=false", "x/d→p lag=6s err=false", "y/c→p lag=7s err=true"}
		if strings.Join(desc, "; ") != strings.Join(want, "; ") {
			t.Errorf("consuming spans\n%s\nwant\n%s", strings.Join(desc, "; "), strings.Join(want, "; "))
		}
		if s := got.Spans[len(got.Spans)-1]; s.Service != "shipping" || s.Operation != "orders process" || s.DurationNS != 5e6 {
			t.Errorf("consumer y read as %+v", s)
		}
		if none, err := tn.LinkingSpans(ctx, storetest.TraceID("x"), base); err != nil || none.Traces != 0 || len(none.Spans) != 0 {
			t.Errorf("trace x, which nothing links to, has consumers %+v (%v)", none, err)
		}
	}
	storetest.Dialects(t, func(t *testing.T, db *store.DB) { run(t, db, "acme") })
	t.Run("tenant role", func(t *testing.T) {
		_, _, teamA := storetest.TwoTenants(t)
		asA, err := store.Open(context.Background(), teamA)
		if err != nil {
			t.Fatal(err)
		}
		defer asA.Close()
		run(t, asA, "team-a")
	})
}

// The key span links are indexed under is not for the operator to configure.
func TestAttributeIndex_RefusesTheReservedLinkKey(t *testing.T) {
	err := store.AttributeIndex{Keys: []string{"user.id", store.LinkedTraceKey}}.Validate()
	if err == nil || !strings.Contains(err.Error(), "reserved") {
		t.Fatalf("configuring %s: %v, want it refused as reserved", store.LinkedTraceKey, err)
	}
}
