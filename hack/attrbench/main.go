// Command attrbench measures search_traces' attribute filters on one PostgreSQL tenant with the
// attribute index (read as the database owner, and as the tenant's own role under row-level
// security, as production reads) and without it (the same store read with no indexed key),
// alternating query by query: per case the p50 and p95 of what the tool runs (SearchTraces for a
// page, then CountTraces). It loads a new database through the store's ingest path unless
// -database-url names one it loaded before (-keep). Results: docs/benchmarks.md, "Attribute search".
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func main() {
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL; a scratch database is created")
	dbURL := flag.String("database-url", "", "measure this database, loaded by an earlier run with -keep, instead of loading one")
	spans := flag.Int("spans", 2_000_000, "spans to load, in traces of 10 spread over the last 24 hours")
	keep := flag.Bool("keep", false, "keep the new database for later runs")
	n := flag.Int("n", 40, "queries per case and variant")
	flag.Parse()
	if err := run(*admin, *dbURL, *spans, *keep, *n); err != nil {
		fmt.Fprintln(os.Stderr, "attrbench:", err)
		os.Exit(1)
	}
}

const (
	tenant     = "bench"
	users      = 2000 // each user: 1/2000 = 0.05 % of requests
	paymentsIn = 1000 // one trace in 1000 writes to the payments table (0.1 %)
)

func run(admin, dsn string, spans int, keep bool, n int) error {
	ctx := context.Background()
	end := time.Now().Truncate(time.Minute)
	scratch := dsn == "" && !keep
	if dsn == "" {
		var err error
		var drop func() error
		if dsn, drop, err = storetest.NewDatabase(ctx, admin, "tracekit_attrbench_"); err != nil {
			return err
		}
		if keep {
			fmt.Println("database kept:", dsn)
		} else {
			defer drop() //nolint:errcheck // best effort
		}
		if err := load(ctx, dsn, spans, end); err != nil {
			return err
		}
	}
	with, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer with.Close()
	without, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer without.Close()
	if err := without.SetAttributeIndex(store.AttributeIndex{}); err != nil {
		return err
	}
	// Production reads as the tenant's own role, under row-level security.
	creds, err := with.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: tenant, DisplayName: tenant})
	if err != nil {
		return err
	}
	if scratch {
		// The login role outlives the dropped database otherwise.
		defer with.Admin().DeleteTenant(ctx, tenant) //nolint:errcheck // best effort
	}
	roleDSN, err := creds.DSN(dsn)
	if err != nil {
		return err
	}
	asRole, err := store.Open(ctx, roleDSN)
	if err != nil {
		return err
	}
	defer asRole.Close()
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()
	var count int
	if err := raw.QueryRowContext(ctx, `SELECT count(*) FROM spans`).Scan(&count); err != nil {
		return err
	}
	fmt.Printf("tenant: %d spans over 24 h; %d users (0.05 %% of requests each); payments table in 0.1 %% of traces\n\n", count, users)
	fmt.Println("| filter | service | window | p50 / p95 with index | with index, tenant role | without | hits |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- |")
	rnd := rand.New(rand.NewPCG(7, 7))
	for _, c := range []struct {
		name, key string
		value     func() string
		service   string
	}{
		{"user.id = one user", "user.id", func() string { return fmt.Sprintf("u%d", rnd.IntN(users)) }, ""},
		{"user.id = one user", "user.id", func() string { return fmt.Sprintf("u%d", rnd.IntN(users)) }, "payment"},
		{"user.id matching none", "user.id", func() string { return fmt.Sprintf("nobody-%d", rnd.IntN(1e6)) }, ""},
		{"user.id matching none", "user.id", func() string { return fmt.Sprintf("nobody-%d", rnd.IntN(1e6)) }, "payment"},
		{"db.sql.table = payments (child span)", "db.sql.table", func() string { return "payments" }, ""},
		{"db.sql.table = payments (child span)", "db.sql.table", func() string { return "payments" }, "payment"},
	} {
		for _, window := range []time.Duration{time.Hour, 24 * time.Hour} {
			var tWith, tRole, tWithout []time.Duration
			hits := 0
			for range n {
				q := store.TraceQuery{From: end.Add(-window).UnixNano(), To: end.UnixNano(), Service: c.service,
					Attributes: map[string]string{c.key: c.value()}, Limit: 11}
				d, h, err := measure(ctx, with.ForTenant(tenant), q)
				if err != nil {
					return err
				}
				tWith, hits = append(tWith, d), hits+h
				if d, _, err = measure(ctx, asRole.ForTenant(tenant), q); err != nil {
					return err
				}
				tRole = append(tRole, d)
				if d, _, err = measure(ctx, without.ForTenant(tenant), q); err != nil {
					return err
				}
				tWithout = append(tWithout, d)
			}
			svc := c.service
			if svc == "" {
				svc = "(roots)"
			}
			fmt.Printf("| %s | %s | %s | %s / %s | %s / %s | %s / %s | %.1f |\n", c.name, svc, window, pct(tWith, 50), pct(tWith, 95),
				pct(tRole, 50), pct(tRole, 95), pct(tWithout, 50), pct(tWithout, 95), float64(hits)/float64(n))
		}
	}
	return nil
}

