package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/store"
)

func runDev(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8080", "listen address")
	grpcAddr := grpcAddrFlag(fs, "127.0.0.1:4317", "")
	dataDir := fs.String("data-dir", defaultDataDir, "where the SQLite database and demo labels live")
	noDemo := fs.Bool("no-demo", false, "do not load demo data on first start")
	// Unlike a tenant server, dev keeps everything by default: the demo day is loaded only once.
	retention := retentionFlag(fs, "", "", "delete spans, LLM calls and snapshots older than this, e.g. 720h for 30 days, at least 1h; empty keeps them forever")
	loadPrices := pricesFlag(fs)
	rulesFile := fs.String("alert-rules", "", "JSON file of alert rules to use instead of the demo's, in tracekit server's format (e.g. examples/shop/alert-rules.json)")
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
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	db, err := openDB(ctx, devDatabaseURL(*dataDir))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetLogger(logger)
	// Built now, so that a bad rules file is refused before the demo loads; it runs after.
	engine, err := analysis.New(analysis.Config{DB: db, Logger: logger, RulesFile: *rulesFile, DemoRules: true, Retention: keep})
	if err != nil {
		return err
	}
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: devTenant, DisplayName: "Local development"}); err != nil {
		return err
	}
	// A fresh key each start: no clear-text key is ever kept on disk.
	key, _, err := db.Admin().CreateAPIKey(ctx, devTenant, "tracekit dev "+time.Now().UTC().Format(time.RFC3339), nil)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w (is another tracekit running? choose another --addr)", *addr, err)
	}
	gln, err := listenGRPC(*grpcAddr)
	if err != nil {
		ln.Close()
		return err
	}
	base := "http://" + ln.Addr().String()
	grpcBase := ""
	if gln != nil {
		grpcBase = "http://" + gln.Addr().String()
	}
	auth, err := startDevAuth(ctx, db, *dataDir, base, logger)
	if err != nil {
		return err
	}
	h, gs := app.NewWithGRPC(app.Config{DB: db, PublicURL: base, Logger: logger, OAuth: auth.facade, Prices: prices})
	h = auth.mount(h)
	errc := make(chan error, 1)
	go func() { errc <- serve(ctx, ln, h) }()
	grpcStopped := serveGRPC(ctx, gln, gs, logger)

	marker := filepath.Join(*dataDir, "demo-loaded")
	if _, err := os.Stat(marker); os.IsNotExist(err) && !*noDemo {
		res, err := loadDemo(ctx, demo.Options{End: time.Now()}, demo.Sender{URL: base, APIKey: key},
			filepath.Join(*dataDir, "demo-incidents.json"))
		if err != nil {
			return err
		}
		if err := os.WriteFile(marker, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "Demo data: %d spans, %d LLM calls, %d labelled incidents (%s)\n",
			res.Spans, res.LLMCalls, len(res.Incidents), filepath.Join(*dataDir, "demo-incidents.json"))
	}
	// Analysis starts once the demo day is in: it would otherwise compete with the load for SQLite's
	// single writer and judge a day that is still arriving.
	go engine.Run(ctx) //nolint:errcheck // returns only when ctx ends
	printConnectionHelp(os.Stdout, base, grpcBase, key)
	err = <-errc
	<-grpcStopped
	return err
}

func printConnectionHelp(w io.Writer, base, grpcBase, key string) {
	mcpURL := base + "/mcp"
	grpcLine := "  OTLP/gRPC is off (--grpc-addr '')."
	if grpcBase != "" {
		grpcLine = fmt.Sprintf("  OTLP/gRPC:  OTEL_EXPORTER_OTLP_ENDPOINT=%s OTEL_EXPORTER_OTLP_PROTOCOL=grpc", grpcBase)
	}
	fmt.Fprintf(w, `
TraceKit is running.
MCP URL: %[1]s
API key: %[2]s

Connect an assistant (it signs in through your browser: paste the API key on the TraceKit page):
  Claude Code:  claude mcp add --transport http tracekit %[1]s
  Cursor (~/.cursor/mcp.json), Windsurf, Cline and other JSON configs:
    {"mcpServers": {"tracekit": {"url": "%[1]s"}}}
  Claude (Settings > Connectors > Add custom connector): the MCP URL.
  Headless agents and scripts can skip the browser with the header "Authorization: Bearer <API key>".

More API keys (chosen scopes and tool groups, an expiry) and revoking them: the API keys page,
  %[3]s/keys (sign in with the API key above); what was done there: tracekit audit

Send OpenTelemetry traces with the API key:
  OTLP/HTTP:  OTEL_EXPORTER_OTLP_ENDPOINT=%[3]s OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf   (or http/json)
%[4]s
  OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer %[2]s"

Press Ctrl+C to stop. State lives in the data directory; delete it to start over.
`, mcpURL, key, base, grpcLine)
}
