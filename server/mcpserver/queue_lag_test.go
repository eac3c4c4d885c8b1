package mcpserver_test

import (
	"context"
	"strings"
	"testing"
	"time"

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
	dialects(t, func(t *testing.T, e *env) {
		start := time.Now().Add(-30 * time.Minute).Truncate(time.Minute).UnixNano()
		var b store.Batch
		for i := range 20 {
			id, at := traceID(9000+i), start+int64(i)*int64(time.Minute)
			b.Spans = append(b.Spans,
				store.Span{TraceID: id, SpanID: storetest.SpanID("pub"), ParentSpanID: storetest.SpanID("root"), Service: "orders", Operation: "order-events publish", Kind: store.KindProducer, StartNS: at, DurationNS: 2e6},
				store.Span{TraceID: id, SpanID: storetest.SpanID("sub"), ParentSpanID: storetest.SpanID("pub"), Service: "billing", Operation: "order-events process", Kind: store.KindConsumer,
					IsEntry: true, StartNS: at + 2e6 + int64(i+1)*int64(time.Second), DurationNS: 5e6})
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
