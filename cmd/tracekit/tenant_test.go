package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func tenantCmd(t *testing.T, dsn string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := tenantCommand(context.Background(), append(args, "--database-url", dsn), &out)
	return strings.TrimSpace(out.String()), err
}

// On PostgreSQL, create prints a URL on which a server connects as the tenant's own role (so RLS
// confines it), list shows the tenant, and delete removes it and its role.
func TestTenantCommand_PostgresCreateListDelete(t *testing.T) {
	admin := storetest.PostgresDSN(t)
	ctx := context.Background()
	tenantURL, err := tenantCmd(t, admin, "create", "acme", "--display-name", "Acme Inc.")
	if err != nil {
		t.Fatal(err)
	}
	db, err := openDB(ctx, tenantURL)
	if err != nil {
		t.Fatalf("open the printed URL %q: %v", tenantURL, err)
	}
	if id, err := db.CurrentTenant(ctx); err != nil || id != "acme" {
		t.Errorf("printed URL connects as tenant %q (%v), want acme", id, err)
	}
	// The role may write its own rows: what `tracekit server` with that URL does at ingest.
	if err := db.ForTenant("acme").InsertBatch(ctx, store.Batch{Spans: []store.Span{{TraceID: strings.Repeat("ab", 16), SpanID: strings.Repeat("cd", 8),
		Service: "svc", Operation: "op", StartNS: 1, ResourceAttributes: []byte("{}"), Attributes: []byte("{}")}}}); err != nil {
		t.Errorf("the tenant's role cannot ingest: %v", err)
	}
	db.Close()

	if _, err := tenantCmd(t, admin, "create", "acme"); err == nil || !strings.Contains(err.Error(), "--reset-password") {
		t.Errorf("second create: %v, want an error pointing at --reset-password", err)
	}
	if _, err := tenantCmd(t, tenantURL, "list"); err == nil || !strings.Contains(err.Error(), "administrator's URL") {
		t.Errorf("list with the tenant's URL: %v, want an error asking for the administrator's URL", err)
	}
	list, err := tenantCmd(t, admin, "list")
	if err != nil || !strings.Contains(list, "acme") || !strings.Contains(list, "Acme Inc.") || !strings.Contains(list, "tk_") {
		t.Errorf("list = %q, %v; want acme with its display name and role", list, err)
	}
	if _, err := tenantCmd(t, admin, "delete", "acme"); err != nil {
		t.Fatal(err)
	}
	if n := storetest.QueryInt(t, admin, "SELECT count(*) FROM tenants"); n != 0 {
		t.Errorf("%d tenants left after delete", n)
	}
	if db, err := store.Open(ctx, tenantURL); err == nil {
		err = db.Ping(ctx)
		db.Close()
		if err == nil {
			t.Error("the deleted tenant's URL still connects: its role was not dropped")
		}
	}
	if _, err := tenantCmd(t, admin, "delete", "acme"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("deleting twice: %v", err)
	}
}

func TestTenantCommand_SQLite(t *testing.T) {
	dsn := storetest.SQLiteDSN(t)
	url, err := tenantCmd(t, dsn, "create", "beta")
	if err != nil || url != dsn {
		t.Fatalf("create on SQLite = %q, %v; want the same URL %q (SQLite has no roles)", url, err, dsn)
	}
	if list, err := tenantCmd(t, dsn, "list"); err != nil || !strings.Contains(list, "beta") {
		t.Errorf("list = %q, %v", list, err)
	}
	if _, err := tenantCmd(t, dsn, "delete", "beta"); err != nil {
		t.Fatal(err)
	}
	if _, err := tenantCmd(t, dsn, "create", "Bad_Name"); err == nil || !strings.Contains(err.Error(), "lowercase letters") {
		t.Errorf("create Bad_Name: %v, want the id rules", err)
	}
	if _, err := tenantCmd(t, dsn, "create"); err == nil || !strings.Contains(err.Error(), "needs the tenant id") {
		t.Errorf("create without id: %v", err)
	}
}
