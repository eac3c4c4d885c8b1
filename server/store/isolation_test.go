package store_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// seedEveryTable writes one row of tenant into every tenant table, as the admin role.
func seedEveryTable(t *testing.T, ctx context.Context, conn *pgx.Conn, tenant string) {
	t.Helper()
	stmts := []string{
		// Rows at time 1 (1970-01-01) need their partitions, as ingest makes them.
		`SELECT tracekit_ensure_partitions($1, NULL, ARRAY[1]::bigint[])`,
		`INSERT INTO spans (tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns) VALUES ($1, md5($1)::uuid, 1, 'svc', 'op', true, 1, 1)`,
		`INSERT INTO services (tenant_id, name, first_seen_ns, last_seen_ns) VALUES ($1, 'svc', 1, 1)`,
		`INSERT INTO service_versions (tenant_id, service, version, first_seen_ns, last_seen_ns) VALUES ($1, 'svc', '1.0', 1, 1)`,
		`INSERT INTO llm_calls (tenant_id, trace_id, span_id, service, start_ns, duration_ns) VALUES ($1, 't', 's', 'svc', 1, 1)`,
		`INSERT INTO alert_rules (tenant_id, id, metric, comparison, threshold, window_seconds, severity) VALUES ($1, 'r', 'error_rate', 'gt', 1, 60, 'high')`,
		`INSERT INTO alerts (tenant_id, rule_id, state, started_ns, value, threshold, last_eval_ns) VALUES ($1, 'r', 'firing', 1, 1, 1, 1)`,
		`INSERT INTO anomalies (tenant_id, service, metric, severity, started_ns, baseline, observed, score) VALUES ($1, 'svc', 'p95', 'high', 1, 1, 2, 3)`,
		`INSERT INTO rca_reports (tenant_id, anomaly_id, created_ns, summary) VALUES ($1, 1, 1, 'x')`,
		`INSERT INTO breakpoints (tenant_id, id, service, file, line, created_ns) VALUES ($1, 'bp', 'svc', 'f.go', 1, 1)`,
		`INSERT INTO snapshots (tenant_id, breakpoint_id, service, captured_ns) VALUES ($1, 'bp', 'svc', 1)`,
		`INSERT INTO span_attributes (tenant_id, key, value, start_ns, trace_id) VALUES ($1, 'user.id', '42', 1, md5($1)::uuid)`,
		`INSERT INTO span_attribute_keys (tenant_id, key, since_ns) VALUES ($1, 'user.id', 0)`,
		`INSERT INTO span_attribute_gaps (tenant_id, key, from_ns, to_ns) VALUES ($1, 'user.id', 0, 1)`,
		`INSERT INTO audit_events (tenant_id, at_ns, actor, action) VALUES ($1, 1, 'someone', 'apikey.create')`,
	}
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s, tenant); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestTenantRoleSeesOnlyItsOwnRows(t *testing.T) {
	ctx := context.Background()
	db, dsn, tenantDSN := storetest.TwoTenants(t)
	for _, tenant := range []string{"team-a", "team-b"} {
		if _, _, err := db.Admin().CreateAPIKey(ctx, tenant, "k", nil); err != nil {
			t.Fatal(err)
		}
	}
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	seedEveryTable(t, ctx, admin, "team-a")
	seedEveryTable(t, ctx, admin, "team-b")

	asA, err := pgx.Connect(ctx, tenantDSN)
	if err != nil {
		t.Fatalf("connect as tenant role: %v", err)
	}
	defer asA.Close(ctx)

	for _, table := range []string{"tenants", "api_keys", "spans", "services", "service_versions", "llm_calls", "alert_rules", "alerts",
		"anomalies", "rca_reports", "breakpoints", "snapshots", "span_attributes", "span_attribute_keys", "span_attribute_gaps", "audit_events"} {
		col := "tenant_id"
		if table == "tenants" {
			col = "id"
		}
		rows, err := asA.Query(ctx, "SELECT * FROM "+table)
		if err != nil {
			t.Fatalf("SELECT * FROM %s as tenant A: %v", table, err)
		}
		maps, err := pgx.CollectRows(rows, pgx.RowToMap)
		if err != nil {
			t.Fatal(err)
		}
		if len(maps) == 0 {
			t.Errorf("%s: tenant A sees none of its own rows", table)
		}
		for _, m := range maps {
			if m[col] != "team-a" {
				t.Errorf("%s: tenant A can read a row of %v", table, m[col])
			}
		}
	}

	// Writing another tenant's rows is refused by the policy's WITH CHECK.
	_, err = asA.Exec(ctx, `INSERT INTO spans (tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns) VALUES ('team-b', md5('x')::uuid, 2, 'svc', 'op', true, 1, 1)`)
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert of tenant B's span as tenant A: got %v, want a row-level security violation", err)
	}
	_, err = asA.Exec(ctx, `INSERT INTO span_attributes (tenant_id, key, value, start_ns, trace_id) VALUES ('team-b', 'user.id', '7', 1, md5('x')::uuid)`)
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert of tenant B's attribute index row as tenant A: got %v, want a row-level security violation", err)
	}
	// Nor can A change or delete B's rows: they are invisible to UPDATE and DELETE.
	tag, err := asA.Exec(ctx, `DELETE FROM spans WHERE tenant_id = 'team-b'`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("delete of tenant B's spans as tenant A: %v rows, err %v", tag.RowsAffected(), err)
	}
	// Partitions are reached only through their parent, whose policies apply: named directly, tenant
	// A's own partitions and B's are refused, to read and to write.
	for _, table := range []string{"spans", "llm_calls", "snapshots", "metric_rollups", "span_attributes"} {
		for _, tenant := range []string{"team-a", "team-b"} {
			var parent, leaf string
			if err := admin.QueryRow(ctx, `SELECT p, (SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
				WHERE i.inhparent = to_regclass(p) LIMIT 1) FROM tracekit_tenant_partition($1, $2) p`, table, tenant).Scan(&parent, &leaf); err != nil {
				t.Fatalf("partitions of %s for %s: %v", table, tenant, err)
			}
			for _, name := range []string{parent, leaf} {
				if _, err := asA.Exec(ctx, "SELECT * FROM "+name); err == nil || !strings.Contains(err.Error(), "permission denied") {
					t.Errorf("SELECT from partition %s (%s of %s) as tenant A: %v, want permission denied", name, table, tenant, err)
				}
			}
			insert := map[string]string{
				"spans":           `(tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns) VALUES ($1, md5('x')::uuid, 2, 'svc', 'op', true, 1, 1)`,
				"span_attributes": `(tenant_id, key, value, start_ns, trace_id) VALUES ($1, 'user.id', '42', 1, md5('x')::uuid)`,
			}[table]
			if insert != "" {
				_, err := asA.Exec(ctx, `INSERT INTO `+leaf+` `+insert, tenant)
				if err == nil || !strings.Contains(err.Error(), "permission denied") {
					t.Errorf("INSERT into partition %s of %s as tenant A: %v, want permission denied", leaf, tenant, err)
				}
			}
		}
	}
	// A manages its own partitions only.
	if _, err := asA.Exec(ctx, `SELECT tracekit_ensure_partitions('team-a', 'spans', ARRAY[86400000000000]::bigint[])`); err != nil {
		t.Errorf("tenant A creating its own partition: %v", err)
	}
	for _, stmt := range []string{`SELECT tracekit_ensure_partitions('team-b', 'spans', ARRAY[86400000000000]::bigint[])`,
		`SELECT tracekit_drop_partitions('team-b', 'spans', 9000000000000000000)`} {
		if _, err := asA.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "manages the partitions of tenant team-a") {
			t.Errorf("%s as tenant A: %v, want a refusal", stmt, err)
		}
	}
	if n := storetest.Count(t, dsn, "spans", "team-b"); n != 1 {
		t.Errorf("tenant B has %d spans after A's attempts, want 1", n)
	}

	// A's role creates and revokes its own keys and adds to its own audit trail (the keys page), but
	// cannot mint a key for B, revoke B's, write into B's trail nor rewrite its own.
	for _, stmt := range []string{
		`INSERT INTO api_keys (id, tenant_id, prefix, hash, created_ns) VALUES ('key_x', 'team-b', 'tk_x', 'h-x', 1)`,
		`INSERT INTO audit_events (tenant_id, at_ns, actor, action) VALUES ('team-b', 1, 'mallory', 'apikey.create')`,
	} {
		if _, err := asA.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "row-level security") {
			t.Errorf("%s as tenant A: got %v, want a row-level security violation", stmt, err)
		}
	}
	if tag, err := asA.Exec(ctx, `UPDATE api_keys SET revoked_ns = 1 WHERE tenant_id = 'team-b'`); err != nil || tag.RowsAffected() != 0 {
		t.Errorf("revoke of tenant B's keys as tenant A: %v rows, err %v", tag.RowsAffected(), err)
	}
	for _, stmt := range []string{`UPDATE audit_events SET actor = 'nobody'`, `DELETE FROM audit_events`, `UPDATE api_keys SET scopes = 'read,ingest,write'`} {
		if _, err := asA.Exec(ctx, stmt); err == nil || !strings.Contains(err.Error(), "permission denied") {
			t.Errorf("%s as tenant A: got %v, want permission denied", stmt, err)
		}
	}
	// The server connected as A learns its tenant from the database.
	dbA, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer dbA.Close()
	if id, err := dbA.CurrentTenant(ctx); err != nil || id != "team-a" {
		t.Errorf("CurrentTenant as A = %q, %v", id, err)
	}
	// And a handle for B on A's connection still sees nothing of B.
	keys, err := dbA.ForTenant("team-b").APIKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Errorf("A's connection listing B's keys: %d keys, %v", len(keys), err)
	}
}

