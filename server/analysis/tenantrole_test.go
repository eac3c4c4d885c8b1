package analysis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestTick_RunsAsTheTenantRoleAndSeesOnlyItsTenant runs the background analysis the way a tenant pod
// does, connected as the tenant's own PostgreSQL role: the grants must suffice for every job, and
// row-level security must keep the other tenant's rollups out of reach.
func TestTick_RunsAsTheTenantRoleAndSeesOnlyItsTenant(t *testing.T) {
	ctx := context.Background()
	admin, _, tenantDSN := storetest.TwoTenants(t)
	start := time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC)
	for _, tenant := range []string{"team-a", "team-b"} {
		var b store.Batch
		for m := 0; m < 4*60; m++ {
			for i := 0; i < 10; i++ {
				s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%s-%d-%d", tenant, m, i)), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /",
					IsEntry: true, StartNS: start.Add(time.Duration(m)*time.Minute + time.Duration(i)*time.Second).UnixNano(), DurationNS: 5e6}
				if m >= 200 && i < 6 {
					s.StatusCode = store.StatusError
				}
				b.Spans = append(b.Spans, s)
			}
		}
		if err := admin.ForTenant(tenant).InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := admin.ForTenant("team-a").PutAlertRule(ctx, store.AlertRule{ID: "errors", Service: "api", Metric: "error_rate",
		Comparison: ">", Threshold: 0.3, WindowSeconds: 300, Severity: "high", Enabled: true}); err != nil {
		t.Fatal(err)
	}

	pod, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	tn := pod.ForTenant("team-a")
	now := start.Add(4*time.Hour + 3*time.Minute)
	engine := newEngine(t, analysis.Config{DB: pod, Tenant: "team-a", Now: func() time.Time { return now },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err := engine.Tick(ctx, tn); err != nil {
		t.Fatalf("analysis tick as the tenant role: %v", err)
	}
	if alerts, err := tn.ActiveAlerts(ctx, "", ""); err != nil || len(alerts) != 1 {
		t.Errorf("firing alerts %+v (%v), want the error-rate rule", alerts, err)
	}
	if recs, err := tn.AnomalyRecords(ctx, 0); err != nil || len(recs) != 1 {
		t.Errorf("anomalies %+v (%v), want the error burst", recs, err)
	} else if _, err := tn.RCAReport(ctx, recs[0].ID); err != nil {
		t.Errorf("no root-cause analysis stored as the tenant role: %v", err)
	}

	other := pod.ForTenant("team-b")
	rows, err := other.Rollups(ctx, store.RollupQuery{Kind: store.RollupRequests, From: start.UnixNano(), To: now.UnixNano(), Hourly: true})
	if err != nil || len(rows) != 0 {
		t.Fatalf("team-a's role reads %d rollups of team-b (%v)", len(rows), err)
	}
	// Nothing of team-b is compacted, and dropping its rollup partitions is refused outright.
	st, err := other.CompactRollups(ctx, now.UnixNano(), int64(24*time.Hour), int64(90*24*time.Hour))
	if st.PartialRows != 0 || st.Partitions != 0 || (err != nil && !strings.Contains(err.Error(), "manages the partitions of tenant team-a")) {
		t.Fatalf("team-a's role compacted team-b's rollups: %+v %v", st, err)
	}
}
