// Package storetest gives tests a freshly migrated database: a real PostgreSQL (a new database per
// call, dropped afterwards) or a SQLite file. A missing PostgreSQL fails the test; it never skips.
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tracekit/tracekit/server/store"
)

// AdminDSN is the PostgreSQL server tests use: $TRACEKIT_TEST_POSTGRES, or the local trust-auth server.
func AdminDSN() string {
	if dsn := os.Getenv("TRACEKIT_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// PostgresDSN creates an empty database and returns its URL; the database is dropped when t ends.
func PostgresDSN(t testing.TB) string {
	t.Helper()
	dsn, drop, err := NewDatabase(context.Background(), AdminDSN(), "tracekit_test_")
	if err != nil {
		t.Fatalf("PostgreSQL is required for this test (set TRACEKIT_TEST_POSTGRES or start it on 127.0.0.1:5432): %v", err)
	}
	t.Cleanup(func() {
		if err := drop(); err != nil {
			t.Error(err)
		}
	})
	return dsn
}

// NewDatabase creates an empty database named prefix+random on the server of admin and returns its
// URL and a function that drops it with the tenant roles it made (benchmarks under hack/ use it too).
func NewDatabase(ctx context.Context, admin, prefix string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := prefix + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	dsn := u.String()
	drop := func() error {
		// A fresh context: the caller's may be cancelled (Ctrl-C) by the time it drops.
		ctx := context.Background()
		// Tenant roles are cluster-wide: find the ones this database made before dropping it.
		var roles []string
		if c, err := pgx.Connect(ctx, dsn); err == nil {
			rows, _ := c.Query(ctx, "SELECT db_role FROM tenants WHERE db_role IS NOT NULL")
			roles, _ = pgx.CollectRows(rows, pgx.RowTo[string])
			c.Close(ctx)
		}
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		for _, r := range roles {
			if _, err := conn.Exec(ctx, fmt.Sprintf("DROP ROLE IF EXISTS %q", r)); err != nil {
				return fmt.Errorf("drop tenant role %s: %w", r, err)
			}
		}
		return nil
	}
	return dsn, drop, nil
}

// SQLiteDSN returns the DSN of a new SQLite file under t's temporary directory.
func SQLiteDSN(t testing.TB) string {
	return "sqlite:" + filepath.Join(t.TempDir(), "tracekit.db")
}

// Open opens and migrates dsn, closing it when t ends.
func Open(t testing.TB, dsn string) *store.DB {
	t.Helper()
	db, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// TwoTenants provisions the tenants team-a and team-b in a new PostgreSQL database. It returns the
// database opened as its owner, its URL, and the URL of team-a's own login role: what a tenant pod
// connects as, confined by row-level security.
func TwoTenants(t testing.TB) (admin *store.DB, dsn, teamA string) {
	t.Helper()
	ctx := context.Background()
	dsn = PostgresDSN(t)
	admin = Open(t, dsn)
	creds, err := admin.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "team-a"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "team-b"}); err != nil {
		t.Fatal(err)
	}
	if teamA, err = creds.DSN(dsn); err != nil {
		t.Fatal(err)
	}
	return admin, dsn, teamA
}

// Dialects runs fn once against a new PostgreSQL database and once against a new SQLite file.
func Dialects(t *testing.T, fn func(t *testing.T, db *store.DB)) {
	t.Run("postgres", func(t *testing.T) { fn(t, Open(t, PostgresDSN(t))) })
	t.Run("sqlite", func(t *testing.T) { fn(t, Open(t, SQLiteDSN(t))) })
}

// Count returns the number of rows of table belonging to tenant, read over a separate connection
// (what a test sees is what any other client would see).
func Count(t testing.TB, dsn, table, tenant string) int {
	t.Helper()
	return QueryInt(t, dsn, "SELECT count(*) FROM "+table+" WHERE tenant_id = '"+tenant+"'")
}

// SpanText is the SQL reading span column col, service_version or host_name, of table spans in the
// database at dsn: on PostgreSQL a span stored since migration 00016 holds them in its resource.
func SpanText(dsn, col string) string {
	if strings.HasPrefix(dsn, "sqlite:") {
		return col
	}
	return "COALESCE(spans." + col + ", (SELECT r." + col + " FROM span_resources r WHERE r.tenant_id = spans.tenant_id AND r.id = spans.resource_id))"
}

// QueryInt runs a query returning one integer over a new connection to dsn.
func QueryInt(t testing.TB, dsn, query string) int {
	t.Helper()
	db := conn(t, dsn)
	defer db.Close()
	var n int
	if err := db.QueryRow(query).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Exec runs a statement over a new connection to dsn, as the owner.
func Exec(t testing.TB, dsn, stmt string) {
	t.Helper()
	db := conn(t, dsn)
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatalf("%s: %v", stmt, err)
	}
}

func conn(t testing.TB, dsn string) *sql.DB {
	t.Helper()
	driver, source := "pgx", dsn
	if !strings.HasPrefix(dsn, "postgres") {
		driver, source = "sqlite", "file:"+strings.TrimPrefix(dsn, "sqlite:")
	}
	db, err := sql.Open(driver, source)
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// TraceID is a valid trace id (32 hex digits) named name: its bytes, zero-padded on the left, so ids of
// names of one length order as the names do. PostgreSQL stores only hex ids (server/store/ids.go).
func TraceID(name string) string { return paddedHex(name, 16) }

// SpanID is a valid span id (16 hex digits) named name, as TraceID.
func SpanID(name string) string { return paddedHex(name, 8) }

func paddedHex(name string, size int) string {
	if len(name) > size {
		panic(fmt.Sprintf("id name %q is longer than %d bytes", name, size))
	}
	return strings.Repeat("00", size-len(name)) + hex.EncodeToString([]byte(name))
}

// Name is the name a TraceID or SpanID was made of, for readable assertions; an id not made so is
// returned as it is.
func Name(id string) string {
	b, err := hex.DecodeString(id)
	if err != nil {
		return id
	}
	name := strings.TrimLeft(string(b), "\x00")
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < ' ' || r > '~' }) {
		return id
	}
	return name
}
