package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/store"
)

func runServer(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	addr := fs.String("addr", envOr(tenantconfig.EnvAddr, ":8080"), "listen address ($TRACEKIT_ADDR)")
	grpcAddr := grpcAddrFlag(fs, envOrUnset(tenantconfig.EnvGRPCAddr, ":4317"), tenantconfig.EnvGRPCAddr)
	dbURL := databaseFlag(fs)
	tenant := fs.String("tenant", os.Getenv(tenantconfig.EnvTenant), "serve only this tenant ($TRACEKIT_TENANT); empty serves every tenant whose API key is presented")
	publicURL := fs.String("public-url", os.Getenv(tenantconfig.EnvPublicURL), "external base URL clients use, e.g. https://acme.tracekit.example.com ($TRACEKIT_PUBLIC_URL); default http://<addr>")
	origins := fs.String("allowed-origins", os.Getenv(tenantconfig.EnvAllowedOrigins), "comma-separated browser origins (scheme://host[:port]) allowed to call /mcp besides the public URL's and loopback ones ($TRACEKIT_ALLOWED_ORIGINS)")
	oauthFlags := registerOAuthFlags(fs)
	rulesFile := fs.String("alert-rules", os.Getenv(tenantconfig.EnvAlertRules), "JSON file of alert rules replacing the tenant's at start, as the operator writes them ($TRACEKIT_ALERT_RULES)")
	retention := retentionFlag(fs, os.Getenv(tenantconfig.EnvRetention), tenantconfig.EnvRetention,
		"delete spans, LLM calls and snapshots older than this, e.g. 720h for 30 days, at least 1h; rollups are kept no longer ($TRACEKIT_RETENTION); empty keeps them forever")
	loadPrices := pricesFlag(fs)
	attrIndex := attributeIndexFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	index, err := attrIndex()
	if err != nil {
		return err
	}
	keep, err := retention()
	if err != nil {
		return err
	}
	prices, err := loadPrices()
	if err != nil {
		return err
	}
	allowed, err := parseOrigins(*origins)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	if os.Getenv("GOMEMLIMIT") == "" {
		// Ingest holds at most 128 MiB of request bytes (ingest.Config.MaxBufferedBytes); a soft limit
		// makes the collector return their garbage before the heap doubles, not after.
		debug.SetMemoryLimit(softMemoryLimit)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	// Serve at once, not ready, while waiting for the database: a pod that starts before its
	// database (or during an outage) waits instead of crash-looping.
	var current atomic.Pointer[http.Handler]
	waiting := waitingHandler()
	current.Store(&waiting)
	serveCtx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() {
		served <- serve(serveCtx, ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			(*current.Load()).ServeHTTP(w, r)
		}))
	}()
	fail := func(err error) error {
		stop()
		<-served
		return err
	}
	db, err := waitForDB(ctx, *dbURL, logger)
	if err != nil {
		return fail(err)
	}
	defer db.Close()
	db.SetLogger(logger)
	if err := db.SetAttributeIndex(index); err != nil {
		return fail(err)
	}
	if own, err := db.CurrentTenant(ctx); err == nil {
		// Connected as a tenant's role: the database decides which tenant this is.
		if *tenant != "" && *tenant != own {
			return fail(fmt.Errorf("--tenant %q but the database role belongs to tenant %q", *tenant, own))
		}
		*tenant = own
	}
	if *publicURL == "" {
		*publicURL = "http://" + *addr
	}
	facade, err := oauthFlags.facade(*publicURL, *tenant, logger)
	if err != nil {
		return fail(err)
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, gs := app.NewWithGRPC(app.Config{DB: db, Tenant: *tenant, PublicURL: *publicURL, AllowedOrigins: allowed, Logger: logger, OAuth: facade, Registry: registry, Prices: prices})
	engine, err := analysis.New(analysis.Config{DB: db, Tenant: *tenant, Logger: logger, RulesFile: *rulesFile, Retention: keep, Registry: registry})
	if err != nil {
		return fail(err)
	}
	current.Store(&h)
	go engine.Run(ctx) //nolint:errcheck // returns only when ctx ends
	// OTLP/gRPC listens once the database is there: until then exporters are refused and retry.
	gln, err := listenGRPC(*grpcAddr)
	if err != nil {
		return fail(err)
	}
	grpcStopped := serveGRPC(serveCtx, gln, gs, logger)
	grpcListen := "off"
	if gln != nil {
		grpcListen = gln.Addr().String()
	}
	kept := "forever"
	if keep > 0 {
		kept = keep.String()
	}
	logger.Info("serving", "addr", ln.Addr().String(), "grpc_addr", grpcListen, "tenant", *tenant, "public_url", *publicURL, "database", db.Dialect(),
		"retention", kept)
	err = <-served
	<-grpcStopped
	return err
}

// softMemoryLimit is the Go runtime's memory limit unless $GOMEMLIMIT sets one: a target for the
// garbage collector, not a cap (docs/benchmarks.md, hostile ingest).
const softMemoryLimit = 320 << 20

// waitingHandler answers while the server waits for its database: alive, not ready, and nothing
// about the database but that it is unavailable (its address and user are for the log).
func waitingHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/healthz") {
			fmt.Fprint(w, "ok")
			return
		}
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, "database unavailable")
	})
}

// waitForDB opens (and migrates) the database, retrying with backoff until it answers or ctx ends.
// A URL that can never work is an error at once.
func waitForDB(ctx context.Context, url string, logger *slog.Logger) (*store.DB, error) {
	delay := 500 * time.Millisecond
	for {
		db, err := openDB(ctx, url)
		if err == nil || errors.Is(err, store.ErrBadURL) {
			return db, err
		}
		logger.Warn("waiting for the database", "retry_in", delay.String(), "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("gave up waiting for the database: %w", err)
		case <-time.After(delay):
		}
		delay = min(2*delay, 15*time.Second)
	}
}

// serve runs h on ln until ctx ends, then drains in-flight requests (acknowledged ingest included).
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
