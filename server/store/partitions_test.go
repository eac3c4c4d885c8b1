package store_test

import (
	"context"
	"database/sql"
	"os"
	"testing"
	"time"

	"github.com/pressly/goose/v3"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestMigrate_PartitioningKeepsEveryRowOfAnExistingDatabase fills a database at the schema before
// partitioning (migration 00007) with two tenants' spans, LLM calls, snapshots and rollups over
// several days, migrates it forward, and checks that every row is still there, in its partition,
// readable through the store, and that ingest and the id sequences carry on.
func TestMigrate_PartitioningKeepsEveryRowOfAnExistingDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, raw, os.DirFS("migrations/postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 7); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, stmt := range []string{
		`INSERT INTO tenants (id, created_ns) VALUES ('team-a', 1), ('team-b', 1)`,
		// 3 days × 100 spans per tenant, one in ten a request; an LLM call and a snapshot per day.
		`INSERT INTO spans (tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns, attributes)
			SELECT t, md5(t || i), lpad(to_hex(i), 16, '0'), 'api', 'GET /', i % 10 = 0, $1 + (i / 100) * 86400000000000 + i * 1000000000, 1000, '{"k":"v"}'
			FROM unnest(ARRAY['team-a', 'team-b']) t, generate_series(0::bigint, 299) i`,
		`INSERT INTO llm_calls (tenant_id, trace_id, span_id, service, request_model, start_ns, duration_ns)
			SELECT t, md5(t || i), 'x', 'api', 'gpt-4o', $1 + i * 86400000000000, 5 FROM unnest(ARRAY['team-a', 'team-b']) t, generate_series(0::bigint, 2) i`,
		`INSERT INTO snapshots (tenant_id, breakpoint_id, service, captured_ns)
			SELECT t, 'bp', 'api', $1 + i * 86400000000000 FROM unnest(ARRAY['team-a', 'team-b']) t, generate_series(0::bigint, 2) i`,
		`INSERT INTO metric_rollups (tenant_id, kind, service, name, res_ns, bucket_ns, partial, n, errors, hist)
			SELECT t, 1, 'api', 'GET /', 60000000000, $1 + i * 86400000000000, false, 10, 0, '\x00'
			FROM unnest(ARRAY['team-a', 'team-b']) t, generate_series(0::bigint, 9) i`,
	} {
		args := []any{day}
		if stmt[:12] == "INSERT INTO " && stmt[12:19] == "tenants" {
			args = nil
		}
		if _, err := raw.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	var lastCall int64
	if err := raw.QueryRowContext(ctx, `SELECT max(id) FROM llm_calls`).Scan(&lastCall); err != nil {
		t.Fatal(err)
	}

	db := storetest.Open(t, dsn) // migrates the rest of the way
	for _, c := range []struct {
		table string
		want  int
	}{{"spans", 300}, {"llm_calls", 3}, {"snapshots", 3}, {"metric_rollups", 10}} {
		for _, tenant := range []string{"team-a", "team-b"} {
			if n := storetest.Count(t, dsn, c.table, tenant); n != c.want {
				t.Errorf("%s of %s after migrating: %d rows, want %d", c.table, tenant, n, c.want)
			}
			// Every row is in the tenant's own partitions (none elsewhere).
			if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM `+c.table+` WHERE tenant_id = '`+tenant+`'
				AND tableoid::regclass::text LIKE tracekit_tenant_partition('`+c.table+`', '`+tenant+`') || '\_%'`); n != c.want {
				t.Errorf("%s of %s: %d rows in the tenant's day partitions, want %d", c.table, tenant, n, c.want)
			}
		}
	}
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_class WHERE relname LIKE '%unpartitioned'`); n != 0 {
		t.Errorf("%d old tables left", n)
	}
	// Read through the store, and ingest on.
	tr := db.ForTenant("team-a")
	var traceID string
	if err := raw.QueryRowContext(ctx, `SELECT md5('team-a' || 5)`).Scan(&traceID); err != nil {
		t.Fatal(err)
	}
	spans, total, err := tr.TraceSpans(ctx, traceID, 10)
	if err != nil || len(spans) != 1 || total != 1 {
		t.Fatalf("TraceSpans after migrating: %+v, %v", spans, err)
	}
	data, err := tr.SpansData(ctx, traceID, []string{spans[0].SpanID})
	if err != nil || len(data) != 1 || string(data[0].Attributes) != `{"k": "v"}` {
		t.Errorf("SpansData after migrating: %+v, %v", data, err)
	}
	if err := tr.InsertBatch(ctx, store.Batch{
		Spans:    []store.Span{{TraceID: "new", SpanID: "1", Service: "api", Operation: "GET /", IsEntry: true, StartNS: day + 5*store.Day, DurationNS: 1}},
		LLMCalls: []store.LLMCall{{TraceID: "new", SpanID: "1", Service: "api", RequestModel: "gpt-4o", StartNS: day + 5*store.Day, DurationNS: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT max(id) FROM llm_calls`); int64(n) <= lastCall {
		t.Errorf("new LLM call id %d, want after the migrated ones (%d)", n, lastCall)
	}
}
