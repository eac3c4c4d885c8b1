// Command analysisbench measures the analysis targets of docs/benchmarks.md against PostgreSQL:
// get_service_metrics over 7 days of a service with 5,000,000 spans (from the metric rollups), and
// the root-cause analysis of an anomaly whose window holds 1,000,000 spans. It creates a scratch
// database, loads synthetic spans through store.InsertBatch (the ingest path, rollups included) and
// drops the database at the end.
package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "analysisbench:", err)
		os.Exit(1)
	}
}

func run() error {
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL server (a scratch database is created on it)")
	metricSpans := flag.Int("spans", 5_000_000, "spans of the service whose 7-day metrics are read")
	rcaSpans := flag.Int("rca-spans", 1_000_000, "spans in the anomalous hour analysed by RCA (and in each of two baseline hours)")
	runs := flag.Int("runs", 50, "timed repetitions of the metrics query")
	keep := flag.Bool("keep", false, "keep the scratch database (its URL is printed) to look into it")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dsn, drop, err := storetest.NewDatabase(ctx, *admin, "tracekit_analysisbench_")
	if err != nil {
		return err
	}
	if *keep {
		fmt.Println("database:", dsn)
	} else {
		defer dropDatabase(drop)
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	t := db.ForTenant("bench")
	end := time.Now().Truncate(time.Hour)

	fmt.Printf("Loading %d spans of checkout-service over 7 days…\n", *metricSpans)
	took, err := load(ctx, t, *metricSpans, func(rng *mrand.Rand, i int, b *store.Batch) {
		at := end.Add(-7*24*time.Hour).UnixNano() + int64(i)*(int64(7*24*time.Hour)/int64(*metricSpans))
		s := store.Span{TraceID: traceID(rng), SpanID: "0000000000000001", Service: "checkout-service", IsEntry: true,
			Operation: operations[i%len(operations)], Kind: store.KindServer, StartNS: at, DurationNS: lognorm(rng, 40, 1),
			HTTPStatusCode: 200}
		if rng.Float64() < 0.01 {
			s.StatusCode, s.HTTPStatusCode = store.StatusError, 503
		}
		b.Spans = append(b.Spans, s)
	})
	if err != nil {
		return err
	}
	fmt.Printf("  %s (%.0f spans/s through InsertBatch with rollups)\n", took.Round(time.Second), float64(*metricSpans)/took.Seconds())
	start := time.Now()
	st, err := t.CompactRollups(ctx, end.UnixNano(), int64(8*24*time.Hour), int64(90*24*time.Hour))
	if err != nil {
		return err
	}
	fmt.Printf("  compaction of %d partial rows in %d hours: %s\n", st.PartialRows, st.Hours, time.Since(start).Round(time.Millisecond))
	if err := analyze(ctx, dsn); err != nil {
		return err
	}

	var lat []time.Duration
	for _, perOperation := range []bool{false, true} {
		q := store.MetricsQuery{Service: "checkout-service", From: end.Add(-7 * 24 * time.Hour).UnixNano(), To: end.UnixNano(),
			StepNS: int64(time.Hour), ByOperation: perOperation}
		lat = lat[:0]
		var m store.ServiceMetrics
		for range *runs {
			start := time.Now()
			if m, err = metrics.ServiceMetrics(ctx, t, q); err != nil {
				return err
			}
			lat = append(lat, time.Since(start))
		}
		fmt.Printf("get_service_metrics (7 days, hourly series, per operation %v; %d requests, %d points): %s; load average %s\n",
			perOperation, m.Total.Requests, len(m.Series), summary(lat), loadAverage())
	}

	fmt.Printf("Loading 3 hours of traces, %d spans an hour, the last hour with a slow statement…\n", *rcaSpans)
	incident := end.Add(2 * time.Hour).UnixNano()
	took, err = load(ctx, t, 3**rcaSpans/spansPerTrace, func(rng *mrand.Rand, i int, b *store.Batch) {
		at := end.UnixNano() + int64(i)*(int64(3*time.Hour)/int64(3**rcaSpans/spansPerTrace))
		b.Spans = append(b.Spans, shopTrace(rng, at, at >= incident)...)
	})
	if err != nil {
		return err
	}
	fmt.Printf("  %s\n", took.Round(time.Second))
	if err := analyze(ctx, dsn); err != nil {
		return err
	}
	start = time.Now()
	res, err := anomaly.Detect(ctx, t, end.Add(3*time.Hour+5*time.Minute), anomaly.Config{})
	if err != nil {
		return err
	}
	fmt.Printf("anomaly detection over 7 days and 3 hours of rollups (%d windows): %s\n", res.Windows, time.Since(start).Round(time.Millisecond))
	recs, err := t.AnomalyRecords(ctx, 0)
	if err != nil || len(recs) == 0 {
		return fmt.Errorf("no anomaly found (%v)", err)
	}
	a := recs[len(recs)-1]
	lat = lat[:0]
	var rep rca.Report
	for range 5 {
		start := time.Now()
		if rep, err = rca.Compute(ctx, t, a.ID, end.Add(3*time.Hour)); err != nil {
			return err
		}
		lat = append(lat, time.Since(start))
	}
	top := "none"
	if len(rep.Causes) > 0 {
		top = fmt.Sprintf("%s %s=%s (%.2f)", rep.Causes[0].Kind, rep.Causes[0].Attribute, rep.Causes[0].Value, rep.Causes[0].Confidence)
	}
	fmt.Printf("get_rca on demand (anomaly of %s, %d+%d requests compared, top cause %s): %s; load average %s\n",
		a.Service, rep.Anomalous, rep.Baseline, top, summary(lat), loadAverage())
	return nil
}

var operations = []string{"POST /v1/checkout", "GET /v1/cart", "POST /v1/cart/items", "GET /v1/orders",
	"DELETE /v1/cart/items/{id}", "GET /v1/orders/{id}", "POST /v1/coupons", "GET /v1/shipping"}

const spansPerTrace = 5

// shopTrace is api "GET /orders" running two queries and calling stock-service; slow makes the
// items query take most of a second.
func shopTrace(rng *mrand.Rand, at int64, slow bool) []store.Span {
	id := traceID(rng)
	q1d, q2d := lognorm(rng, 3, 0.4), lognorm(rng, 4, 0.4)
	if slow {
		q2d += int64(400e6 * (1 + rng.Float64()))
	}
	host := fmt.Sprintf("api-%d", rng.IntN(3))
	q1 := store.Span{TraceID: id, SpanID: "0000000000000002", ParentSpanID: "0000000000000001", Service: "api", HostName: host,
		Operation: "SELECT orders", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: "SELECT * FROM orders WHERE customer_id = $1",
		StartNS: at + 1e6, DurationNS: q1d}
	q2 := store.Span{TraceID: id, SpanID: "0000000000000003", ParentSpanID: "0000000000000001", Service: "api", HostName: host,
		Operation: "SELECT items", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: "SELECT * FROM items WHERE order_id = $1",
		StartNS: q1.StartNS + q1d, DurationNS: q2d}
	srvd := lognorm(rng, 2, 0.4)
	call := store.Span{TraceID: id, SpanID: "0000000000000004", ParentSpanID: "0000000000000001", Service: "api", HostName: host,
		Operation: "GET /stock", Kind: store.KindClient, PeerService: "stock-service", StartNS: q2.StartNS + q2d, DurationNS: srvd + 4e5}
	srv := store.Span{TraceID: id, SpanID: "0000000000000005", ParentSpanID: "0000000000000004", Service: "stock-service", HostName: "stock-0",
		Operation: "GET /stock", Kind: store.KindServer, IsEntry: true, StartNS: call.StartNS + 2e5, DurationNS: srvd, HTTPStatusCode: 200}
	root := store.Span{TraceID: id, SpanID: "0000000000000001", Service: "api", HostName: host, Operation: "GET /orders",
		Kind: store.KindServer, IsEntry: true, StartNS: at, DurationNS: call.StartNS + call.DurationNS + 1e6 - at, HTTPStatusCode: 200}
	return []store.Span{root, q1, q2, call, srv}
}

// load generates n items with gen in batches of about 5,000 spans, written by two goroutines (the
// ingest receiver's concurrency on this machine), and returns how long it took.
func load(ctx context.Context, t *store.Tenant, n int, gen func(rng *mrand.Rand, i int, b *store.Batch)) (time.Duration, error) {
	start := time.Now()
	batches := make(chan store.Batch, 2)
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for b := range batches {
				if err := t.InsertBatch(ctx, b); err != nil {
					errs <- err
					for range batches {
					}
					return
				}
			}
		})
	}
	rng := mrand.New(mrand.NewPCG(1, 2))
	var b store.Batch
	for i := range n {
		gen(rng, i, &b)
		if len(b.Spans) >= 5000 {
			batches <- b
			b = store.Batch{}
		}
	}
	batches <- b
	close(batches)
	wg.Wait()
	close(errs)
	return time.Since(start), <-errs
}

func lognorm(rng *mrand.Rand, medianMS, sigma float64) int64 {
	return int64(medianMS * 1e6 * math.Exp(sigma*rng.NormFloat64()))
}

func traceID(rng *mrand.Rand) string {
	return fmt.Sprintf("%016x%016x", rng.Uint64(), rng.Uint64())
}

func summary(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	p := func(q float64) time.Duration { return s[min(len(s)-1, int(math.Ceil(q*float64(len(s))))-1)] }
	r := func(d time.Duration) time.Duration { return d.Round(100 * time.Microsecond) }
	return fmt.Sprintf("min %s, p50 %s, p95 %s, max %s over %d runs", r(s[0]), r(p(0.5)), r(p(0.95)), r(s[len(s)-1]), len(s))
}

// loadAverage is the one-minute load average (Linux), to read the timings against: other work on the
// machine slows every figure.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "unknown"
	}
	return f[0]
}

// analyze refreshes the planner's statistics after a bulk load, as autovacuum does for a database
// that fills steadily: without them PostgreSQL scans a freshly loaded table instead of its indexes.
func analyze(ctx context.Context, dsn string) error {
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, "ANALYZE spans, metric_rollups")
	return err
}

func dropDatabase(drop func() error) {
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