// measure runs what search_traces runs for a first page: the page, then the count.
func measure(ctx context.Context, tn *store.Tenant, q store.TraceQuery) (time.Duration, int, error) {
	start := time.Now()
	hits, err := tn.SearchTraces(ctx, q)
	if err != nil {
		return 0, 0, err
	}
	if _, err := tn.CountTraces(ctx, q); err != nil {
		return 0, 0, err
	}
	return time.Since(start), len(hits), nil
}

func pct(ds []time.Duration, p int) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[(len(s)*p+99)/100-1].Round(100 * time.Microsecond).String()
}

// load writes spans in traces of 10 (a frontend request with a user id, a payment request inside
// it, database calls of the inventory service on a table) spread evenly over the 24 hours before
// end, with two writers of 1,000-span batches.
func load(ctx context.Context, dsn string, spans int, end time.Time) error {
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	tn := db.ForTenant(tenant)
	traces := spans / 10
	step := int64(24*time.Hour) / int64(traces)
	first := end.Add(-24 * time.Hour).UnixNano()
	started := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for t0 := w * 100; t0 < traces; t0 += 200 {
				var b store.Batch
				for t := t0; t < min(t0+100, traces); t++ {
					b.Spans = append(b.Spans, trace(t, first+int64(t)*step)...)
				}
				if err := tn.InsertBatch(ctx, b); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("loaded %d spans in %s\n", traces*10, time.Since(started).Round(time.Second))
	raw, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer raw.Close()
	_, err = raw.ExecContext(ctx, `VACUUM ANALYZE`)
	return err
}

var resources = map[string][]byte{}

func init() {
	for _, s := range []string{"frontend", "payment", "inventory"} {
		resources[s] = []byte(`{"service.name":"` + s + `","service.version":"1.0.0","host.name":"` + s + `-7d9f"}`)
	}
}

func trace(t int, start int64) []store.Span {
	id := fmt.Sprintf("%032x", uint64(t)*0x9e3779b97f4a7c15)
	table := "orders"
	if t%paymentsIn == 0 {
		table = "payments"
	}
	out := make([]store.Span, 10)
	for i := range out {
		s := store.Span{TraceID: id, SpanID: fmt.Sprintf("%016x", t*10+i), ParentSpanID: fmt.Sprintf("%016x", t*10+i-i%5),
			Service: "inventory", Operation: "SELECT", Kind: store.KindClient, StartNS: start + int64(i)*1e6, DurationNS: 1e6,
			DBSystem: "postgresql", DBStatement: "SELECT qty FROM " + table + " WHERE id = $1", ResourceAttributes: resources["inventory"],
			Attributes: []byte(`{"db.system":"postgresql","db.sql.table":"` + table + `"}`)}
		switch i {
		case 0:
			s.ParentSpanID, s.Service, s.Operation, s.Kind, s.IsEntry, s.ResourceAttributes = "", "frontend", "POST /checkout", store.KindServer, true, resources["frontend"]
			s.DurationNS, s.HTTPRoute, s.HTTPStatusCode = 20e6, "/checkout", 200
			s.Attributes = []byte(fmt.Sprintf(`{"http.route":"/checkout","http.response.status_code":200,"user.id":"u%d"}`, t%users))
		case 5:
			s.ParentSpanID = fmt.Sprintf("%016x", t*10)
			s.Service, s.Operation, s.Kind, s.IsEntry, s.ResourceAttributes = "payment", "POST /charge", store.KindServer, true, resources["payment"]
			s.DurationNS, s.HTTPRoute, s.HTTPStatusCode = 10e6, "/charge", 200
			s.Attributes = []byte(`{"http.route":"/charge","http.response.status_code":200}`)
		}
		out[i] = s
	}
	return out
}