func TestProvisionTenantIsIdempotentAndDeleteRemovesEverything(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		c1, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme", DisplayName: "Acme"})
		if err != nil {
			t.Fatal(err)
		}
		c2, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme", DisplayName: "Acme Corp", Password: c1.Password})
		if err != nil {
			t.Fatalf("second provision: %v", err)
		}
		if c1 != c2 {
			t.Errorf("credentials changed on re-provision: %+v vs %+v", c1, c2)
		}
		key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "ci", nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := db.ForTenant("acme").InsertBatch(ctx, store.Batch{Spans: []store.Span{{TraceID: storetest.TraceID("t"), SpanID: storetest.SpanID("s"), Service: "svc", Operation: "op", IsEntry: true, StartNS: 1, DurationNS: 2}}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Admin().DeleteTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LookupAPIKey(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("key of deleted tenant: %v, want ErrNotFound", err)
		}
		tenants, _ := db.ListTenants(ctx)
		if len(tenants) != 0 {
			t.Errorf("tenants after delete: %+v", tenants)
		}
		if err := db.Admin().DeleteTenant(ctx, "acme"); err != nil {
			t.Errorf("deleting a deleted tenant: %v", err)
		}
	})
}

func TestProvisionTenantRejectsBadIDs(t *testing.T) {
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	for _, id := range []string{"", "Acme", "a_b", "-a", strings.Repeat("a", 64), "a;drop"} {
		_, err := db.Admin().ProvisionTenant(context.Background(), store.TenantSpec{ID: id})
		if err == nil || !strings.Contains(err.Error(), "lowercase") {
			t.Errorf("ProvisionTenant(%q) = %v, want an error explaining the allowed form", id, err)
		}
	}
}

