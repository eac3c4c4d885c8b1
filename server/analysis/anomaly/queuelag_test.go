package anomaly_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// messages writes hours of a producer publishing perMin messages a minute and a consumer
// processing each (~5 ms) after lag(minute) of waiting on the queue: in the producer's trace, or,
// linked, in a trace of its own with a span link to the producer (as batch consumers do).
func messages(t *testing.T, tn *store.Tenant, hours, perMin int, linked bool, lag func(m int, rng *rand.Rand) time.Duration) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 3))
	var b store.Batch
	for m := 0; m < hours*60; m++ {
		for i := 0; i < perMin; i++ {
			at := start.UnixNano() + int64(m)*60e9 + int64(i)*60e9/int64(perMin)
			trace := fmt.Sprintf("q-%d-%d", m, i)
			pub := store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("p"), ParentSpanID: storetest.SpanID("r"), Service: "orders", Operation: "orders publish",
				Kind: store.KindProducer, StartNS: at, DurationNS: 2e6}
			con := store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("c"), ParentSpanID: storetest.SpanID("p"), Service: "shipping", Operation: "orders process",
				Kind: store.KindConsumer, IsEntry: true, StartNS: at + 2e6 + int64(lag(m, rng)),
				DurationNS: int64(5e6 * math.Exp(0.4*rng.NormFloat64()))}
			if linked {
				con.TraceID, con.ParentSpanID, con.Links = storetest.TraceID("c"+trace), "", []byte(`[{"trace_id":"`+pub.TraceID+`","span_id":"`+pub.SpanID+`"}]`)
			}
			b.Spans = append(b.Spans, pub, con)
		}
		if len(b.Spans) >= 2000 {
			if err := tn.InsertBatch(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b = store.Batch{}
		}
	}
	if err := tn.InsertBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// normalLag is a healthy consumer's wait: tens of milliseconds.
func normalLag(rng *rand.Rand) time.Duration {
	return time.Duration(20e6 * math.Exp(0.6*rng.NormFloat64()))
}

// A consumer falls behind from minute onset: its lag grows by 5 seconds a minute while the time it
// spends on each message stays the same. Only the queue-lag test can see it, within 5 minutes,
// whether the consumer's spans descend from the producer's or link to them.
func TestDetect_AConsumerFallingBehindIsAQueueLagAnomaly(t *testing.T) {
	for _, linked := range []bool{false, true} {
		t.Run(map[bool]string{false: "child", true: "linked"}[linked], func(t *testing.T) { consumerFallingBehind(t, linked) })
	}
}

func consumerFallingBehind(t *testing.T, linked bool) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		messages(t, tn, 4, 10, linked, func(m int, rng *rand.Rand) time.Duration {
			if m >= onset {
				return time.Duration(m-onset)*5*time.Second + normalLag(rng)
			}
			return normalLag(rng)
		})
		if _, err := anomaly.Detect(ctx, tn, minute(onset+5).Add(2*time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Service != "shipping" || recs[0].Metric != anomaly.QueueLag || recs[0].Operation != "orders process" {
			t.Fatalf("anomalies %+v; want one queue-lag anomaly of shipping's orders process within 5 minutes", recs)
		}
		near(t, "start", recs[0].StartedNS, minute(onset))
		if !strings.Contains(recs[0].Summary, "p95 queue lag") {
			t.Errorf("summary %q does not state the queue lag", recs[0].Summary)
		}
	})
}

// A day of a healthy consumer whose lag varies by tens of milliseconds raises nothing.
func TestDetect_AHealthyConsumerRaisesNothing(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		messages(t, tn, 24, 10, false, func(_ int, rng *rand.Rand) time.Duration {
			if rng.Float64() < 0.01 { // a rebalance now and then
				return time.Duration(rng.IntN(3000)) * time.Millisecond
			}
			return normalLag(rng)
		})
		if _, err := anomaly.Detect(ctx, tn, minute(24*60), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		if recs, err := tn.AnomalyRecords(ctx, 0); err != nil || len(recs) != 0 {
			t.Fatalf("anomalies %+v (%v); want none", recs, err)
		}
	})
}
