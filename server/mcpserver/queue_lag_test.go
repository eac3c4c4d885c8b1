package mcpserver_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// A consumer that fell behind: its own span is short, but it started 514 s after the producer put
// the message on the queue. get_trace_detail states the wait.
func TestGetTraceDetail_StatesTheQueueLagOfAConsumerFallingBehind(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		start := time.Now().Add(-20 * time.Minute).UnixNano()
		id := traceID(9998)
		spans := []store.Span{
			{TraceID: id, SpanID: storetest.SpanID("root"), Service: "orders", Operation: "POST /orders", Kind: store.KindServer, IsEntry: true, StartNS: start, DurationNS: 20e6},
			{TraceID: id, SpanID: storetest.SpanID("pub"), ParentSpanID: storetest.SpanID("root"), Service: "orders", Operation: "order-events publish", Kind: store.KindProducer, StartNS: start + 5e6, DurationNS: 3e6},
			{TraceID: id, SpanID: storetest.SpanID("sub"), ParentSpanID: storetest.SpanID("pub"), Service: "billing", Operation: "order-events process", Kind: store.KindConsumer, IsEntry: true,
				StartNS: start + 8e6 + int64(514200*time.Millisecond), DurationNS: 5e6},
		}
		if err := e.acme.InsertBatch(context.Background(), store.Batch{Spans: spans}); err != nil {
			t.Fatal(err)
		}
		var out struct {
			QueueLag struct {
				LagMS    float64 `json:"lag_ms"`
				Consumer struct {
					SpanID string `json:"span_id"`
				} `json:"consumer"`
			} `json:"queue_lag"`
			Waterfall []struct {
				SpanID     string  `json:"span_id"`
				QueueLagMS float64 `json:"queue_lag_ms"`
			} `json:"waterfall"`
		}
		txt := mustOK(t, "get_trace_detail", call(t, e.connect(t, e.keyA), "get_trace_detail", map[string]any{"trace_id": id}, &out))
		if out.QueueLag.LagMS != 514200 || out.QueueLag.Consumer.SpanID != storetest.SpanID("sub") {
			t.Errorf("queue lag %+v; want 514200 ms before span sub", out.QueueLag)
		}
		for _, r := range out.Waterfall {
			if (r.SpanID == storetest.SpanID("sub")) != (r.QueueLagMS == 514200) {
				t.Errorf("waterfall row %+v: only the consumer waited, 514200 ms", r)
			}
		}
		if !strings.Contains(txt, "Queue lag: billing order-events process started 514") || !strings.Contains(txt, "after orders order-events publish ended") {
			t.Errorf("text does not state the queue lag:\n%s", txt)
		}
	})
}

// get_service_metrics of a consumer states how long its messages waited, per consumer operation
// and per step: the lag is in no span's duration, so the latency figures cannot show it.
func TestGetServiceMetrics_StatesAConsumersQueueLag(t *testing.T) {
	// The consumer's span descends from the producer's, or (batch consumers) starts a trace of its own
	// linked to it.
	for _, linked := range []bool{false, true} {
		t.Run(map[bool]string{false: "child", true: "linked"}[linked], func(t *testing.T) { queueLagInMetrics(t, linked) })
	}
}

func queueLagInMetrics(t *testing.T, linked bool) {
	dialects(t, func(t *testing.T, e *env) {
		start := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixNano()
		var b store.Batch
		for i := range 20 {
			id, at := traceID(9000+i), start+int64(i)*int64(time.Minute)
			sub := store.Span{TraceID: id, SpanID: storetest.SpanID("sub"), ParentSpanID: storetest.SpanID("pub"), Service: "billing", Operation: "order-events process", Kind: store.KindConsumer,
				IsEntry: true, StartNS: at + 2e6 + int64(i+1)*int64(time.Second), DurationNS: 5e6}
			if linked {
				sub.TraceID, sub.ParentSpanID = traceID(8000+i), ""
				sub.Links = []byte(`[{"trace_id":"` + id + `","span_id":"` + storetest.SpanID("pub") + `"}]`)
			}
			b.Spans = append(b.Spans,
				store.Span{TraceID: id, SpanID: storetest.SpanID("pub"), ParentSpanID: storetest.SpanID("root"), Service: "orders", Operation: "order-events publish", Kind: store.KindProducer, StartNS: at, DurationNS: 2e6},
				sub)
		}
		if err := e.acme.InsertBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		var out struct {
			QueueLag []struct {
				Operation string  `json:"operation"`
				Messages  int64   `json:"messages"`
				P95MS     float64 `json:"p95_ms"`
			} `json:"queue_lag"`
			Series []struct {
				QueueLagP95MS *float64 `json:"queue_lag_p95_ms"`
			} `json:"series"`
		}
		txt := mustOK(t, "get_service_metrics", call(t, e.connect(t, e.keyA), "get_service_metrics", map[string]any{"service": "billing", "since": "1h"}, &out))
		if len(out.QueueLag) != 1 || out.QueueLag[0].Operation != "order-events process" || out.QueueLag[0].Messages != 20 ||
			out.QueueLag[0].P95MS < 18000 || out.QueueLag[0].P95MS > 21000 {
			t.Errorf("queue lag %+v; want 20 messages of order-events process, p95 about 19 s", out.QueueLag)
		}
		lagged := 0
		for _, p := range out.Series {
			if p.QueueLagP95MS != nil {
				lagged++
			}
		}
		if lagged == 0 || !strings.Contains(txt, "Queue lag (consumer start less producer end):\n- order-events process: 20 messages") {
			t.Errorf("%d points with a queue lag; text:\n%s", lagged, txt)
		}
	})
}

