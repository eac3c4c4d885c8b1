package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/sketch"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// rollupTotals sums rows the way readers do.
func rollupTotals(t *testing.T, rows []store.Rollup) (n, errs int64, cost float64, h *sketch.Histogram) {
	t.Helper()
	h = &sketch.Histogram{}
	for _, r := range rows {
		n += r.N
		errs += r.Errors
		cost += r.CostUSD
		if err := h.AddEncoded(r.Hist); err != nil {
			t.Fatal(err)
		}
	}
	return n, errs, cost, h
}

// ingestHours writes, in batches of 50, one request per second of hours hours from base: every
// seventh fails, durations cycle 1..100 ms, and every request makes one LLM call costing 0.001.
func ingestHours(t *testing.T, tn *store.Tenant, base int64, hours int) {
	t.Helper()
	var b store.Batch
	cost := 0.001
	for i := 0; i < hours*3600; i++ {
		s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("t%06d", i)), SpanID: storetest.SpanID("s1"), Service: "pay", Operation: "POST /charge",
			IsEntry: true, StartNS: base + int64(i)*1e9, DurationNS: int64(i%100+1) * 1e6}
		if i%7 == 0 {
			s.HTTPStatusCode = 503
		}
		child := s
		child.SpanID, child.ParentSpanID, child.IsEntry = storetest.SpanID("s2"), s.SpanID, false
		b.Spans = append(b.Spans, s, child)
		b.LLMCalls = append(b.LLMCalls, store.LLMCall{TraceID: s.TraceID, SpanID: "s2", Service: "pay",
			RequestModel: "gpt-4o-mini", InputTokens: 10, OutputTokens: 5, CostUSD: &cost, StartNS: s.StartNS, DurationNS: 5e8})
		if len(b.Spans) == 100 {
			if err := tn.InsertBatch(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b = store.Batch{}
		}
	}
}

func TestRollups_CountEveryRequestOnceBeforeAndAfterCompaction(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		base := int64(1_700_000_000) / 3600 * 3600 * 1e9
		ingestHours(t, tn, base, 3)
		ingestHours(t, db.ForTenant("other"), base, 1)

		check := func(stage string) {
			t.Helper()
			for _, hourly := range []bool{false, true} {
				// A window that starts and ends mid-hour exercises minute edges around whole hours.
				q := store.RollupQuery{Kind: store.RollupRequests, Service: "pay", From: base + 30*store.Minute,
					To: base + 150*store.Minute, Hourly: hourly}
				rows, err := tn.Rollups(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				n, errs, _, h := rollupTotals(t, rows)
				if n != 7200 || h.Count() != 7200 || errs != 1028 {
					t.Errorf("%s, hourly=%v: %d requests (histogram %d), %d errors; want 7200, 1028 errors", stage, hourly, n, h.Count(), errs)
				}
				totals := q
				totals.ServiceTotals = true
				rows, err = tn.Rollups(ctx, totals)
				if err != nil {
					t.Fatal(err)
				}
				if n, errs, _, th := rollupTotals(t, rows); n != 7200 || errs != 1028 || th.Quantile(0.9) != h.Quantile(0.9) {
					t.Errorf("%s, hourly=%v, service totals: %d requests, %d errors, p90 %.0f; want the per-operation sums", stage, hourly, n, errs, th.Quantile(0.9))
				}
				q.Kind = store.RollupLLM
				rows, err = tn.Rollups(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if n, _, cost, _ := rollupTotals(t, rows); n != 7200 || cost < 7.199 || cost > 7.201 {
					t.Errorf("%s, hourly=%v: %d LLM calls costing %.3f, want 7200 costing 7.2", stage, hourly, n, cost)
				}
			}
		}
		check("partial rows only")
		st, err := tn.CompactRollups(ctx, base+3*store.Hour, 24*store.Hour, 90*24*store.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hours != 3 || st.PartialRows == 0 {
			t.Fatalf("compaction: %+v, want 3 hours", st)
		}
		check("after compaction")
		// Late data for a compacted hour is counted too, before and after the next compaction.
		late := store.Batch{Spans: []store.Span{{TraceID: storetest.TraceID("late"), SpanID: storetest.SpanID("s"), Service: "pay", Operation: "POST /charge",
			IsEntry: true, StartNS: base + 40*store.Minute, DurationNS: 1e6}}}
		if err := tn.InsertBatch(ctx, late); err != nil {
			t.Fatal(err)
		}
		rows, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, From: base, To: base + 3*store.Hour, Hourly: true})
		if err != nil {
			t.Fatal(err)
		}
		if n, _, _, _ := rollupTotals(t, rows); n != 3*3600+1 {
			t.Fatalf("with a late request: %d requests, want %d", n, 3*3600+1)
		}
		if _, err := tn.CompactRollups(ctx, base+3*store.Hour, 24*store.Hour, 90*24*store.Hour); err != nil {
			t.Fatal(err)
		}
		for _, hourly := range []bool{false, true} {
			rows, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, From: base, To: base + 3*store.Hour, Hourly: hourly})
			if err != nil {
				t.Fatal(err)
			}
			if n, _, _, _ := rollupTotals(t, rows); n != 3*3600+1 {
				t.Fatalf("late request compacted, hourly=%v: %d requests, want %d", hourly, n, 3*3600+1)
			}
		}
	})
}

