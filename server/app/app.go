// Package app assembles a tenant server: one gin engine with health, metrics, OTLP ingest and MCP.
// Each feature package registers its own routes; this file only wires them.
package app

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/debugger"
	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/mcpserver"
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
	Logger    *slog.Logger
	// Auth authenticates callers; nil means API keys of DB (restricted to Tenant when set).
	Auth auth.Authenticator
	// Registry receives the server's Prometheus metrics; nil means a new registry.
	Registry *prometheus.Registry
	// OAuth, when set, is the authorization server MCP clients sign in through (server/oauth); its
	// access tokens are accepted besides API keys.
	OAuth *oauth.Facade
}

// New returns the server's HTTP handler.
func New(cfg Config) http.Handler {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Auth == nil {
		cfg.Auth = &auth.APIKeys{DB: cfg.DB, Tenant: cfg.Tenant}
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
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
			c.String(http.StatusServiceUnavailable, "database unreachable: %v", err)
			return
		}
		c.String(http.StatusOK, "ok")
	})
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(cfg.Registry, promhttp.HandlerOpts{})))
	ingest.Register(r, ingest.Config{DB: cfg.DB, Auth: cfg.Auth, Logger: cfg.Logger, Registry: cfg.Registry})
	debugger.Register(r, cfg.DB, cfg.Auth)
	mcpserver.Register(r, mcpserver.Config{DB: cfg.DB, Auth: cfg.Auth, PublicURL: cfg.PublicURL, Logger: cfg.Logger, Registry: cfg.Registry,
		RCA: mcpserver.RCAFunc(rca.Analyze)})
	return r
}
