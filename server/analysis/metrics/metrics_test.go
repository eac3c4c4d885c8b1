package metrics_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/analysistest"
	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// within2pct compares every percentile and count of a rollup answer with the exact one.
func within2pct(t *testing.T, what string, got, want store.RequestStats) {
	t.Helper()
	if got.Requests != want.Requests || got.Errors != want.Errors {
		t.Errorf("%s: %d requests %d errors, exact %d and %d", what, got.Requests, got.Errors, want.Requests, want.Errors)
	}
	for _, p := range []struct {
		name      string
		got, want int64
	}{{"p50", got.P50NS, want.P50NS}, {"p90", got.P90NS, want.P90NS}, {"p95", got.P95NS, want.P95NS}, {"p99", got.P99NS, want.P99NS}} {
		if rel := math.Abs(float64(p.got-p.want)) / float64(p.want); rel > 0.02 {
			t.Errorf("%s %s: %.3f ms from rollups, exact %.3f ms (%.1f%% off)", what, p.name, float64(p.got)/1e6, float64(p.want)/1e6, 100*rel)
		}
	}
}

func TestPercentiles_WithinTwoPercentOfExactOnDemoData(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		analysistest.LoadDemo(t, db, demo.Options{Seed: 1})
		tn := db.ForTenant(analysistest.Tenant)
		end := analysistest.End.UnixNano()
		windows := []struct {
			name     string
			from, to int64
		}{
			{"whole day", end - 25*store.Hour, end},
			{"six hours, minute edges", end - 9*store.Hour - 17*store.Minute, end - 3*store.Hour + 5*store.Minute},
			{"one hour", end - 8*store.Hour, end - 7*store.Hour},
		}
		check := func(stage string) {
			for _, w := range windows {
				exact, err := tn.ServiceStats(ctx, w.from, w.to)
				if err != nil {
					t.Fatal(err)
				}
				got, err := metrics.ServiceStats(ctx, tn, w.from, w.to)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(exact) || len(exact) < 8 {
					t.Fatalf("%s %s: %d services from rollups, %d exact", stage, w.name, len(got), len(exact))
				}
				var requests int64
				for i := range exact {
					within2pct(t, stage+" "+w.name+" "+exact[i].Key, got[i], exact[i])
					requests += exact[i].Requests
				}
				if n, err := metrics.Count(ctx, tn, store.RollupRequests, "", w.from, w.to); err != nil || n != requests {
					t.Errorf("%s %s: Count %d, %v; %d requests", stage, w.name, n, err, requests)
				}
			}
			q := store.MetricsQuery{Service: "checkout-service", From: windows[0].from, To: windows[0].to, StepNS: 6 * store.Hour, ByOperation: true}
			exact, err := tn.ServiceMetrics(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := metrics.ServiceMetrics(ctx, tn, q)
			if err != nil {
				t.Fatal(err)
			}
			within2pct(t, stage+" checkout-service total", got.Total, exact.Total)
			if len(got.Operations) != len(exact.Operations) {
				t.Fatalf("%s: %d operations from rollups, %d exact", stage, len(got.Operations), len(exact.Operations))
			}
			for i := range exact.Operations {
				within2pct(t, stage+" checkout-service "+exact.Operations[i].Key, got.Operations[i], exact.Operations[i])
			}
		}
		check("before compaction")
		if _, err := tn.CompactRollups(ctx, end, 8*24*store.Hour, 90*24*store.Hour); err != nil {
			t.Fatal(err)
		}
		check("after compaction")
	})
}

func TestServiceMetrics_SeriesBucketsAreStepAlignedAndSumToTotal(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		base := time.Date(2025, 1, 1, 10, 0, 0, 0, time.UTC).UnixNano()
		var b store.Batch
		for i := 0; i < 240; i++ { // one request a minute for four hours
			b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID("t"), SpanID: storetest.SpanID(strconv.Itoa(i)), Service: "pay", Operation: "GET /",
				IsEntry: true, StartNS: base + int64(i)*store.Minute + 1e9, DurationNS: 1e6})
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		m, err := metrics.ServiceMetrics(ctx, tn, store.MetricsQuery{Service: "pay", From: base + 30*store.Minute, To: base + 4*store.Hour, StepNS: store.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var sum int64
		for _, s := range m.Series {
			sum += s.Requests
		}
		if m.Total.Requests != 210 || sum != 210 || len(m.Series) != 4 || m.Series[0].Key != "1735725600000000000" || m.Series[0].Requests != 30 {
			t.Fatalf("total %d, series %+v; want 210 requests in 4 hourly buckets from 10:00, 30 in the first", m.Total.Requests, m.Series)
		}
	})
}

func TestHuman_WritesDurationsWithoutZeroUnits(t *testing.T) {
	for d, want := range map[time.Duration]string{10 * time.Minute: "10m", time.Hour: "1h", 90 * time.Minute: "1h30m",
		20 * time.Minute: "20m", 24 * time.Hour: "24h", 90 * time.Second: "1m30s"} {
		if got := metrics.Human(d); got != want {
			t.Errorf("Human(%v) = %q, want %q", d, got, want)
		}
	}
}
