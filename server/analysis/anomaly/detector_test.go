package anomaly_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var start = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// traffic writes hours of requests to two services, 20 a minute each, ~1 % failing, ~50 ms median;
// change alters the requests of service "api" in chosen minutes.
func traffic(t *testing.T, tn *store.Tenant, hours int, change func(minute int, s *store.Span, rng *rand.Rand)) {
	t.Helper()
	trafficBetween(t, tn, 0, hours*60, change)
}

// trafficBetween writes the traffic of minutes [from, to).
func trafficBetween(t *testing.T, tn *store.Tenant, from, to int, change func(minute int, s *store.Span, rng *rand.Rand)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, uint64(from)))
	var b store.Batch
	for m := from; m < to; m++ {
		for _, svc := range []string{"api", "db-proxy"} {
			for i := 0; i < 20; i++ {
				s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%s-%d-%d", svc, m, i)), SpanID: storetest.SpanID("1"), Service: svc, Operation: "GET /items",
					IsEntry: true, StartNS: start.UnixNano() + int64(m)*60e9 + int64(i)*3e9,
					DurationNS: int64(50e6 * math.Exp(0.5*rng.NormFloat64()))}
				if rng.Float64() < 0.01 {
					s.StatusCode = store.StatusError
				}
				if svc == "api" && change != nil {
					change(m, &s, rng)
				}
				b.Spans = append(b.Spans, s)
			}
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

func minute(m int) time.Time { return start.Add(time.Duration(m) * time.Minute) }

func near(t *testing.T, what string, got int64, want time.Time) {
	t.Helper()
	if d := time.Duration(got - want.UnixNano()); d < -2*time.Minute || d > 2*time.Minute {
		t.Errorf("%s at %s, want %s", what, time.Unix(0, got).UTC().Format("15:04"), want.Format("15:04"))
	}
}

func TestDetect_AnErrorBurstIsOneAnomalyWithItsStartAndEnd(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		traffic(t, tn, 8, func(m int, s *store.Span, rng *rand.Rand) {
			if m >= 300 && m < 330 && rng.Float64() < 0.4 {
				s.HTTPStatusCode = 503
			}
		})
		res, err := anomaly.Detect(ctx, tn, minute(8*60), anomaly.Config{})
		if err != nil || !res.Ran || res.Windows == 0 {
			t.Fatalf("detect: %+v %v", res, err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 {
			t.Fatalf("%d anomalies, want 1: %+v", len(recs), recs)
		}
		a := recs[0]
		if a.Service != "api" || a.Metric != anomaly.ErrorRate || a.Severity != "high" || a.Observed < 0.3 {
			t.Errorf("anomaly %+v: want a high api error_rate anomaly around 40 %%", a.Anomaly)
		}
		near(t, "started", a.StartedNS, minute(300))
		near(t, "ended", a.EndedNS, minute(330))
		d, err := anomaly.ParseDetails(a.Details)
		if err != nil || d[anomaly.ErrorRate].Baseline > 0.03 {
			t.Errorf("details %+v (%v): want the ~1 %% baseline", d, err)
		}
	})
}

func TestDetect_ContinuesAnOpenAnomalyAcrossTicksAndReplicas(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		traffic(t, tn, 8, func(m int, s *store.Span, _ *rand.Rand) {
			if m >= 300 && m < 360 {
				s.DurationNS *= 8
			}
		})
		// During the incident: the anomaly is open.
		if res, err := anomaly.Detect(ctx, tn, minute(322), anomaly.Config{}); err != nil || !res.Ran {
			t.Fatalf("detect at 05:22: %+v %v", res, err)
		}
		// A second replica waking for the same tick does nothing.
		if res, err := anomaly.Detect(ctx, tn, minute(322), anomaly.Config{}); err != nil || res.Ran {
			t.Fatalf("second replica ran the same tick: %+v %v", res, err)
		}
		recs, _ := tn.AnomalyRecords(ctx, 0)
		if len(recs) != 1 || recs[0].EndedNS != 0 || recs[0].Metric != anomaly.LatencyP95 {
			t.Fatalf("mid-incident anomalies %+v, want one open latency anomaly", recs)
		}
		near(t, "started", recs[0].StartedNS, minute(300))
		// Later ticks extend and then close the same anomaly.
		for m := 330; m <= 420; m += 5 {
			if _, err := anomaly.Detect(ctx, tn, minute(m), anomaly.Config{}); err != nil {
				t.Fatal(err)
			}
		}
		recs, _ = tn.AnomalyRecords(ctx, 0)
		if len(recs) != 1 {
			t.Fatalf("%d anomalies after the incident, want the same one", len(recs))
		}
		near(t, "ended", recs[0].EndedNS, minute(360))
		if r := recs[0].Observed / recs[0].Baseline; r < 4 {
			t.Errorf("p95 %.0f ms against %.0f ms: want about 8×", recs[0].Observed, recs[0].Baseline)
		}
	})
}

