// Command shop is a small instrumented web shop to point at TraceKit: an HTTP service traced with
// the OpenTelemetry SDK (a server span per request, a database span per query, a GenAI span per
// model call) and a live-debugging capture site. See README.md.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	_ "modernc.org/sqlite"

	"github.com/tracekit/tracekit/sdk/go/debugger"
)

const service = "shop"

var tracer = otel.Tracer("github.com/tracekit/tracekit/examples/shop")

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "listen address")
	load := flag.Duration("load", 0, "also send itself two requests a second for this long (e.g. 10m), slow and failing from a fifth to three fifths of it")
	history := flag.Duration("history", 0, "first send this much backdated, healthy traffic (e.g. 3h): the baseline anomalies are judged against")
	flag.Parse()
	if err := run(*addr, *load, *history); err != nil {
		log.Fatal(err)
	}
}

// config reads where TraceKit is: $TRACEKIT_ENDPOINT (default http://127.0.0.1:8080, what
// `make run` starts) and $TRACEKIT_API_KEY (the key `make run` prints). The standard
// OTEL_EXPORTER_OTLP_* variables, when set, take precedence for traces.
func config() (endpoint, key string, err error) {
	endpoint, key = os.Getenv("TRACEKIT_ENDPOINT"), os.Getenv("TRACEKIT_API_KEY")
	if endpoint == "" {
		endpoint = "http://127.0.0.1:8080"
	}
	if key == "" {
		return "", "", errors.New("set TRACEKIT_API_KEY to the API key `make run` printed")
	}
	return endpoint, key, nil
}

func run(addr string, load, history time.Duration) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	endpoint, key, err := config()
	if err != nil {
		return err
	}
	shutdown, err := setupTracing(ctx, endpoint, key)
	if err != nil {
		return err
	}
	defer shutdown()
	if history > 0 {
		backfill(ctx, history)
	}
	agent, err := debugger.Start(debugger.Config{Service: service, Endpoint: endpoint, APIKey: key, PollInterval: pollInterval()})
	if err != nil {
		return err
	}
	defer agent.Close()

	db, err := openCatalog()
	if err != nil {
		return err
	}
	defer db.Close()
	s := &shop{db: db}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /checkout", s.checkout)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	// Span names as the HTTP conventions want them: the method and the route ("GET /checkout").
	srv := &http.Server{Handler: otelhttp.NewHandler(mux, "shop", otelhttp.WithSpanNameFormatter(
		func(_ string, r *http.Request) string { return r.Pattern }))}
	go func() {
		<-ctx.Done()
		srv.Shutdown(context.Background())
	}()
	fmt.Printf("shop listening on http://%s (try /checkout?user=alice&items=3)\n", ln.Addr())
	if load > 0 {
		go sendLoad(ctx, s, "http://"+ln.Addr().String(), load)
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// pollInterval lets tests and impatient people poll breakpoints more often than the server's 30 s.
func pollInterval() time.Duration {
	d, _ := time.ParseDuration(os.Getenv("TRACEKIT_POLL_INTERVAL"))
	return d
}

func setupTracing(ctx context.Context, endpoint, key string) (func(), error) {
	opts := []otlptracehttp.Option{}
	if os.Getenv("OTEL_EXPORTER_OTLP_ENDPOINT") == "" && os.Getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") == "" {
		opts = append(opts, otlptracehttp.WithEndpointURL(endpoint+"/v1/traces"),
			otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + key}))
	}
	exp, err := otlptracehttp.New(ctx, opts...)
	if err != nil {
		return nil, err
	}
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(
		attribute.String("service.name", service), attribute.String("service.version", "1.0.0")))
	if err != nil {
		return nil, err
	}
	// Blocking: the backfill makes spans faster than they are exported, and none should be dropped.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Second), sdktrace.WithBlocking()),
		sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		tp.Shutdown(ctx)
	}, nil
}

type shop struct {
	db   *sql.DB
	slow atomic.Int64 // nanoseconds each query waits during the load's incident, when half of them fail
}

type product struct {
	SKU   string  `json:"sku"`
	Price float64 `json:"price"`
}

type customer struct {
	Name       string `json:"name"`
	Email      string `json:"email"`
	CardNumber string `json:"card_number"`
	CVC        string `json:"cvc"`
}

func openCatalog() (*sql.DB, error) {
	db, err := sql.Open("sqlite", "file:catalog?mode=memory&cache=shared")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	_, err = db.Exec(`CREATE TABLE products (sku TEXT PRIMARY KEY, price REAL);
		INSERT INTO products VALUES ('mug', 12.5), ('tee', 24.0), ('cap', 18.25), ('socks', 7.75), ('poster', 31.0)`)
	return db, err
}

