package store_test

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var retentionCutoff = time.Date(2025, 4, 1, 0, 0, 0, 0, time.UTC).UnixNano()

// Rows seedRetention writes per tenant before the cutoff (old) and at or after it (recent).
const (
	oldSpans, recentSpans         = 40, 5
	oldLLMCalls, recentLLMCalls   = 9, 3
	oldSnapshots, recentSnapshots = 8, 2
)

// seedRetention writes spans, LLM calls and snapshots of tenant spread over three days before the
// cutoff, a dozen spans sharing one timestamp (more than a batch), and a few rows from the cutoff on.
func seedRetention(t *testing.T, db *store.DB, tenant string) {
	t.Helper()
	ctx := context.Background()
	var b store.Batch
	span := func(i int, at int64) store.Span {
		return store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%s-%d", tenant, i)), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /",
			IsEntry: i%3 == 0, StartNS: at, DurationNS: 1e6}
	}
	for i := 0; i < oldSpans-12; i++ {
		b.Spans = append(b.Spans, span(i, retentionCutoff-int64(i+1)*int64(150*time.Minute)))
	}
	for i := 0; i < 12; i++ {
		b.Spans = append(b.Spans, span(100+i, retentionCutoff-int64(30*time.Hour)))
	}
	for i := 0; i < recentSpans; i++ {
		b.Spans = append(b.Spans, span(200+i, retentionCutoff+int64(i)*int64(time.Minute)))
	}
	for i := 0; i < oldLLMCalls+recentLLMCalls; i++ {
		at := retentionCutoff - int64(i+1)*int64(7*time.Hour)
		if i >= oldLLMCalls {
			at = retentionCutoff + int64(i)*int64(time.Second)
		}
		b.LLMCalls = append(b.LLMCalls, store.LLMCall{TraceID: strconv.Itoa(i), SpanID: "2", Service: "api",
			RequestModel: "gpt-4o", StartNS: at, DurationNS: 1e6})
	}
	if err := db.ForTenant(tenant).InsertBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < oldSnapshots+recentSnapshots; i++ {
		at := retentionCutoff - 1 - int64(i)*int64(time.Hour)
		if i >= oldSnapshots {
			at = retentionCutoff + int64(i)
		}
		if _, err := db.ForTenant(tenant).InsertSnapshot(ctx, store.Snapshot{BreakpointID: "bp", Service: "api", CapturedNS: at}); err != nil {
			t.Fatal(err)
		}
	}
}

// checkRetained fails unless tenant still has its recent rows and, when keptOld, its old ones; and none
// of them when not.
func checkRetained(t *testing.T, dsn, tenant string, keptOld bool) {
	t.Helper()
	for _, c := range []struct {
		table, col  string
		old, recent int
	}{{"spans", "start_ns", oldSpans, recentSpans}, {"llm_calls", "start_ns", oldLLMCalls, recentLLMCalls},
		{"snapshots", "captured_ns", oldSnapshots, recentSnapshots}} {
		wantOld := 0
		if keptOld {
			wantOld = c.old
		}
		old := storetest.QueryInt(t, dsn, fmt.Sprintf("SELECT count(*) FROM %s WHERE tenant_id = '%s' AND %s < %d",
			c.table, tenant, c.col, retentionCutoff))
		if total := storetest.Count(t, dsn, c.table, tenant); old != wantOld || total-old != c.recent {
			t.Errorf("%s of %s: %d old and %d recent rows, want %d and %d", c.table, tenant, old, total-old, wantOld, c.recent)
		}
	}
}

