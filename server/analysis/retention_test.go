package analysis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestExpire_AsTheTenantRoleOncePerPeriod deletes data past retention the way a tenant pod does: as
// the tenant's own role, once per period however many replicas call it, whole days at a time (on
// PostgreSQL retention drops day partitions), and with rollups kept no longer than the spans.
func TestExpire_AsTheTenantRoleOncePerPeriod(t *testing.T) {
	ctx := context.Background()
	admin, dsn, tenantDSN := storetest.TwoTenants(t)
	start := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	insert := func(tenant string, hours ...int) {
		t.Helper()
		var b store.Batch
		for _, h := range hours {
			b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%s-%d", tenant, h)), SpanID: storetest.SpanID("1"), Service: "api",
				Operation: "GET /", IsEntry: true, StartNS: start.Add(time.Duration(h) * time.Hour).UnixNano(), DurationNS: 5e6})
		}
		if err := admin.ForTenant(tenant).InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	every := make([]int, 4*24) // a span an hour for four days
	for h := range every {
		every[h] = h
	}
	insert("team-a", every...)
	insert("team-b", every...)

	pod, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	tn := pod.ForTenant("team-a")
	now := start.Add(4*24*time.Hour + 3*time.Minute)
	engine := newEngine(t, analysis.Config{DB: pod, Tenant: "team-a", Retention: 48 * time.Hour, Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	// Whole days past retention go; the day the cutoff falls in stays until it is all past.
	dayCutoff := now.Add(-48 * time.Hour).Truncate(24 * time.Hour).UnixNano()
	oldSpans := func(tenant string) int {
		return storetest.QueryInt(t, dsn, fmt.Sprintf("SELECT count(*) FROM spans WHERE tenant_id = '%s' AND start_ns < %d", tenant, dayCutoff))
	}

	if err := engine.Expire(ctx, tn); err != nil {
		t.Fatalf("retention as the tenant role: %v", err)
	}
	if n := oldSpans("team-a"); n != 0 {
		t.Errorf("%d spans of team-a in days past retention remain", n)
	}
	if n, want := storetest.Count(t, dsn, "spans", "team-a"), 2*24; n != want {
		t.Errorf("team-a keeps %d spans, want the %d of the two days within retention", n, want)
	}
	if n := storetest.Count(t, dsn, "spans", "team-b"); n != 4*24 {
		t.Errorf("team-b has %d spans left, want all %d", n, 4*24)
	}

	insert("team-a", 0) // arrives late; another replica runs retention within the same period
	if err := engine.Expire(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if n := oldSpans("team-a"); n != 1 {
		t.Errorf("%d old spans after a second run in the same period, want the late one left for the next period", n)
	}
	now = now.Add(10 * time.Minute)
	cutoff := now.Add(-48 * time.Hour).UnixNano()
	if err := engine.Expire(ctx, tn); err != nil {
		t.Fatal(err)
	}
	if n := oldSpans("team-a"); n != 0 {
		t.Errorf("%d old spans after the next period's run, want none", n)
	}

	if err := engine.Tick(ctx, tn); err != nil {
		t.Fatal(err)
	}
	first, err := tn.FirstRollup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if first < cutoff {
		t.Errorf("oldest rollup at %s, want none before %s: rollups must not outlive a shorter retention",
			time.Unix(0, first).UTC(), time.Unix(0, cutoff).UTC())
	}
}

// newEngine constructs the analysis engine of cfg, failing the test on a bad configuration.
func newEngine(t testing.TB, cfg analysis.Config) *analysis.Engine {
	t.Helper()
	e, err := analysis.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}
