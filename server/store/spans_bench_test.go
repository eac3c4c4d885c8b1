package store_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func benchBatch(n, round int) store.Batch {
	spans := make([]store.Span, n)
	for i := range spans {
		spans[i] = store.Span{TraceID: fmt.Sprintf("%032x", round*n+i/10), SpanID: fmt.Sprintf("%016x", i),
			Service: "checkout", Operation: "SELECT orders", Kind: store.KindClient, IsEntry: i%10 == 0,
			StartNS: int64(round*n + i), DurationNS: 1e6, DBSystem: "postgresql", DBStatement: "SELECT * FROM orders WHERE id = $1",
			Attributes:         []byte(`{"db.system":"postgresql","db.statement":"SELECT * FROM orders WHERE id = $1"}`),
			ResourceAttributes: []byte(`{"service.name":"checkout","service.version":"1.0.0","host.name":"checkout-7d9f"}`)}
	}
	return store.Batch{Spans: spans}
}

// BenchmarkInsertBatch measures one writer storing 1,000-span batches; b.N is batches. On
// PostgreSQL it writes as the database owner (COPY) and as the tenant's own role (INSERT … SELECT
// FROM unnest under row-level security: what a cluster's tenant server does).
func BenchmarkInsertBatch(b *testing.B) {
	tenantRole := func(tb testing.TB) *store.DB {
		dsn := storetest.PostgresDSN(tb)
		creds, err := storetest.Open(tb, dsn).Admin().ProvisionTenant(context.Background(), store.TenantSpec{ID: "bench"})
		if err != nil {
			tb.Fatal(err)
		}
		role, err := creds.DSN(dsn)
		if err != nil {
			tb.Fatal(err)
		}
		db, err := store.Open(context.Background(), role)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { db.Close() })
		return db
	}
	for _, d := range []struct {
		name string
		open func(testing.TB) *store.DB
	}{
		{"postgres", func(tb testing.TB) *store.DB { return storetest.Open(tb, storetest.PostgresDSN(tb)) }},
		{"postgres-tenant-role", tenantRole},
		{"sqlite", func(tb testing.TB) *store.DB { return storetest.Open(tb, storetest.SQLiteDSN(tb)) }},
	} {
		b.Run(d.name, func(b *testing.B) {
			t := d.open(b).ForTenant("bench")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if err := t.InsertBatch(ctx, benchBatch(1000, i)); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "spans/s")
		})
	}
}
