package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestInsertBatch_LogsAndCountsAFailedServicesUpdateButKeepsTheSpans: the services tables are
// derived from spans, so failing to update them must not fail an ingest whose spans are committed
// (the client would resend them), but it must not pass unnoticed either.
func TestInsertBatch_LogsAndCountsAFailedServicesUpdateButKeepsTheSpans(t *testing.T) {
	for _, dialect := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"postgres", storetest.PostgresDSN}, {"sqlite", storetest.SQLiteDSN}} {
		t.Run(dialect.name, func(t *testing.T) {
			dsn := dialect.dsn(t)
			db := storetest.Open(t, dsn)
			var logs bytes.Buffer
			db.SetLogger(slog.New(slog.NewTextHandler(&logs, nil)))
			storetest.Exec(t, dsn, "DROP TABLE service_versions")
			tn := db.ForTenant("acme")
			err := tn.InsertBatch(context.Background(), store.Batch{Spans: []store.Span{{TraceID: "0000000000000000000000000000000a",
				SpanID: "000000000000000a", Service: "api", Operation: "GET /", IsEntry: true, StartNS: 1e9, DurationNS: 1e6}}})
			if err != nil {
				t.Fatalf("the batch failed though its spans could be stored: %v", err)
			}
			if n := storetest.Count(t, dsn, "spans", "acme"); n != 1 {
				t.Errorf("%d spans stored, want 1", n)
			}
			if n := db.ServicesUpdateFailures(); n != 1 {
				t.Errorf("%d failures counted, want 1", n)
			}
			if !strings.Contains(logs.String(), "services table not updated") || !strings.Contains(logs.String(), "tenant=acme") {
				t.Errorf("no warning logged: %q", logs.String())
			}
		})
	}
}