func TestDeleteOlderThan_DeletesOnlyTheTenantsOldRowsInBatches(t *testing.T) {
	for _, d := range []struct{ name, dsn string }{{"postgres", storetest.PostgresDSN(t)}, {"sqlite", storetest.SQLiteDSN(t)}} {
		t.Run(d.name, func(t *testing.T) {
			ctx := context.Background()
			db := storetest.Open(t, d.dsn)
			for _, tenant := range []string{"team-a", "team-b"} {
				if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: tenant}); err != nil {
					t.Fatal(err)
				}
				seedRetention(t, db, tenant)
			}
			const batch = 5
			e, err := db.ForTenant("team-a").DeleteOlderThan(ctx, retentionCutoff, batch)
			if err != nil {
				t.Fatal(err)
			}
			if d.name == "postgres" {
				// Whole days before the (midnight) cutoff: the old rows span five days of spans and LLM
				// calls and one of snapshots, in partitions of their own; no row is deleted one by one.
				if len(e.Partitions) < 6 || e.Statements != 0 || e.Rows() != 0 {
					t.Errorf("expired %+v, want the old days' partitions dropped and no DELETE", e)
				}
			} else {
				if e.Spans != oldSpans || e.LLMCalls != oldLLMCalls || e.Snapshots != oldSnapshots {
					t.Errorf("deleted %+v, want %d spans, %d LLM calls, %d snapshots", e, oldSpans, oldLLMCalls, oldSnapshots)
				}
				if minimum := (oldSpans + oldLLMCalls + oldSnapshots) / batch; e.Statements < minimum {
					t.Errorf("%d DELETE statements, want at least %d batches of %d", e.Statements, minimum, batch)
				}
			}
			checkRetained(t, d.dsn, "team-a", false)
			checkRetained(t, d.dsn, "team-b", true)

			again, err := db.ForTenant("team-a").DeleteOlderThan(ctx, retentionCutoff, batch)
			if err != nil || again.Rows() != 0 || again.Statements != 0 || len(again.Partitions) != 0 {
				t.Errorf("second run: %+v (%v), want nothing to do", again, err)
			}
			// The tenant's data of the dropped days may come again (a late span): its partition is
			// made anew, and the span stored.
			late := store.Span{TraceID: storetest.TraceID("late"), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /", IsEntry: true,
				StartNS: retentionCutoff - int64(50*time.Hour), DurationNS: 1}
			if err := db.ForTenant("team-a").InsertBatch(ctx, store.Batch{Spans: []store.Span{late}}); err != nil {
				t.Fatalf("late span after its day was dropped: %v", err)
			}
			if n := storetest.Count(t, d.dsn, "spans", "team-a"); n != recentSpans+1 {
				t.Errorf("%d spans of team-a after a late one, want %d", n, recentSpans+1)
			}
		})
	}
}

// TestDeleteOlderThan_AsTheTenantRole runs retention the way a tenant pod does: its own role has the
// privileges, and row-level security keeps it off the other tenant's rows even through that tenant's
// handle.
func TestDeleteOlderThan_AsTheTenantRole(t *testing.T) {
	ctx := context.Background()
	admin, dsn, tenantDSN := storetest.TwoTenants(t)
	seedRetention(t, admin, "team-a")
	seedRetention(t, admin, "team-b")
	pod, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()

	e, err := pod.ForTenant("team-a").DeleteOlderThan(ctx, retentionCutoff, 7)
	if err != nil {
		t.Fatalf("retention as the tenant role: %v", err)
	}
	if len(e.Partitions) < 6 {
		t.Errorf("expired %+v, want the old days' partitions dropped", e)
	}
	if e, err := pod.ForTenant("team-b").DeleteOlderThan(ctx, retentionCutoff, 7); err == nil || len(e.Partitions) != 0 {
		t.Errorf("team-a's role dropped %+v of team-b (%v), want a refusal", e, err)
	}
	checkRetained(t, dsn, "team-a", false)
	checkRetained(t, dsn, "team-b", true)
}

// Retention finds a tenant's day partitions by name in the catalog. Whether PostgreSQL reads the
// catalog by the partition's children or scans every relation depends on the catalog's size (a
// tenant a week old: the scan), so the test forces the scan: a name that is not a day must not stop
// retention.
func TestDeleteOlderThan_DropsDaysHoweverTheCatalogIsRead(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	storetest.Exec(t, dsn, "ALTER DATABASE "+strings.TrimPrefix(u.Path, "/")+" SET enable_nestloop = off")
	storetest.Exec(t, dsn, "ALTER DATABASE "+strings.TrimPrefix(u.Path, "/")+" SET enable_mergejoin = off")
	db := storetest.Open(t, dsn)
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "team-a"}); err != nil {
		t.Fatal(err)
	}
	seedRetention(t, db, "team-a")
	e, err := db.ForTenant("team-a").DeleteOlderThan(ctx, retentionCutoff, 5)
	if err != nil || len(e.Partitions) < 6 {
		t.Fatalf("retention: %+v, %v; want the old days' partitions dropped", e, err)
	}
	checkRetained(t, dsn, "team-a", false)
}
