// Package dexauth embeds Dex as TraceKit's authorization server: Dex signs users in with TraceKit's
// API-key connector and issues the tokens; this package adds the connector, TraceKit's sign-in pages,
// the guard against wrong-key brute force, and the client API tenant servers register MCP clients
// through (see server/oauth for the facade in front of it, docs/auth.md for the flow).
package dexauth

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	gosundheit "github.com/AppsFlyer/go-sundheit"
	"github.com/dexidp/dex/api/v2"
	"github.com/dexidp/dex/server"
	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

//go:embed web
var webFS embed.FS

// Config is what the authorization server needs.
type Config struct {
	// Issuer is the external URL Dex is served at; its path is where the handler must be mounted.
	Issuer string
	// Storage is Dex's storage (see OpenStorage).
	Storage storage.Storage
	// DB holds the tenants' hashed API keys the connector checks.
	DB     *store.DB
	Logger *slog.Logger
	// AccessTokenTTL is how long an access token is valid, hence how long a revoked key's token
	// lingers; zero means 15 minutes. Refresh tokens stop working at once.
	AccessTokenTTL time.Duration
	// MaxClientsPerTenant caps registered MCP clients per tenant; zero means 500.
	MaxClientsPerTenant int
	// WrongKeysPerIP and WrongKeysPerKey throttle the API-key page; nil means 10 wrong keys then one
	// a minute per IP, and 20 then one a minute per key prefix.
	WrongKeysPerIP, WrongKeysPerKey *oauth.KeyedLimiter
	// RefreshReuseInterval is how long after a refresh the same refresh token may be presented again
	// and get the same answer, without asking the connector: concurrent requests of one client then
	// do not end its grant. Zero means 3 seconds.
	RefreshReuseInterval time.Duration
	// Now is Dex's clock; nil means time.Now.
	Now func() time.Time
	// Providers are the company identity providers and whether the API-key form is offered; the
	// zero value offers the API-key form only.
	Providers Providers
}

// Server is Dex with TraceKit's additions.
type Server struct {
	storage    storage.Storage
	issuerPath string
	logger     *slog.Logger
	max        int
	now        func() time.Time
	handler    http.Handler
}

// New starts Dex (its key rotation and garbage collection, and the removal of expired sign-ins, run
// until ctx ends).
func New(ctx context.Context, cfg Config) (*Server, error) {
	u, err := url.Parse(cfg.Issuer)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return nil, fmt.Errorf("issuer %q: want an absolute http(s) URL", cfg.Issuer)
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AccessTokenTTL == 0 {
		cfg.AccessTokenTTL = 15 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxClientsPerTenant == 0 {
		cfg.MaxClientsPerTenant = 500
	}
	if cfg.WrongKeysPerIP == nil {
		cfg.WrongKeysPerIP = &oauth.KeyedLimiter{Every: time.Minute, Burst: 10}
	}
	if cfg.WrongKeysPerKey == nil {
		cfg.WrongKeysPerKey = &oauth.KeyedLimiter{Every: time.Minute, Burst: 20}
	}
	databases.Store(cfg.Issuer, cfg.DB)

	connectors, err := cfg.Providers.connectors(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if err := ensureConnectors(ctx, cfg.Storage, connectors); err != nil {
		return nil, err
	}
	// Rotate refresh tokens on every use (public clients hold them); a month unused or three months
	// old ends the grant. The guard applies the same policy before Dex (see refresh.go).
	if cfg.RefreshReuseInterval == 0 {
		cfg.RefreshReuseInterval = 3 * time.Second
	}
	// The second argument disables rotation (Dex's disableRotation).
	refresh, err := server.NewRefreshTokenPolicy(cfg.Logger, false, grantIdle.String(), grantLifetime.String(), cfg.RefreshReuseInterval.String())
	if err != nil {
		return nil, err
	}
	web, err := fs.Sub(webFS, "web")
	if err != nil {
		return nil, err
	}
	dex, err := server.NewServer(ctx, server.Config{
		Issuer:               cfg.Issuer,
		Storage:              cfg.Storage,
		AllowedGrantTypes:    []string{"authorization_code", "refresh_token"},
		SkipApprovalScreen:   true, // entering the key is the consent
		IDTokensValidFor:     cfg.AccessTokenTTL,
		AuthRequestsValidFor: time.Hour,
		RefreshTokenPolicy:   refresh,
		Now:                  cfg.Now,
		Logger:               cfg.Logger,
		HealthChecker:        gosundheit.New(),
		Web: server.WebConfig{
			WebFS:   web,
			Issuer:  "TraceKit",
			Theme:   "tracekit",
			LogoURL: "theme/logo.svg",
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start Dex: %w", err)
	}
	s := &Server{storage: cfg.Storage, issuerPath: strings.TrimSuffix(u.Path, "/"), logger: cfg.Logger, max: cfg.MaxClientsPerTenant, now: cfg.Now}
	mux := http.NewServeMux()
	mux.HandleFunc(s.issuerPath+oauth.ClientAPIPath, s.clientAPI)
	mux.HandleFunc(s.issuerPath+oauth.ClientAPIPath+"/", s.clientAPI)
	mux.Handle("/", &guard{storage: cfg.Storage, issuerPath: s.issuerPath, issuerOrigin: u.Scheme + "://" + u.Host,
		perIP: cfg.WrongKeysPerIP, perKey: cfg.WrongKeysPerKey, refresh: refresh, reuse: cfg.RefreshReuseInterval, codes: &spentCodes{}, logger: cfg.Logger, next: dex})
	s.handler = mux
	go s.collectGrants(ctx)
	return s, nil
}

// Handler serves Dex and the client API; mount it at the root of the issuer's host (Dex routes by
// the issuer's full path).
func (s *Server) Handler() http.Handler { return s.handler }

// API is Dex's gRPC API on the same storage, for the operator.
func (s *Server) API() api.DexServer { return server.NewAPI(s.storage, s.logger, "tracekit") }

// Registrar registers MCP clients for the tenant whose Dex client is tenantClient.
func (s *Server) Registrar(tenantClient string) oauth.Registrar {
	return &tenantClients{s: s.storage, tenantClient: tenantClient, max: s.max, now: s.now}
}

// EnsureTenantClient creates or updates tenant's confidential client, as the operator does in a
// cluster; dev mode and tests use it.
func (s *Server) EnsureTenantClient(ctx context.Context, tenant, secret string, redirectURIs []string) error {
	id := TenantClientID(tenant)
	err := s.storage.UpdateClient(id, func(old storage.Client) (storage.Client, error) {
		old.Secret, old.RedirectURIs, old.Public = secret, redirectURIs, false
		return old, nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		err = s.storage.CreateClient(ctx, storage.Client{ID: id, Secret: secret, RedirectURIs: redirectURIs, Name: "TraceKit " + tenant})
	}
	if err != nil {
		return fmt.Errorf("ensure Dex client %s: %w", id, err)
	}
	return nil
}

func nextVersion(v string) string {
	var n int
	fmt.Sscan(v, &n)
	return fmt.Sprint(n + 1)
}