func TestAPIKeys(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
			t.Fatal(err)
		}
		key, info, err := db.Admin().CreateAPIKey(ctx, "acme", "laptop", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(key, store.KeyPrefix) || len(key) < 40 {
			t.Errorf("key %q: want a long key starting with %s", key, store.KeyPrefix)
		}
		got, err := db.LookupAPIKey(ctx, key)
		if err != nil || got.TenantID != "acme" || !got.HasScope(store.ScopeIngest) {
			t.Fatalf("lookup: %+v, %v", got, err)
		}
		if _, err := db.LookupAPIKey(ctx, key+"x"); err != store.ErrNotFound {
			t.Errorf("wrong key: %v", err)
		}
		keys, err := db.ForTenant("acme").APIKeys(ctx)
		if err != nil || len(keys) != 1 || strings.Contains(fmt.Sprint(keys), key) {
			t.Errorf("list: %+v %v", keys, err)
		}
		if err := db.Admin().RevokeAPIKey(ctx, "other", info.ID); err == nil {
			t.Error("another tenant revoked acme's key")
		}
		if err := db.Admin().RevokeAPIKey(ctx, "acme", info.Prefix); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LookupAPIKey(ctx, key); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("revoked key still accepted: %v", err)
		}
		if _, _, err := db.Admin().CreateAPIKey(ctx, "nobody", "x", nil); err == nil || !strings.Contains(err.Error(), "does not exist") {
			t.Errorf("key for unknown tenant: %v", err)
		}
	})
}

func TestMigrate_ConcurrentMigrationsOfOneDatabaseAllSucceed(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		go func() {
			db, err := store.Open(context.Background(), dsn)
			if err != nil {
				errs <- err
				return
			}
			defer db.Close()
			errs <- db.Migrate(context.Background())
		}()
	}
	for i := 0; i < 4; i++ {
		if err := <-errs; err != nil {
			t.Errorf("migration %d: %v", i, err)
		}
	}
}

func TestInsertBatch_WorksForATenantRoleAndStaysInItsTenant(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	admin := storetest.Open(t, dsn)
	creds, err := admin.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	tenantDSN, _ := creds.DSN(dsn)
	asA, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer asA.Close()
	cost := 0.5
	batch := store.Batch{
		Spans:    []store.Span{{TraceID: storetest.TraceID("t1"), SpanID: storetest.SpanID("s1"), Service: "svc", Operation: "GET /", Kind: store.KindServer, IsEntry: true, StartNS: 1e18, DurationNS: 5e6}},
		LLMCalls: []store.LLMCall{{TraceID: "t1", SpanID: "s1", Service: "svc", RequestModel: "gpt-4o", CostUSD: &cost, StartNS: 1e18, DurationNS: 5e6}},
	}
	if err := asA.ForTenant("team-a").InsertBatch(ctx, batch); err != nil {
		t.Fatalf("ingest as the tenant's own role: %v", err)
	}
	if n := storetest.Count(t, dsn, "spans", "team-a"); n != 1 {
		t.Errorf("%d spans stored, want 1", n)
	}
	if n := storetest.Count(t, dsn, "llm_calls", "team-a"); n != 1 {
		t.Errorf("%d LLM calls stored, want 1", n)
	}
	// The same connection cannot write another tenant's rows, even through a handle naming it.
	if err := asA.ForTenant("team-b").InsertBatch(ctx, batch); err == nil {
		t.Error("tenant A's role stored spans for tenant B")
	}
}