// checkout prices a cart: a database query, a model call for a recommendation, and the capture
// site "checkout.total".
func (s *shop) checkout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	items, _ := strconv.Atoi(r.URL.Query().Get("items"))
	items = max(1, min(items, 5))
	cust := customer{Name: r.URL.Query().Get("user"), Email: r.URL.Query().Get("user") + "@example.com",
		CardNumber: "4111 1111 1111 1111", CVC: "737"}
	cart, err := s.products(ctx, items)
	if err != nil {
		trace.SpanFromContext(ctx).RecordError(err)
		trace.SpanFromContext(ctx).SetStatus(codes.Error, err.Error())
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	total := 0.0
	for _, p := range cart {
		total += p.Price
	}
	discount := 0.0
	if total > 50 {
		discount = 0.1 * total
	}
	// Live debugging: a breakpoint on the label "checkout.total" (or on this file and line) captures
	// these variables, redacted, linked to this request's trace. Without one this costs nothing.
	debugger.Capture(ctx, "checkout.total", map[string]any{"cart": cart, "total": total, "discount": discount, "customer": cust})
	tip := recommend(ctx, cart)
	sc := trace.SpanContextFromContext(ctx)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"total": total - discount, "items": len(cart), "recommendation": tip,
		"trace_id": sc.TraceID().String()})
}

const productQuery = "SELECT sku, price FROM products ORDER BY sku LIMIT ?"

func (s *shop) products(ctx context.Context, n int) ([]product, error) {
	ctx, span := tracer.Start(ctx, "SELECT products", trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "sqlite"), attribute.String("db.query.text", productQuery),
		attribute.String("db.collection.name", "products")))
	defer span.End()
	slow := time.Duration(s.slow.Load())
	time.Sleep(slow)
	if slow > 0 && rand.IntN(2) == 0 {
		err := errors.New("database is locked (SQLITE_BUSY)")
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, productQuery, n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []product
	for rows.Next() {
		var p product
		if err := rows.Scan(&p.SKU, &p.Price); err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// recommend stands in for a chat-completion call: a real application gets this span from its
// provider SDK's OpenTelemetry instrumentation, with the same gen_ai.* attributes.
func recommend(ctx context.Context, cart []product) string {
	_, span := tracer.Start(ctx, "chat gpt-4o-mini", trace.WithSpanKind(trace.SpanKindClient))
	defer span.End()
	in, out := int64(180+40*len(cart)), int64(40+rand.IntN(60))
	time.Sleep(time.Duration(30+rand.IntN(60)) * time.Millisecond)
	span.SetAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o-mini"), attribute.String("gen_ai.response.model", "gpt-4o-mini"),
		attribute.Int64("gen_ai.usage.input_tokens", in), attribute.Int64("gen_ai.usage.output_tokens", out))
	return fmt.Sprintf("customers who bought %s also bought socks", cart[0].SKU)
}

// loadEvery is the pace of -load and -history.
const loadEvery = 500 * time.Millisecond

// sendLoad requests /checkout two times a second for d; from a fifth to three fifths of d the
// database is locked: every checkout waits 800 ms and half of them fail. The incident ends early
// enough for the analysis (15-minute windows, judged 2 minutes after they end, while traffic goes
// on) to reach it.
func sendLoad(ctx context.Context, s *shop, base string, d time.Duration) {
	start := time.Now()
	tick := time.NewTicker(loadEvery)
	defer tick.Stop()
	users := []string{"alice", "bob", "chen", "dara"}
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		el := time.Since(start)
		if el > d {
			fmt.Println("load finished")
			return
		}
		s.slow.Store(0)
		if el > d/5 && el < 3*d/5 {
			s.slow.Store(int64(800 * time.Millisecond))
		}
		go func() {
			resp, err := http.Get(fmt.Sprintf("%s/checkout?user=%s&items=%d", base, users[i%len(users)], 1+i%5))
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
}

// backfill sends d of healthy checkouts that already happened, two a second (the rate of -load)
// up to a minute ago, with the same spans as live requests.
func backfill(ctx context.Context, d time.Duration) {
	end := time.Now().Add(-time.Minute)
	r := rand.New(rand.NewPCG(1, 2))
	n := 0
	for at := end.Add(-d); at.Before(end); at = at.Add(loadEvery) {
		pastCheckout(ctx, at, r)
		n++
	}
	fmt.Printf("sent %d backdated checkouts (%s)\n", n, d)
}

func pastCheckout(ctx context.Context, at time.Time, r *rand.Rand) {
	ctx, root := tracer.Start(ctx, "GET /checkout", trace.WithTimestamp(at), trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "GET"), attribute.String("http.route", "/checkout"),
			attribute.Int("http.response.status_code", 200)))
	dbEnd := at.Add(time.Duration(1+r.IntN(4)) * time.Millisecond)
	_, db := tracer.Start(ctx, "SELECT products", trace.WithTimestamp(at), trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attribute.String("db.system.name", "sqlite"), attribute.String("db.query.text", productQuery),
		attribute.String("db.collection.name", "products")))
	db.End(trace.WithTimestamp(dbEnd))
	_, llm := tracer.Start(ctx, "chat gpt-4o-mini", trace.WithTimestamp(dbEnd), trace.WithSpanKind(trace.SpanKindClient))
	end := dbEnd.Add(time.Duration(30+r.IntN(60)) * time.Millisecond)
	llm.SetAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
		attribute.String("gen_ai.request.model", "gpt-4o-mini"), attribute.String("gen_ai.response.model", "gpt-4o-mini"),
		attribute.Int64("gen_ai.usage.input_tokens", int64(220+40*r.IntN(4))), attribute.Int64("gen_ai.usage.output_tokens", int64(40+r.IntN(60))))
	llm.End(trace.WithTimestamp(end))
	root.End(trace.WithTimestamp(end.Add(time.Millisecond)))
}
