package store_test

import (
	"context"
	"crypto/md5"
	"database/sql"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
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
	dsn, raw := atVersion(t, 7)
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
		Spans:    []store.Span{{TraceID: storetest.TraceID("new"), SpanID: storetest.SpanID("1"), Service: "api", Operation: "GET /", IsEntry: true, StartNS: day + 5*store.Day, DurationNS: 1}},
		LLMCalls: []store.LLMCall{{TraceID: "new", SpanID: "1", Service: "api", RequestModel: "gpt-4o", StartNS: day + 5*store.Day, DurationNS: 1}},
	}); err != nil {
		t.Fatal(err)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT max(id) FROM llm_calls`); int64(n) <= lastCall {
		t.Errorf("new LLM call id %d, want after the migrated ones (%d)", n, lastCall)
	}
}

// TestMigrate_CompactSpansKeepsRowsIdsVersionsAndSearch fills a database at the schema before
// migration 00014 (spans with the unique index on the partitioned table) with two tenants' spans over
// three days (span ids above and below 8000000000000000), migrates it, and checks that every row is
// still there with its ids exactly (now uuid and bigint), version and host
// (empty texts now NULL, read back as empty),
// that each day partition has its own unique index on (trace_id, span_id) and a resent span is still
// stored once, that attribute search and retention work, and that the tenant's role still sees
// only its own rows.
func TestMigrate_CompactSpansKeepsRowsIdsVersionsAndSearch(t *testing.T) {
	ctx := context.Background()
	dsn, raw := atVersion(t, 13)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, stmt := range []string{
		`INSERT INTO tenants (id, created_ns) VALUES ('team-a', 1), ('team-b', 1)`,
		`SELECT tracekit_ensure_partitions(t, NULL, ARRAY[$1, $1 + 86400000000000, $1 + 172800000000000]) FROM unnest(ARRAY['team-a', 'team-b']) t`,
		// 3 days × 100 spans per tenant, one in ten a request (a root); the others its children.
		`INSERT INTO spans (tenant_id, trace_id, span_id, parent_span_id, service, service_version, host_name, operation,
				is_entry, start_ns, duration_ns, http_route, attributes)
			SELECT t, md5(t || (i / 10)), CASE WHEN i % 2 = 1 THEN 'fe' ELSE '00' END || lpad(to_hex(i), 14, '0'),
				CASE WHEN i % 10 = 0 THEN '' ELSE lpad(to_hex(i / 10 * 10), 16, '0') END,
				'api', 'v' || (i / 100), 'host-' || t, 'GET /', i % 10 = 0, $1 + (i / 100) * 86400000000000 + i * 1000000000, 1000 + i,
				'/orders', '{"k":"v"}'
			FROM unnest(ARRAY['team-a', 'team-b']) t, generate_series(0::bigint, 299) i`,
		`INSERT INTO span_attributes (tenant_id, key, value, start_ns, trace_id)
			SELECT tenant_id, 'k', 'v', start_ns, trace_id FROM spans WHERE is_entry`,
		`INSERT INTO span_attribute_keys (tenant_id, key, since_ns) VALUES ('team-a', 'k', 0), ('team-b', 'k', 0)`,
	} {
		var args []any
		if strings.Contains(stmt, "$1") {
			args = []any{day}
		}
		if _, err := raw.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}

	idsOf := func(rows *sql.Rows, err error) map[string]bool {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string]bool{}
		for rows.Next() {
			var tenant, trace, span, parent string
			if err := rows.Scan(&tenant, &trace, &span, &parent); err != nil {
				t.Fatal(err)
			}
			out[tenant+"/"+trace+"/"+span+"/"+parent] = true
		}
		return out
	}
	before := idsOf(raw.QueryContext(ctx, `SELECT tenant_id, trace_id, span_id, parent_span_id FROM spans`))

	db := storetest.Open(t, dsn) // migrates the rest of the way
	after := map[string]bool{}
	for _, tenant := range []string{"team-a", "team-b"} {
		var traces []string
		for i := range 30 {
			traces = append(traces, fmt.Sprintf("%x", md5.Sum([]byte(tenant+strconv.Itoa(i)))))
		}
		spans, err := db.ForTenant(tenant).SpansOfTraces(ctx, traces)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spans {
			after[tenant+"/"+s.TraceID+"/"+s.SpanID+"/"+s.ParentSpanID] = true
		}
	}
	if len(before) != 600 || !maps.Equal(before, after) {
		t.Errorf("ids before migrating (%d) and read back after (%d) differ", len(before), len(after))
	}
	for _, tenant := range []string{"team-a", "team-b"} {
		if n := storetest.Count(t, dsn, "spans", tenant); n != 300 {
			t.Errorf("spans of %s after migrating: %d, want 300", tenant, n)
		}
	}
	// Queries right after the upgrade are planned with statistics of the rewritten tables.
	if n := storetest.QueryInt(t, dsn, `SELECT count(DISTINCT tablename) FROM pg_stats
		WHERE tablename IN ('spans', 'span_attributes') AND inherited`); n != 2 {
		t.Errorf("%d of spans and span_attributes have statistics after migrating, want 2", n)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_class WHERE relname LIKE 'spans%old'`); n != 0 {
		t.Errorf("%d old span tables left", n)
	}
	// A unique index on each day partition, on the ids only; none on the partitioned tables.
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		WHERE c.relname ~ '^spans_t[0-9a-f]{12}_[0-9]{8}$' AND i.indisunique
			AND pg_get_indexdef(i.indexrelid) LIKE '%(trace_id, span_id)'`); n != 6 {
		t.Errorf("%d day partitions of spans with a unique index on (trace_id, span_id), want 6", n)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
		WHERE c.relkind = 'p' AND c.relname LIKE 'spans%' AND i.indisunique`); n != 0 {
		t.Errorf("%d unique indexes on partitioned span tables, want none", n)
	}

	// Empty promoted texts are NULL; the filled ones kept.
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM spans WHERE status_message IS NULL AND db_statement IS NULL AND http_route = '/orders'`); n != 600 {
		t.Errorf("%d spans with NULL for their empty texts and their route kept, want 600", n)
	}

	tr := db.ForTenant("team-a")
	var traceID string
	if err := raw.QueryRowContext(ctx, `SELECT md5('team-a' || 12)`).Scan(&traceID); err != nil {
		t.Fatal(err)
	}
	spans, err := tr.SpansOfTraces(ctx, []string{traceID})
	if err != nil || len(spans) != 10 {
		t.Fatalf("SpansOfTraces after migrating: %d spans, %v", len(spans), err)
	}
	for _, s := range spans {
		want := "0000000000000078" // span 120, the root of trace 12
		if s.SpanID == want {
			want = ""
		}
		if s.ParentSpanID != want || s.ServiceVersion != "v1" || s.HostName != "host-team-a" || s.HTTPRoute != "/orders" {
			t.Errorf("span after migrating: id %s parent %q version %q host %q route %q", s.SpanID, s.ParentSpanID,
				s.ServiceVersion, s.HostName, s.HTTPRoute)
		}
	}
	// Attribute search through the index, and the root filter (no service: roots only).
	hits, err := tr.SearchTraces(ctx, store.TraceQuery{From: day, To: day + 3*store.Day, Attributes: map[string]string{"k": "v"}, Limit: 100})
	if err != nil || len(hits) != 30 {
		t.Fatalf("SearchTraces by an indexed attribute after migrating: %d hits, %v", len(hits), err)
	}
	// A resent span is stored once, as before.
	resent := spans[0]
	if err := tr.InsertBatch(ctx, store.Batch{Spans: []store.Span{resent}}); err != nil {
		t.Fatal(err)
	}
	if n := storetest.Count(t, dsn, "spans", "team-a"); n != 300 {
		t.Errorf("spans of team-a after resending one: %d, want 300", n)
	}
	// Retention drops the first day.
	if _, err := tr.DeleteOlderThan(ctx, day+store.Day, 1000); err != nil {
		t.Fatal(err)
	}
	if a, b := storetest.Count(t, dsn, "spans", "team-a"), storetest.Count(t, dsn, "spans", "team-b"); a != 200 || b != 300 {
		t.Errorf("spans after team-a's retention: team-a %d (want 200), team-b %d (want 300)", a, b)
	}
}

// atVersion is a new PostgreSQL database migrated up to version only, for a test that fills it at
// that schema and then migrates it forward.
func atVersion(t *testing.T, version int64) (dsn string, raw *sql.DB) {
	t.Helper()
	dsn = storetest.PostgresDSN(t)
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	p, err := goose.NewProvider(goose.DialectPostgres, raw, os.DirFS("migrations/postgres"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(t.Context(), version); err != nil {
		t.Fatal(err)
	}
	return dsn, raw
}