// The production path: a tenant's server ingests as the tenant's own role, one INSERT … SELECT FROM
// unnest per table under row-level security. A batch sent again stores and counts nothing twice, and
// no batch, however crafted, writes a row of another tenant: neither new rows nor ones that collide
// with rows the other tenant has (which would otherwise tell A which span ids B stores).
func TestInsertBatch_TenantRoleStoresOnceAndNeverWritesAnotherTenant(t *testing.T) {
	ctx := context.Background()
	admin, dsn, tenantDSN := storetest.TwoTenants(t)
	asA, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer asA.Close()
	cost := 0.25
	batch := func(traces ...int) store.Batch {
		var b store.Batch
		for _, tr := range traces {
			id := fmt.Sprintf("%032x", tr)
			b.Spans = append(b.Spans,
				store.Span{TraceID: id, SpanID: "0000000000000001", Service: "svc", Operation: "GET /", Kind: store.KindServer, IsEntry: true,
					StartNS: 1e18, DurationNS: 5e6, Attributes: []byte(`{"http.route":"/"}`)},
				store.Span{TraceID: id, SpanID: "0000000000000002", ParentSpanID: "0000000000000001", Service: "svc", Operation: "chat",
					StartNS: 1e18, DurationNS: 4e6})
			b.LLMCalls = append(b.LLMCalls, store.LLMCall{TraceID: id, SpanID: "0000000000000002", Service: "svc",
				RequestModel: "gpt-4o", CostUSD: &cost, StartNS: 1e18, DurationNS: 4e6})
		}
		return b
	}
	a := asA.ForTenant("team-a")
	overlap := batch(3, 4)
	overlap.LLMCalls[1].CostUSD = nil // a model without a price: stored as NULL, not as free
	// The first batch, a retry of it, then one overlapping it.
	for _, b := range []store.Batch{batch(1, 2, 3), batch(1, 2, 3), overlap} {
		if err := a.InsertBatch(ctx, b); err != nil {
			t.Fatalf("ingest as the tenant's own role: %v", err)
		}
	}
	for table, want := range map[string]int{"spans": 8, "llm_calls": 4} {
		if n := storetest.Count(t, dsn, table, "team-a"); n != want {
			t.Errorf("%d rows in %s, want %d (4 traces, each stored once)", n, table, want)
		}
	}
	if n := storetest.QueryInt(t, dsn, "SELECT count(*) FROM llm_calls WHERE tenant_id = 'team-a' AND cost_usd IS NULL"); n != 1 {
		t.Errorf("%d LLM calls of unknown cost, want 1", n)
	}
	for kind, what := range map[int]string{1: "requests", 2: "LLM calls"} {
		if n := storetest.QueryInt(t, dsn, fmt.Sprintf("SELECT sum(n) FROM metric_rollups WHERE tenant_id = 'team-a' AND kind = %d", kind)); n != 4 {
			t.Errorf("rollups count %d %s, want 4", n, what)
		}
	}

	// Tenant B already stores trace 9; A's role, through a handle naming B, tries new spans (the
	// one-statement path) and B's own span ids (the path that skips stored spans).
	if err := admin.ForTenant("team-b").InsertBatch(ctx, batch(9)); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]store.Batch{"new spans": batch(5), "spans B has": batch(9), "LLM calls only": {LLMCalls: batch(6).LLMCalls}} {
		// Refused by the database either way: creating B's partitions, or the policy's WITH CHECK.
		err := asA.ForTenant("team-b").InsertBatch(ctx, b)
		if err == nil || !strings.Contains(err.Error(), "row-level security") && !strings.Contains(err.Error(), "manages the partitions of tenant team-a") {
			t.Errorf("%s for tenant B through tenant A's role: got %v, want a refusal", name, err)
		}
	}
	for table, want := range map[string]int{"spans": 2, "llm_calls": 1, "metric_rollups": 2} {
		if n := storetest.Count(t, dsn, table, "team-b"); n != want {
			t.Errorf("tenant B has %d rows in %s, want its own %d", n, table, want)
		}
	}
}
