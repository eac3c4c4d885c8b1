package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

const ms = int64(1e6)

// seedRequests stores n single-span traces of service, one per millisecond from start, with
// durations 1..n ms; every tenth fails and carries http.route /pay.
func seedRequests(t *testing.T, tn *store.Tenant, service string, start int64, n int) {
	t.Helper()
	var b store.Batch
	for i := 1; i <= n; i++ {
		s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%s-%03d", service, i)), SpanID: storetest.SpanID(fmt.Sprintf("s%03d", i)), Service: service,
			Operation: "GET /", IsEntry: true, StartNS: start + int64(i)*ms, DurationNS: int64(i) * ms,
			Attributes: []byte(`{"user.id":"u1","retries":3}`)}
		if i%10 == 0 {
			s.StatusCode = store.StatusError
			s.HTTPRoute = "/pay"
		}
		b.Spans = append(b.Spans, s)
	}
	if err := tn.InsertBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

func TestSearchTraces_KeysetPagesVisitEveryRequestOnceInDurationOrder(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		seedRequests(t, tn, "pay", 0, 25)
		seedRequests(t, db.ForTenant("other"), "pay", 0, 5)
		q := store.TraceQuery{From: 0, To: 1e12, Service: "pay", SortByDuration: true, Limit: 10}
		var seen []int64
		for {
			hits, err := tn.SearchTraces(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range hits {
				seen = append(seen, h.DurationNS/ms)
			}
			if len(hits) < q.Limit {
				break
			}
			k := hits[len(hits)-1].Key(true)
			q.After = &k
		}
		if len(seen) != 25 || seen[0] != 25 || seen[24] != 1 {
			t.Fatalf("durations seen: %v, want 25 down to 1", seen)
		}
		q.ErrorsOnly = true
		if c, err := tn.CountTraces(ctx, q); err != nil || c.Hits != 2 || c.Scanned != 25 || !c.Exact {
			t.Errorf("count of failed requests = %+v, %v; want 2 of 25, exact", c, err)
		}
	})
}

func TestSearchTraces_FiltersByPromotedAndJSONAttributes(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		seedRequests(t, tn, "pay", 0, 30)
		for _, tc := range []struct {
			attrs map[string]string
			want  int
		}{
			{map[string]string{"http.route": "/pay"}, 3},
			{map[string]string{"user.id": "u1"}, 30},
			{map[string]string{"retries": "3"}, 30},
			{map[string]string{"user.id": "u2"}, 0},
		} {
			hits, err := tn.SearchTraces(ctx, store.TraceQuery{To: 1e12, Attributes: tc.attrs, Limit: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(hits) != tc.want {
				t.Errorf("attributes %v: %d hits, want %d", tc.attrs, len(hits), tc.want)
			}
		}
		errs, err := tn.SearchTraces(ctx, store.TraceQuery{To: 1e12, ErrorsOnly: true, Limit: 100})
		if err != nil || len(errs) != 3 || !errs[0].Error {
			t.Errorf("errors only: %+v, %v", errs, err)
		}
	})
}

func TestTraceOverviews_SummarisesSpansServicesAndRoot(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		err := tn.InsertBatch(ctx, store.Batch{Spans: []store.Span{
			{TraceID: storetest.TraceID("t1"), SpanID: storetest.SpanID("a"), Service: "web", Operation: "GET /", IsEntry: true, StartNS: 100, DurationNS: 50},
			{TraceID: storetest.TraceID("t1"), SpanID: storetest.SpanID("b"), ParentSpanID: storetest.SpanID("a"), Service: "db", Operation: "SELECT", StartNS: 110, DurationNS: 10},
			{TraceID: storetest.TraceID("t1"), SpanID: storetest.SpanID("c"), ParentSpanID: storetest.SpanID("a"), Service: "db", Operation: "SELECT", StartNS: 120, DurationNS: 40, StatusCode: store.StatusError},
		}})
		if err != nil {
			t.Fatal(err)
		}
		ov, err := tn.TraceOverviews(ctx, []string{storetest.TraceID("t1"), "missing"})
		if err != nil {
			t.Fatal(err)
		}
		o := ov[storetest.TraceID("t1")]
		if o == nil || o.SpanCount != 3 || o.ErrorCount != 1 || o.RootService != "web" || o.RootOperation != "GET /" ||
			o.StartNS != 100 || o.EndNS != 160 || fmt.Sprint(o.Services) != "[db web]" || ov["missing"] != nil {
			t.Errorf("overview: %+v", o)
		}
		spans, total, err := tn.TraceSpans(ctx, storetest.TraceID("t1"), 2)
		if err != nil || len(spans) != 2 || total != 3 || spans[0].SpanID != storetest.SpanID("a") {
			t.Errorf("TraceSpans cut at 2: %d spans, total %d, %v", len(spans), total, err)
		}
	})
}

