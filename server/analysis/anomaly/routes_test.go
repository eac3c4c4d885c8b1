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

// onset is when the route changes in these tests.
const onset = 180

// routeTraffic writes hours of api requests, perMin a minute (~50 ms median, ~1 % failing), every
// tenth a "POST /checkout" and the rest "GET /items"; change alters checkout requests from onset on.
func routeTraffic(t *testing.T, tn *store.Tenant, hours, perMin int, change func(s *store.Span, rng *rand.Rand)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 11))
	var b store.Batch
	flush := func() {
		if err := tn.InsertBatch(context.Background(), b); err != nil {
			t.Fatal(err)
		}
		b = store.Batch{}
	}
	for m := 0; m < hours*60; m++ {
		for i := 0; i < perMin; i++ {
			s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("api-%d-%d", m, i)), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /items",
				IsEntry: true, StartNS: start.UnixNano() + int64(m)*60e9 + int64(i)*60e9/int64(perMin),
				DurationNS: int64(50e6 * math.Exp(0.5*rng.NormFloat64()))}
			if rng.Float64() < 0.01 {
				s.StatusCode = store.StatusError
			}
			if i%10 == 0 {
				s.Operation = "POST /checkout"
				if m >= onset && change != nil {
					change(&s, rng)
				}
			}
			b.Spans = append(b.Spans, s)
		}
		if len(b.Spans) >= 5000 {
			flush()
		}
	}
	flush()
}

// detectRoute runs detection as it would run 5 minutes after the onset (plus the lag for late
// spans) and returns api's one anomaly, failing unless it is about the checkout route alone.
func detectRoute(t *testing.T, tn *store.Tenant, metric string) store.AnomalyRecord {
	t.Helper()
	ctx := context.Background()
	if _, err := anomaly.Detect(ctx, tn, minute(onset+5).Add(2*time.Minute), anomaly.Config{}); err != nil {
		t.Fatal(err)
	}
	recs, err := tn.AnomalyRecords(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].Service != "api" || recs[0].Metric != metric || recs[0].Operation != "POST /checkout" {
		t.Fatalf("anomalies %+v; want one of api's POST /checkout (%s) within 5 minutes of the onset", recs, metric)
	}
	a := recs[0]
	d, err := anomaly.ParseDetails(a.Details)
	if err != nil || !d[metric].Route {
		t.Errorf("details %+v (%v); want a route finding", d, err)
	}
	near(t, "start", a.StartedNS, minute(onset))
	if !strings.Contains(a.Summary, "on POST /checkout (that route alone)") {
		t.Errorf("summary %q does not name the route", a.Summary)
	}
	return a
}

// A route with a tenth of api's requests gets 3× slower: too little of api for its own p95 test.
func TestDetect_OneSlowRouteIsAnAnomalyOfItsService(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		routeTraffic(t, tn, 4, 100, func(s *store.Span, _ *rand.Rand) { s.DurationNS *= 3 })
		detectRoute(t, tn, anomaly.LatencyP95)
	})
}

// The same route's error rate grows by 10 points: 1 point for the whole service.
func TestDetect_OneFailingRouteIsAnAnomalyOfItsService(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		routeTraffic(t, tn, 4, 400, func(s *store.Span, rng *rand.Rand) {
			if rng.Float64() < 0.1 {
				s.StatusCode = store.StatusError
			}
		})
		detectRoute(t, tn, anomaly.ErrorRate)
	})
}

// An earlier slowdown of the other route is still in the route test's last hour when the checkout
// route slows: that stale deviation must not hide the fresh one.
func TestDetect_ASlowRouteIsFlaggedWithinFiveMinutesAfterAnEarlierIncident(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		routeTraffic(t, tn, 4, 100, func(s *store.Span, _ *rand.Rand) { s.DurationNS *= 3 })
		// GET /items 3× slower in minutes 130-145: a whole-service anomaly, over by minute 180.
		var b store.Batch
		for m := 130; m < 145; m++ {
			for i := 0; i < 90; i++ {
				b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("slow-%d-%d", m, i)), SpanID: storetest.SpanID("1"), Service: "api",
					Operation: "GET /items", IsEntry: true, StartNS: minute(m).UnixNano() + int64(i)*6e8, DurationNS: 300e6})
			}
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := anomaly.Detect(ctx, tn, minute(onset+5).Add(2*time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, a := range recs {
			got = append(got, fmt.Sprintf("%s %s from %s", a.Operation, a.Metric, time.Unix(0, a.StartedNS).UTC().Format("15:04")))
			if a.Operation == "POST /checkout" && a.Metric == anomaly.LatencyP95 && a.StartedNS >= minute(onset-2).UnixNano() {
				return
			}
		}
		t.Fatalf("anomalies %v; want one of POST /checkout's latency from 03:00, 5 minutes after its onset", got)
	})
}

// Routes tested one by one add no false anomaly on a quiet day.
func TestDetect_QuietRoutesRaiseNothing(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		routeTraffic(t, tn, 24, 40, nil)
		if _, err := anomaly.Detect(ctx, tn, minute(24*60), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		if recs, err := tn.AnomalyRecords(ctx, 0); err != nil || len(recs) != 0 {
			t.Fatalf("anomalies %+v (%v); want none", recs, err)
		}
	})
}