// A batch consumer starts a trace of its own and links to the producers of its messages:
// get_trace_detail states the wait of the message that waited longest, lists the links with the
// producers' services and operations, and offers the producer's trace.
func TestGetTraceDetail_StatesTheQueueLagOfALinkedConsumer(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		start := time.Now().Add(-20 * time.Minute).UnixNano()
		first, second, batch := traceID(9101), traceID(9102), traceID(9103)
		spans := []store.Span{
			{TraceID: first, SpanID: storetest.SpanID("pub1"), Service: "orders", Operation: "order-events publish", Kind: store.KindProducer, IsEntry: true, StartNS: start, DurationNS: 3e6},
			{TraceID: second, SpanID: storetest.SpanID("pub2"), Service: "refunds", Operation: "order-events publish", Kind: store.KindProducer, IsEntry: true, StartNS: start + 60e9, DurationNS: 3e6},
			{TraceID: batch, SpanID: storetest.SpanID("sub"), Service: "billing", Operation: "order-events process", Kind: store.KindConsumer, IsEntry: true,
				StartNS: start + 3e6 + int64(514200*time.Millisecond), DurationNS: 5e6,
				Links: []byte(`[{"trace_id":"` + second + `","span_id":"` + storetest.SpanID("pub2") + `"},{"trace_id":"` + first + `","span_id":"` + storetest.SpanID("pub1") +
					`"},{"trace_id":"` + traceID(1) + `","span_id":"` + storetest.SpanID("gone") + `"}]`)},
			{TraceID: batch, SpanID: storetest.SpanID("ins"), ParentSpanID: storetest.SpanID("sub"), Service: "billing", Operation: "INSERT invoices", Kind: store.KindClient, StartNS: start + 4e6 + int64(514200*time.Millisecond), DurationNS: 2e6},
		}
		if err := e.acme.InsertBatch(context.Background(), store.Batch{Spans: spans}); err != nil {
			t.Fatal(err)
		}
		var out struct {
			QueueLag struct {
				LagMS           float64 `json:"lag_ms"`
				ProducerTraceID string  `json:"producer_trace_id"`
				Producer        struct {
					SpanID  string `json:"span_id"`
					Service string `json:"service"`
				} `json:"producer"`
				Consumer struct {
					SpanID string `json:"span_id"`
				} `json:"consumer"`
			} `json:"queue_lag"`
			Waterfall []struct {
				SpanID     string  `json:"span_id"`
				QueueLagMS float64 `json:"queue_lag_ms"`
				Links      []struct {
					TraceID   string `json:"trace_id"`
					SpanID    string `json:"span_id"`
					Service   string `json:"service"`
					Operation string `json:"operation"`
				} `json:"links"`
			} `json:"waterfall"`
			Next []struct {
				Tool string         `json:"tool"`
				Args map[string]any `json:"args"`
			} `json:"next"`
		}
		txt := mustOK(t, "get_trace_detail", call(t, e.connect(t, e.keyA), "get_trace_detail", map[string]any{"trace_id": batch}, &out))
		q := out.QueueLag
		if q.LagMS != 514200 || q.Consumer.SpanID != storetest.SpanID("sub") || q.ProducerTraceID != first || q.Producer.SpanID != storetest.SpanID("pub1") || q.Producer.Service != "orders" {
			t.Errorf("queue lag %+v; want 514200 ms before span sub, produced by orders' span pub1 of trace %s", q, first)
		}
		if len(out.Waterfall) != 2 || out.Waterfall[0].SpanID != storetest.SpanID("sub") || out.Waterfall[0].QueueLagMS != 514200 || out.Waterfall[1].QueueLagMS != 0 {
			t.Fatalf("waterfall %+v; want the consumer first, with the lag, then its INSERT", out.Waterfall)
		}
		links := out.Waterfall[0].Links
		if len(links) != 3 || links[1].TraceID != first || links[1].SpanID != storetest.SpanID("pub1") || links[1].Service != "orders" ||
			links[0].Service != "refunds" || links[2].SpanID != storetest.SpanID("gone") || links[2].Service != "" {
			t.Errorf("links %+v; want refunds' and orders' producers named, and the unstored span by id only", links)
		}
		jump := false
		for _, c := range out.Next {
			jump = jump || (c.Tool == "get_trace_detail" && c.Args["trace_id"] == first)
		}
		if !jump {
			t.Errorf("next %+v; want get_trace_detail of the producer's trace %s", out.Next, first)
		}
		for _, want := range []string{"Queue lag: billing order-events process started 514", "after orders order-events publish ended",
			"linked producer trace=" + first + " span=" + storetest.SpanID("pub1"),
			"link→ orders order-events publish trace=" + first + " span=" + storetest.SpanID("pub1")} {
			if !strings.Contains(txt, want) {
				t.Errorf("text does not contain %q:\n%s", want, txt)
			}
		}
	})
}

