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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/app"
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
	if err := fs.Parse(args); err != nil {
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
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetLogger(logger)
	if own, err := db.CurrentTenant(ctx); err == nil {
		// Connected as a tenant's role: the database decides which tenant this is.
		if *tenant != "" && *tenant != own {
			return fmt.Errorf("--tenant %q but the database role belongs to tenant %q", *tenant, own)
		}
		*tenant = own
	}
	if *publicURL == "" {
		*publicURL = "http://" + *addr
	}
	facade, err := oauthFlags.facade(*publicURL, *tenant, logger)
	if err != nil {
		return err
	}
	registry := prometheus.NewRegistry()
	registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	h, gs := app.NewWithGRPC(app.Config{DB: db, Tenant: *tenant, PublicURL: *publicURL, AllowedOrigins: allowed, Logger: logger, OAuth: facade, Registry: registry, Prices: prices})
	engine, err := analysis.New(analysis.Config{DB: db, Tenant: *tenant, Logger: logger, RulesFile: *rulesFile, Retention: keep, Registry: registry})
	if err != nil {
		return err
	}
	go engine.Run(ctx) //nolint:errcheck // returns only when ctx ends
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	gln, err := listenGRPC(*grpcAddr)
	if err != nil {
		ln.Close()
		return err
	}
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
	return serveWithGRPC(ctx, ln, h, gln, gs)
}

// serve runs h on ln until ctx ends, then drains in-flight requests (acknowledged ingest included).
func serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	return serveWithGRPC(ctx, ln, h, nil, nil)
}

// serveWithGRPC is serve that also runs gs on gln, when gln is not nil, and drains its RPCs too.
func serveWithGRPC(ctx context.Context, ln net.Listener, h http.Handler, gln net.Listener, gs *grpc.Server) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	if gln == nil {
		gs = grpc.NewServer() // nothing to serve; stopping it is a no-op
	} else {
		go func() { errc <- gs.Serve(gln) }()
	}
	select {
	case err := <-errc:
		srv.Close()
		gs.Stop()
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	err := srv.Shutdown(shutdown)
	select {
	case <-stopped:
	case <-shutdown.Done():
		gs.Stop()
	}
	if err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
