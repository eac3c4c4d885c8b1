// Package analysistest loads the demo workload into a test database through the real OTLP receiver,
// so analysis tests run on the same data (and labelled incidents) a user sees in dev mode.
package analysistest

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store"
)

// End is when demo traffic ends in tests: fixed, so every run sees the same spans.
var End = time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC)

// Tenant is the tenant demo data is loaded into.
const Tenant = "demo"

// LoadDemo provisions Tenant in db and sends the demo workload described by opts (End defaults to
// End) through an OTLP receiver over HTTP. It returns what the demo sent, incidents included.
func LoadDemo(t testing.TB, db *store.DB, opts demo.Options) demo.Result {
	t.Helper()
	ctx := context.Background()
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: Tenant}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, Tenant, "demo loader", nil)
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ingest.Register(r, ingest.Config{DB: db, Auth: &auth.APIKeys{DB: db}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	if opts.End.IsZero() {
		opts.End = End
	}
	res, err := demo.Run(ctx, opts, demo.Sender{URL: srv.URL, APIKey: key}, nil)
	if err != nil {
		t.Fatalf("load demo data: %v", err)
	}
	return res
}
