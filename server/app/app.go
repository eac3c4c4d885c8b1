// Package app assembles a tenant server: one gin engine with health, metrics, OTLP ingest and MCP.
// Each feature package registers its own routes; this file only wires them.
package app

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"

	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/debugger"
	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/mcpserver/ui"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

// Config is what a server needs.
type Config struct {
	DB *store.DB
	// Tenant restricts the server to one tenant (a tenant pod); empty serves every tenant whose key
	// is presented (dev mode).
	Tenant string
	// PublicURL is the externally visible base URL (scheme, host, optional path prefix), from which
	// every advertised URL is built.
	PublicURL string
	// AllowedOrigins are browser origins allowed to call /mcp besides PublicURL's own and loopback ones.
	AllowedOrigins []string
	Logger         *slog.Logger
	// Auth authenticates callers; nil means API keys of DB (restricted to Tenant when set).
	Auth auth.Authenticator
	// Registry receives the server's Prometheus metrics; nil means a new registry.
	Registry *prometheus.Registry
	// OAuth, when set, is the authorization server MCP clients sign in through (server/oauth); its
	// access tokens are accepted besides API keys, and browsers sign in to the /ui pages through it.
	OAuth *oauth.Facade
	// WebClientID is the /ui pages' OAuth client_id, a metadata document URL; empty means the
	// document they serve themselves, <public URL>/ui/oauth-client.json (https public URLs).
	WebClientID string
	// Prices is the LLM price table (tracekit server --prices); nil means the built-in one.
	Prices *genai.PriceTable
}

// New returns the server's HTTP handler.
func New(cfg Config) http.Handler {
	h, _ := build(cfg, false)
	return h
}

// NewWithGRPC also returns a gRPC server for OTLP/gRPC in front of the same ingest core as
// POST /v1/traces (one set of write slots and limits for both); the caller serves it on its own port.
func NewWithGRPC(cfg Config) (http.Handler, *grpc.Server) {
	return build(cfg, true)
}

func build(cfg Config, withGRPC bool) (http.Handler, *grpc.Server) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Auth == nil {
		cfg.Auth = &auth.APIKeys{DB: cfg.DB, Tenant: cfg.Tenant, KeysPage: strings.TrimRight(cfg.PublicURL, "/") + "/keys"}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery())
	if cfg.OAuth != nil {
		cfg.Auth = auth.Chain{cfg.Auth, cfg.OAuth.Tokens()}
		cfg.OAuth.Register(r)
	}

	r.GET("/healthz", func(c *gin.Context) { c.String(http.StatusOK, "ok") })
	r.GET("/readyz", func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := cfg.DB.Ping(ctx); err != nil {
			// The cause names the database's user, name and address: for the log, not the caller.
			cfg.Logger.Warn("not ready: database unavailable", "err", err)
			c.String(http.StatusServiceUnavailable, "database unavailable")
			return
		}
		c.String(http.StatusOK, "ok")
	})
	cfg.Registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tracekit_services_update_failures_total",
		Help: "Ingested batches whose spans were stored but whose services-table update failed (repaired by the next batch)."},
		func() float64 { return float64(cfg.DB.ServicesUpdateFailures()) }))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	in := ingest.Register(r, ingest.Config{DB: cfg.DB, Auth: cfg.Auth, Logger: cfg.Logger, Registry: cfg.Registry, Prices: cfg.Prices})
	var gs *grpc.Server
	if withGRPC {
		gs = in.GRPCServer()
	}
	debugger.Register(r, cfg.DB, cfg.Auth)
	var webOAuth *ui.OAuth
	if cfg.OAuth != nil {
		webOAuth = &ui.OAuth{ClientID: cfg.WebClientID}
	}
	mcpserver.Register(r, mcpserver.Config{DB: cfg.DB, Auth: cfg.Auth, PublicURL: cfg.PublicURL, AllowedOrigins: cfg.AllowedOrigins, Logger: cfg.Logger, Registry: cfg.Registry,
		RCA: mcpserver.RCAFunc(rca.Analyze), WebOAuth: webOAuth})
	return withoutPrefix(publicPath(cfg.PublicURL), r), gs
}

// publicPath is the path of a per-team URL such as https://tracekit.example.com/t/acme, or "".
func publicPath(publicURL string) string {
	u, err := url.Parse(publicURL)
	if err != nil {
		return ""
	}
	return strings.TrimRight(u.Path, "/")
}

// withoutPrefix serves h both at the root and under prefix: behind a path-based Ingress requests
// arrive as /t/acme/mcp, while origin-level paths (the RFC 9728/8414 well-known forms) do not.
func withoutPrefix(prefix string, h http.Handler) http.Handler {
	if prefix == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p := r.URL.Path; p == prefix || strings.HasPrefix(p, prefix+"/") {
			r2 := r.Clone(r.Context())
			r2.URL.Path = "/" + strings.TrimLeft(strings.TrimPrefix(p, prefix), "/")
			r2.URL.RawPath = ""
			r = r2
		}
		h.ServeHTTP(w, r)
	})
}