// "Why was my order never processed?": the producer's trace names the traces that consumed its
// message (they link to it; it does not know them), failed ones first, then the longest waits, and
// marks the publishing span with them; the suggested next call opens the failed consumer.
func TestGetTraceDetail_AProducerListsTheTracesThatConsumedItsMessages(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		start := time.Now().Add(-20 * time.Minute).UnixNano()
		id := traceID(7000)
		pub := storetest.SpanID("pub")
		spans := []store.Span{
			{TraceID: id, SpanID: storetest.SpanID("root"), Service: "orders", Operation: "POST /orders", Kind: store.KindServer, IsEntry: true, StartNS: start, DurationNS: 20e6},
			{TraceID: id, SpanID: pub, ParentSpanID: storetest.SpanID("root"), Service: "orders", Operation: "order-events publish", Kind: store.KindProducer, StartNS: start + 5e6, DurationNS: 3e6},
		}
		for i := range 6 {
			c := store.Span{TraceID: traceID(7100 + i), SpanID: storetest.SpanID("sub"), Service: "billing", Operation: "order-events process", Kind: store.KindConsumer, IsEntry: true,
				StartNS: start + 8e6 + int64(i+1)*int64(time.Second), DurationNS: 5e6, Links: []byte(`[{"trace_id":"` + id + `","span_id":"` + pub + `"}]`)}
			if i == 1 {
				c.StatusCode = store.StatusError
			}
			spans = append(spans, c)
		}
		if err := e.acme.InsertBatch(context.Background(), store.Batch{Spans: spans}); err != nil {
			t.Fatal(err)
		}
		var out struct {
			Consumers []struct {
				TraceID   string  `json:"trace_id"`
				Service   string  `json:"service"`
				Operation string  `json:"operation"`
				LagMS     float64 `json:"lag_ms"`
				Status    string  `json:"status"`
			} `json:"consumers"`
			MoreConsumers int `json:"more_consumers"`
			Consumed      struct {
				Traces  int  `json:"traces"`
				AtLeast bool `json:"at_least"`
				Listed  int  `json:"listed"`
			} `json:"consumed"`
			Waterfall []struct {
				SpanID         string `json:"span_id"`
				ConsumedBy     []any  `json:"consumed_by"`
				MoreConsumedBy int    `json:"more_consumed_by"`
			} `json:"waterfall"`
			Next []mcpserver.Call `json:"next"`
		}
		txt := mustOK(t, "get_trace_detail", call(t, e.connect(t, e.keyA), "get_trace_detail", map[string]any{"trace_id": id}, &out))
		var got []string
		for _, c := range out.Consumers {
			got = append(got, fmt.Sprintf("%s %s %s %.0f %s", c.TraceID, c.Service, c.Operation, c.LagMS, c.Status))
		}
		want := []string{traceID(7101) + " billing order-events process 2000 error", traceID(7105) + " billing order-events process 6000 ok",
			traceID(7104) + " billing order-events process 5000 ok"}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || out.MoreConsumers != 3 || out.Consumed.Traces != 6 || out.Consumed.AtLeast || out.Consumed.Listed != 3 {
			t.Errorf("consumers\n%s\nmore %d, consumed %+v; want\n%s\nmore 3 of 6, 3 listed", strings.Join(got, "\n"), out.MoreConsumers, out.Consumed, strings.Join(want, "\n"))
		}
		for _, r := range out.Waterfall {
			if (r.SpanID == pub) != (len(r.ConsumedBy) == 3 && r.MoreConsumedBy == 3) {
				t.Errorf("waterfall row %s consumed by %v (+%d); want the publish span only, by 3 (+3)", r.SpanID, r.ConsumedBy, r.MoreConsumedBy)
			}
		}
		if !strings.Contains(txt, "consumed← billing order-events process trace="+traceID(7101)) || !strings.Contains(txt, "Consumed by 6 traces") {
			t.Errorf("text does not name the consumers:\n%s", txt)
		}
		found := false
		for _, n := range out.Next {
			found = found || (n.Tool == "get_trace_detail" && n.Args["trace_id"] == traceID(7101))
		}
		if !found {
			t.Errorf("next calls %+v; want get_trace_detail of the failed consumer %s", out.Next, traceID(7101))
		}
	})
}
