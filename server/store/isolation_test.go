package store_test

import (
	"context"
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
		`INSERT INTO spans (tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns) VALUES ($1, 't-'||$1, 's1', 'svc', 'op', true, 1, 1)`,
		`INSERT INTO services (tenant_id, name, first_seen_ns, last_seen_ns) VALUES ($1, 'svc', 1, 1)`,
		`INSERT INTO service_versions (tenant_id, service, version, first_seen_ns, last_seen_ns) VALUES ($1, 'svc', '1.0', 1, 1)`,
		`INSERT INTO llm_calls (tenant_id, trace_id, span_id, service, start_ns, duration_ns) VALUES ($1, 't', 's', 'svc', 1, 1)`,
		`INSERT INTO alert_rules (tenant_id, id, metric, comparison, threshold, window_seconds, severity) VALUES ($1, 'r', 'error_rate', 'gt', 1, 60, 'high')`,
		`INSERT INTO alerts (tenant_id, rule_id, state, started_ns, value, threshold, last_eval_ns) VALUES ($1, 'r', 'firing', 1, 1, 1, 1)`,
		`INSERT INTO anomalies (tenant_id, service, metric, severity, started_ns, baseline, observed, score) VALUES ($1, 'svc', 'p95', 'high', 1, 1, 2, 3)`,
		`INSERT INTO rca_reports (tenant_id, anomaly_id, created_ns, summary) VALUES ($1, 1, 1, 'x')`,
		`INSERT INTO breakpoints (tenant_id, id, service, file, line, created_ns) VALUES ($1, 'bp', 'svc', 'f.go', 1, 1)`,
		`INSERT INTO snapshots (tenant_id, breakpoint_id, service, captured_ns) VALUES ($1, 'bp', 'svc', 1)`,
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
		"anomalies", "rca_reports", "breakpoints", "snapshots", "audit_events"} {
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
	_, err = asA.Exec(ctx, `INSERT INTO spans (tenant_id, trace_id, span_id, service, operation, is_entry, start_ns, duration_ns) VALUES ('team-b', 'x', 'y', 'svc', 'op', true, 1, 1)`)
	if err == nil || !strings.Contains(err.Error(), "row-level security") {
		t.Errorf("insert of tenant B's span as tenant A: got %v, want a row-level security violation", err)
	}
	// Nor can A change or delete B's rows: they are invisible to UPDATE and DELETE.
	tag, err := asA.Exec(ctx, `DELETE FROM spans WHERE tenant_id = 'team-b'`)
	if err != nil || tag.RowsAffected() != 0 {
		t.Errorf("delete of tenant B's spans as tenant A: %v rows, err %v", tag.RowsAffected(), err)
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
		if err := db.ForTenant("acme").InsertBatch(ctx, store.Batch{Spans: []store.Span{{TraceID: "t", SpanID: "s", Service: "svc", Operation: "op", IsEntry: true, StartNS: 1, DurationNS: 2}}}); err != nil {
			t.Fatal(err)
		}
		if err := db.Admin().DeleteTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.LookupAPIKey(ctx, key); err != store.ErrNotFound {
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
		if _, err := db.LookupAPIKey(ctx, key); err != store.ErrNotFound {
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
		Spans:    []store.Span{{TraceID: "t1", SpanID: "s1", Service: "svc", Operation: "GET /", Kind: store.KindServer, IsEntry: true, StartNS: 1e18, DurationNS: 5e6}},
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