func TestServiceStats_ComputesNearestRankPercentilesAndErrors(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		seedRequests(t, tn, "pay", 0, 100)
		seedRequests(t, tn, "web", 0, 10)
		stats, err := tn.ServiceStats(ctx, 0, 1e12)
		if err != nil {
			t.Fatal(err)
		}
		if len(stats) != 2 {
			t.Fatalf("stats: %+v", stats)
		}
		p := stats[0]
		if p.Key != "pay" || p.Requests != 100 || p.Errors != 10 || p.P50NS != 50*ms || p.P90NS != 90*ms || p.P95NS != 95*ms || p.P99NS != 99*ms {
			t.Errorf("pay: %+v", p)
		}
		m, err := tn.ServiceMetrics(ctx, store.MetricsQuery{Service: "pay", From: 0, To: 1e12, StepNS: 50 * ms, ByOperation: true})
		if err != nil {
			t.Fatal(err)
		}
		if m.Total.Requests != 100 || len(m.Series) != 3 || m.Series[0].Key != "0" || m.Series[0].Requests != 49 ||
			len(m.Operations) != 1 || m.Operations[0].Key != "GET /" {
			t.Errorf("metrics: %+v", m)
		}
	})
}

func TestLLMCalls_SearchSortsByCostAndStatsGroupByModel(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		cost := func(v float64) *float64 { return &v }
		err := tn.InsertBatch(ctx, store.Batch{LLMCalls: []store.LLMCall{
			{TraceID: "t1", SpanID: "a", Service: "reco", Provider: "openai", RequestModel: "gpt-4o", ResponseModel: "gpt-4o-2024", InputTokens: 100, OutputTokens: 50, CostUSD: cost(0.5), StartNS: 10, DurationNS: 5},
			{TraceID: "t2", SpanID: "b", Service: "reco", Provider: "openai", RequestModel: "gpt-4o-mini", InputTokens: 10, OutputTokens: 5, CostUSD: cost(0.01), StartNS: 20, DurationNS: 7},
			{TraceID: "t3", SpanID: "c", Service: "chat", Provider: "acme", RequestModel: "mystery", InputTokens: 1000, OutputTokens: 1, StartNS: 30, DurationNS: 9, StatusCode: 2},
		}})
		if err != nil {
			t.Fatal(err)
		}
		calls, err := tn.SearchLLMCalls(ctx, store.LLMQuery{To: 100, Sort: store.LLMByCost, Limit: 2})
		if err != nil || len(calls) != 2 || calls[0].SpanID != "a" || calls[1].SpanID != "b" {
			t.Fatalf("by cost: %+v, %v", calls, err)
		}
		next, err := tn.SearchLLMCalls(ctx, store.LLMQuery{To: 100, Sort: store.LLMByCost, Limit: 2,
			After: &store.LLMKey{Key: *calls[1].CostUSD, ID: calls[1].ID}})
		if err != nil || len(next) != 1 || next[0].SpanID != "c" || next[0].CostUSD != nil {
			t.Fatalf("page 2 by cost: %+v, %v", next, err)
		}
		groups, err := tn.LLMStats(ctx, store.LLMQuery{To: 100}, store.LLMByModel)
		if err != nil || len(groups) != 3 || groups[0].Key != "gpt-4o" || groups[0].CostUSD != 0.5 ||
			groups[2].Key != "mystery" || groups[2].UnknownCostCalls != 1 || groups[2].Errors != 1 {
			t.Errorf("by model: %+v, %v", groups, err)
		}
		pairs, err := tn.LLMStats(ctx, store.LLMQuery{To: 100}, store.LLMByModelAndService)
		if err != nil || len(pairs) != 3 || pairs[0].Key != "gpt-4o" || pairs[0].Sub != "reco" || pairs[2].Sub != "chat" {
			t.Errorf("by model and service: %+v, %v", pairs, err)
		}
		days, err := tn.LLMStats(ctx, store.LLMQuery{To: 100}, store.LLMByDay)
		if err != nil || len(days) != 1 || days[0].Key != "0" || days[0].Calls != 3 {
			t.Errorf("by day: %+v, %v", days, err)
		}
	})
}