func TestDetect_SteadyTrafficRaisesNothing(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		traffic(t, tn, 12, nil)
		res, err := anomaly.Detect(ctx, tn, minute(12*60), anomaly.Config{})
		if err != nil || res.Windows < 100 {
			t.Fatalf("detect: %+v %v", res, err)
		}
		if recs, _ := tn.AnomalyRecords(ctx, 0); len(recs) != 0 {
			t.Fatalf("false anomalies: %+v", recs)
		}
	})
}

func TestDetect_AnalysesHistoryAsItIsLoaded(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		burst := func(m int, s *store.Span, rng *rand.Rand) {
			if m >= 400 && m < 430 && rng.Float64() < 0.5 {
				s.StatusCode = store.StatusError
			}
		}
		// A day of history arrives over two minutes of wall-clock time, long after it happened.
		now := minute(24 * 60)
		trafficBetween(t, tn, 0, 300, burst)
		if _, err := anomaly.Detect(ctx, tn, now, anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		trafficBetween(t, tn, 300, 600, burst)
		if _, err := anomaly.Detect(ctx, tn, now.Add(time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil || len(recs) != 1 || recs[0].Metric != anomaly.ErrorRate {
			t.Fatalf("anomalies %+v (%v), want the error burst of minutes 400-430", recs, err)
		}
		near(t, "started", recs[0].StartedNS, minute(400))
	})
}

// A third of api's requests become 5× slower: diluted by the ten normal minutes of the first
// 15-minute window after the onset, but plain in its last five.
func TestDetect_ASlowdownIsFlaggedByTheFirstWindowAfterItsOnset(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		traffic(t, tn, 6, func(m int, s *store.Span, rng *rand.Rand) {
			if m >= 300 && rng.Float64() < 0.3 {
				s.DurationNS *= 5
			}
		})
		if _, err := anomaly.Detect(ctx, tn, minute(305).Add(2*time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil || len(recs) != 1 || recs[0].Service != "api" || recs[0].Metric != anomaly.LatencyP95 {
			t.Fatalf("anomalies %+v (%v); want api's latency anomaly 5 minutes after the onset", recs, err)
		}
		near(t, "started", recs[0].StartedNS, minute(300))
	})
}

// A quiet service (3 requests a minute) whose every other request becomes 8× slower: the first
// window's last 5 minutes hold 15 requests, 7 or 8 of them slow, too few for the p95 test at the
// significance detection needs, but slower than the baseline's p99.
func TestDetect_AQuietServiceSlowingDownIsFlaggedByTheFirstWindowAfterItsOnset(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		rng := rand.New(rand.NewPCG(5, 5))
		var b store.Batch
		for m := 0; m < 430; m++ {
			for i := 0; i < 3; i++ {
				s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("q-%d-%d", m, i)), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /items",
					IsEntry: true, StartNS: minute(m).UnixNano() + int64(i)*20e9, DurationNS: int64(50e6 * math.Exp(0.5*rng.NormFloat64()))}
				if m >= 420 && (3*m+i)%2 == 0 {
					s.DurationNS *= 8
				}
				b.Spans = append(b.Spans, s)
			}
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := anomaly.Detect(ctx, tn, minute(425).Add(2*time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil || len(recs) != 1 || recs[0].Service != "api" || recs[0].Metric != anomaly.LatencyP95 {
			t.Fatalf("anomalies %+v (%v); want api's latency anomaly 5 minutes after the onset", recs, err)
		}
		// A chance slow request of the normal minutes may place the start a few minutes early.
		if got := recs[0].StartedNS; got < minute(415).UnixNano() || got > minute(421).UnixNano() {
			t.Errorf("started at %s, want 06:55-07:01 (onset 07:00)", time.Unix(0, got).UTC().Format("15:04"))
		}
	})
}