func TestCompactRollups_KeepsOnlyHourlyRowsPastMinuteRetention(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		base := int64(1_700_000_000) / 3600 * 3600 * 1e9
		ingestHours(t, tn, base, 2)
		now := base + 50*store.Hour
		st, err := tn.CompactRollups(ctx, now, 24*store.Hour, 49*store.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if st.Hours != 2 {
			t.Fatalf("compaction: %+v", st)
		}
		minutes, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, From: base, To: base + 2*store.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if len(minutes) != 0 {
			t.Fatalf("%d minute rows kept past minute retention", len(minutes))
		}
		hours, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, From: base, To: base + 2*store.Hour, Hourly: true})
		if err != nil {
			t.Fatal(err)
		}
		// The first hour is past hourly retention too.
		if n, _, _, _ := rollupTotals(t, hours); n != 3600 {
			t.Fatalf("%d requests in hourly rows, want the second hour's 3600", n)
		}
	})
}

// One unreadable rollup row (here a corrupt histogram; before size limits, a name too long for the
// unique index) used to fail every compaction of the tenant: partial rows piled up for good, since
// retention deleted only merged ones.
func TestCompactRollups_SkipsASeriesItCannotMergeAndCompactsTheRest(t *testing.T) {
	for _, d := range []struct {
		name, corrupt string
		dsn           func(testing.TB) string
	}{{"postgres", `'\xff'::bytea`, storetest.PostgresDSN}, {"sqlite", `X'FF'`, storetest.SQLiteDSN}} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			dsn := d.dsn(t)
			db := storetest.Open(t, dsn)
			tn := db.ForTenant("acme")
			base := int64(1_700_000_000) / 3600 * 3600 * 1e9
			ingestHours(t, tn, base, 1)
			insertBad := func(bucket int64) {
				if err := tn.EnsurePartitions(ctx, "metric_rollups", bucket); err != nil {
					t.Fatal(err)
				}
				storetest.QueryInt(t, dsn, fmt.Sprintf(`INSERT INTO metric_rollups (tenant_id, kind, service, name, res_ns, bucket_ns, partial, n, errors, cost_usd, input_tokens, output_tokens, hist)
					VALUES ('acme', 1, 'pay', 'broken', %d, %d, true, 1, 0, 0, 0, 0, %s) RETURNING 1`, store.Minute, bucket, d.corrupt))
			}
			insertBad(base + 5*store.Minute)
			insertBad(base - 100*24*store.Hour) // older than hourly retention: expires unmerged
			now := base + 2*store.Hour
			st, err := tn.CompactRollups(ctx, now, 8*24*store.Hour, 90*24*store.Hour)
			if err != nil {
				t.Fatalf("compaction failed as a whole: %v", err)
			}
			if len(st.Skipped) == 0 {
				t.Error("nothing reported skipped, want the broken series")
			}
			for _, s := range st.Skipped {
				if !strings.Contains(s.Key, `name="broken"`) {
					t.Errorf("skipped %v, want only the broken series", s)
				}
			}
			if n := storetest.QueryInt(t, dsn, "SELECT count(*) FROM metric_rollups WHERE partial AND name <> 'broken'"); n != 0 {
				t.Errorf("%d partial rows of the good series left, want all merged", n)
			}
			if n := storetest.QueryInt(t, dsn, "SELECT count(*) FROM metric_rollups WHERE partial AND name = 'broken'"); n != 1 {
				t.Errorf("%d partial rows of the broken series, want 1 (the old one expired)", n)
			}
			rows, err := tn.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, Service: "pay", Name: "POST /charge", From: base, To: base + store.Hour, Hourly: true})
			if err != nil {
				t.Fatal(err)
			}
			if n, _, _, _ := rollupTotals(t, rows); n != 3600 {
				t.Errorf("%d requests counted after compaction, want 3600", n)
			}
		})
	}
}

// A consumer's queue lag is counted whether its producer span came in the same batch or an
// earlier one; a consumer whose parent is no producer, or was never seen, has no lag.
func TestRollups_QueueLagOfConsumersFromTheirProducers(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		base := int64(1_700_000_000) / 3600 * 3600 * 1e9
		producer := func(trace string) store.Span {
			return store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("p"), ParentSpanID: storetest.SpanID("r"), Service: "orders", Operation: "orders publish",
				Kind: store.KindProducer, StartNS: base, DurationNS: 1e6}
		}
		consumer := func(trace, parent string, lag int64) store.Span {
			return store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("c"), ParentSpanID: storetest.SpanID(parent), Service: "shipping", Operation: "orders process",
				Kind: store.KindConsumer, IsEntry: true, StartNS: base + 1e6 + lag, DurationNS: 5e6}
		}
		batches := []store.Batch{
			{Spans: []store.Span{producer("a"), consumer("a", "p", 2e9), producer("b")}},
			{Spans: []store.Span{consumer("b", "p", 40e9), consumer("c", "p", 9e9), consumer("d", "x", 9e9)}},
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
		if n != 2 || len(rows) == 0 || rows[0].Name != "orders process" {
			t.Fatalf("queue lag rows %+v count %d messages, want 2 of orders process", rows, n)
		}
		if lo, hi := h.Quantile(0), h.Quantile(1); lo < 1.9e9 || lo > 2.1e9 || hi < 39e9 || hi > 41e9 {
			t.Errorf("lags range from %.2fs to %.2fs, want 2s and 40s", lo/1e9, hi/1e9)
		}
	})
}
