package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/tracekit/tracekit/server/dexauth"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

// devAuth is the whole sign-in of `tracekit dev` in one process: Dex at <base>/dex, on the same
// listener as the server, with its state in the data directory, and the facade of the dev tenant.
// The tenant's Dex client, which the operator creates in a cluster, is created here.
type devAuth struct {
	facade *oauth.Facade
	dex    http.Handler
}

const devIssuerPath = "/dex"

func startDevAuth(ctx context.Context, db *store.DB, dataDir, base string, logger *slog.Logger) (*devAuth, error) {
	st, err := dexauth.OpenStorage("sqlite:"+filepath.Join(dataDir, "dex.db"), logger)
	if err != nil {
		logger.Warn("sign-ins are kept in memory and lost at exit", "reason", err)
		st, _ = dexauth.OpenStorage("memory", logger)
	}
	issuer := base + devIssuerPath
	srv, err := dexauth.New(ctx, dexauth.Config{Issuer: issuer, Storage: st, DB: db, Logger: logger})
	if err != nil {
		return nil, err
	}
	// A fresh secret each start: it only ties this process's facade to its own Dex.
	secret := rand.Text()
	if err := srv.EnsureTenantClient(ctx, devTenant, secret, []string{base + "/mcp/callback"}); err != nil {
		return nil, err
	}
	clientID := dexauth.TenantClientID(devTenant)
	facade, err := oauth.New(oauth.Config{PublicURL: base, Tenant: devTenant, Issuer: issuer,
		ClientID: clientID, ClientSecret: secret, Registrar: srv.Registrar(clientID), Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("OAuth facade: %w", err)
	}
	return &devAuth{facade: facade, dex: srv.Handler()}, nil
}

// mount serves Dex under its issuer path and everything else from app.
func (d *devAuth) mount(app http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(devIssuerPath+"/", d.dex)
	mux.Handle("/", app)
	return mux
}