func TestAnalysisTables_RoundTripAndScopeByTenant(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn, other := db.ForTenant("acme"), db.ForTenant("other")
		for _, x := range []*store.Tenant{tn, other} {
			if err := x.PutAlertRule(ctx, store.AlertRule{ID: "r1", Service: "pay", Metric: "p95_ms", Comparison: ">", Threshold: 500, WindowSeconds: 300, Severity: "high", Enabled: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := x.InsertAlert(ctx, store.Alert{RuleID: "r1", State: store.AlertFiring, StartedNS: 5, Value: 900, Threshold: 500, LastEvalNS: 6}); err != nil {
				t.Fatal(err)
			}
		}
		alerts, err := tn.ActiveAlerts(ctx, "pay", "")
		if err != nil || len(alerts) != 1 || alerts[0].Metric != "p95_ms" || alerts[0].Value != 900 {
			t.Errorf("alerts: %+v, %v", alerts, err)
		}
		id, err := tn.InsertAnomaly(ctx, store.Anomaly{Service: "pay", Metric: "p95_ms", Severity: "high", StartedNS: 10, Baseline: 100, Observed: 400, Score: 6})
		if err != nil {
			t.Fatal(err)
		}
		if err := tn.SaveRCAReport(ctx, store.RCAReport{AnomalyID: id, CreatedNS: 11, Summary: "slow query", Causes: []byte(`[{"service":"pay"}]`)}); err != nil {
			t.Fatal(err)
		}
		found, err := tn.SearchAnomalies(ctx, store.AnomalyQuery{From: 0, To: 100, Severities: []string{"high", "critical"}, Limit: 10})
		if err != nil || len(found) != 1 || !found[0].HasRCA {
			t.Errorf("anomalies: %+v, %v", found, err)
		}
		if _, err := other.Anomaly(ctx, id); err != store.ErrNotFound {
			t.Errorf("another tenant read the anomaly: %v", err)
		}
		if r, err := tn.RCAReport(ctx, id); err != nil || r.Summary != "slow query" || string(r.Causes) == "" {
			t.Errorf("report: %+v, %v", r, err)
		}
		if err := tn.CreateBreakpoint(ctx, store.Breakpoint{ID: "bp1", Service: "pay", File: "pay.go", Line: 42, CreatedNS: 1}); err != nil {
			t.Fatal(err)
		}
		if err := tn.CreateBreakpoint(ctx, store.Breakpoint{ID: "bp2", Service: "pay", File: "pay.go", Line: 43, CreatedNS: 1, ExpiresNS: 2}); err != nil {
			t.Fatal(err)
		}
		bps, err := tn.ActiveBreakpoints(ctx, "", 10)
		if err != nil || len(bps) != 1 || bps[0].ID != "bp1" {
			t.Errorf("active breakpoints: %+v, %v", bps, err)
		}
		if _, err := tn.InsertSnapshot(ctx, store.Snapshot{BreakpointID: "bp1", Service: "pay", TraceID: "t1", CapturedNS: 7, Variables: []byte(`{"x":1}`)}); err != nil {
			t.Fatal(err)
		}
		snaps, err := tn.SearchSnapshots(ctx, store.SnapshotQuery{From: 0, To: 100, TraceID: "t1", Limit: 5})
		if err != nil || len(snaps) != 1 || string(snaps[0].Stack) != "[]" {
			t.Errorf("snapshots: %+v, %v", snaps, err)
		}
		if n, err := other.CountSnapshots(ctx, store.SnapshotQuery{To: 100}, 10); err != nil || n != 0 {
			t.Errorf("other tenant counts %d snapshots, %v", n, err)
		}
	})
}

func TestServiceVersions_ComparesVersionsOnASampleOfTraces(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		var b store.Batch
		for i := 0; i < 512; i++ {
			s := store.Span{TraceID: fmt.Sprintf("%032x", i), SpanID: storetest.SpanID("s"), Service: "pay", ServiceVersion: "1.0", Operation: "POST",
				IsEntry: true, StartNS: int64(i) * ms, DurationNS: 10 * ms}
			if i%2 == 1 {
				s.ServiceVersion, s.DurationNS = "2.0", 100*ms
			}
			b.Spans = append(b.Spans, s)
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		all, err := tn.ServiceVersions(ctx, "pay", 0, 1e12, 1)
		if err != nil || len(all) != 2 || all[0].Requests != 256 || all[1].Requests != 256 || all[0].P95TraceID == "" {
			t.Fatalf("versions: %+v, %v", all, err)
		}
		half, err := tn.ServiceVersions(ctx, "pay", 0, 1e12, 0.5)
		if err != nil || len(half) != 2 || half[0].Requests+half[1].Requests != 256 {
			t.Fatalf("a half sample of trace ids: %+v, %v", half, err)
		}
		slow := half[0]
		if slow.Key != "2.0" {
			slow = half[1]
		}
		if slow.P95NS != 100*ms {
			t.Errorf("p95 of 2.0 on the sample: %d", slow.P95NS)
		}
	})
}

func TestServiceVersions_OneVersionInTheWindowHasNothingToCompare(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		var b store.Batch
		for i := 0; i < 100; i++ {
			s := store.Span{TraceID: fmt.Sprintf("%032x", i), SpanID: storetest.SpanID("s"), Service: "pay", ServiceVersion: "1.0", Operation: "POST",
				IsEntry: true, StartNS: int64(i) * ms, DurationNS: 10 * ms}
			if i >= 50 { // deployed at 50 ms
				s.ServiceVersion = "2.0"
			}
			b.Spans = append(b.Spans, s)
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if after, err := tn.ServiceVersions(ctx, "pay", 60*ms, 100*ms, 1); err != nil || len(after) != 0 {
			t.Errorf("only 2.0 served [60 ms, 100 ms): %+v, %v", after, err)
		}
		if across, err := tn.ServiceVersions(ctx, "pay", 40*ms, 60*ms, 1); err != nil || len(across) != 2 {
			t.Errorf("the deploy lies in [40 ms, 60 ms): %+v, %v", across, err)
		}
	})
}
