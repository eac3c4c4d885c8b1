package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

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

// indexedBatch is n spans in traces of 10 like real traffic: a root request carrying a route and a
// user id, a payment service's request inside it, and database calls on a table; three services
// with their resources.
func indexedBatch(n, round int) store.Batch {
	res := func(svc string) []byte {
		return []byte(`{"service.name":"` + svc + `","service.version":"1.0.0","host.name":"` + svc + `-7d9f","k8s.pod.name":"` + svc + `-7d9f-x2"}`)
	}
	resources := [][]byte{res("frontend"), res("payment"), res("inventory")}
	spans := make([]store.Span, n)
	for i := range spans {
		trace := round*n + i/10
		s := store.Span{TraceID: fmt.Sprintf("%032x", trace), SpanID: fmt.Sprintf("%016x", i), ParentSpanID: fmt.Sprintf("%016x", i-i%10),
			Service: "inventory", Operation: "SELECT stock", Kind: store.KindClient, StartNS: int64(round*n+i) * 1e6, DurationNS: 1e6,
			DBSystem: "postgresql", DBStatement: "SELECT qty FROM stock WHERE sku = $1", ResourceAttributes: resources[2],
			Attributes: []byte(`{"db.system":"postgresql","db.statement":"SELECT qty FROM stock WHERE sku = $1","db.sql.table":"stock"}`)}
		switch i % 10 {
		case 0:
			s.ParentSpanID, s.Service, s.Operation, s.Kind, s.IsEntry, s.ResourceAttributes = "", "frontend", "POST /checkout", store.KindServer, true, resources[0]
			s.Attributes = []byte(fmt.Sprintf(`{"http.request.method":"POST","http.route":"/checkout","http.response.status_code":200,"user.id":"u%d"}`, trace%5000))
		case 5:
			s.Service, s.Operation, s.Kind, s.IsEntry, s.ResourceAttributes = "payment", "POST /charge", store.KindServer, true, resources[1]
			s.Attributes = []byte(`{"http.request.method":"POST","http.route":"/charge","http.response.status_code":200}`)
		}
		spans[i] = s
	}
	return store.Batch{Spans: spans}
}

// BenchmarkInsertBatch_AttributeIndex stores the same batches with the default attribute index and
// without any indexed key, alternating batch by batch so that both see the same machine load; b.N
// is batches of 1,000 spans per variant. It reports both throughputs and their ratio, on the
// owner's COPY path and on a tenant role's INSERT path.
func BenchmarkInsertBatch_AttributeIndex(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B, role bool, keys []string) *store.Tenant {
		if !role {
			db := storetest.Open(b, storetest.PostgresDSN(b))
			if err := db.SetAttributeIndex(store.AttributeIndex{Keys: keys}); err != nil {
				b.Fatal(err)
			}
			return db.ForTenant("bench")
		}
		_, _, dsn := storetest.TwoTenants(b)
		db, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: keys}); err != nil {
			b.Fatal(err)
		}
		return db.ForTenant("team-a")
	}
	for _, path := range []struct {
		name string
		role bool
	}{{"owner-copy", false}, {"tenant-role", true}} {
		b.Run(path.name, func(b *testing.B) {
			off, on := open(b, path.role, nil), open(b, path.role, store.DefaultIndexedAttributes)
			var tOff, tOn time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				batch := indexedBatch(1000, i)
				for _, v := range []struct {
					tn *store.Tenant
					d  *time.Duration
				}{{off, &tOff}, {on, &tOn}} {
					start := time.Now()
					if err := v.tn.InsertBatch(ctx, batch); err != nil {
						b.Fatal(err)
					}
					*v.d += time.Since(start)
				}
			}
			b.ReportMetric(float64(b.N*1000)/tOff.Seconds(), "spans/s-without")
			b.ReportMetric(float64(b.N*1000)/tOn.Seconds(), "spans/s-with")
			b.ReportMetric(tOff.Seconds()/tOn.Seconds(), "ratio")
		})
	}
}

// linkedBatch is indexedBatch where one trace in two has a messaging consumer (5% of the spans)
// starting a trace of its own, with a span link to the producer span of the trace before it.
func linkedBatch(n, round int) store.Batch {
	b := indexedBatch(n, round)
	for i := 13; i < n; i += 20 {
		p, c := &b.Spans[i-11], &b.Spans[i]
		p.Kind, p.Operation = store.KindProducer, "orders publish"
		c.Kind, c.Operation, c.IsEntry, c.ParentSpanID = store.KindConsumer, "orders process", true, ""
		c.Links = []byte(`[{"trace_id":"` + p.TraceID + `","span_id":"` + p.SpanID + `"}]`)
	}
	return b
}

// BenchmarkInsertBatch_Links stores batches without span links and the same batches with 5% of
// their spans linked consumers (each adding a tracekit.linked_trace index row), alternating batch
// by batch; b.N is batches of 1,000 spans per variant. It reports both throughputs and their ratio,
// on the owner's COPY path, a tenant role's INSERT path and SQLite.
func BenchmarkInsertBatch_Links(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B, path string) *store.Tenant {
		switch path {
		case "owner-copy":
			return storetest.Open(b, storetest.PostgresDSN(b)).ForTenant("bench")
		case "sqlite":
			return storetest.Open(b, storetest.SQLiteDSN(b)).ForTenant("bench")
		}
		_, _, dsn := storetest.TwoTenants(b)
		db, err := store.Open(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { db.Close() })
		return db.ForTenant("team-a")
	}
	for _, path := range []string{"owner-copy", "tenant-role", "sqlite"} {
		b.Run(path, func(b *testing.B) {
			without, with := open(b, path), open(b, path)
			var tOff, tOn time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				for _, v := range []struct {
					tn    *store.Tenant
					batch store.Batch
					d     *time.Duration
				}{{without, indexedBatch(1000, i), &tOff}, {with, linkedBatch(1000, i), &tOn}} {
					start := time.Now()
					if err := v.tn.InsertBatch(ctx, v.batch); err != nil {
						b.Fatal(err)
					}
					*v.d += time.Since(start)
				}
			}
			b.ReportMetric(float64(b.N*1000)/tOff.Seconds(), "spans/s-without")
			b.ReportMetric(float64(b.N*1000)/tOn.Seconds(), "spans/s-with")
			b.ReportMetric(tOff.Seconds()/tOn.Seconds(), "ratio")
		})
	}
}
