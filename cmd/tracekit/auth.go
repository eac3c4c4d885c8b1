package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"

	"github.com/dexidp/dex/api/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/tracekit/tracekit/server/dexauth"
)

func runAuth(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("auth", flag.ContinueOnError)
	addr := fs.String("addr", envOr("TRACEKIT_AUTH_ADDR", ":5556"), "HTTP listen address: the issuer (sign-in pages, tokens, keys) and the client API tenant servers call ($TRACEKIT_AUTH_ADDR)")
	grpcAddr := fs.String("grpc-addr", envOr("TRACEKIT_AUTH_GRPC_ADDR", ":5557"), "listen address of Dex's gRPC API, through which the operator manages tenants' clients; keep it inside the cluster ($TRACEKIT_AUTH_GRPC_ADDR)")
	issuer := fs.String("issuer", os.Getenv("TRACEKIT_AUTH_ISSUER"), "external issuer URL, e.g. https://auth.tracekit.example.com/dex ($TRACEKIT_AUTH_ISSUER)")
	dbURL := databaseFlag(fs)
	storageURL := fs.String("storage", os.Getenv("TRACEKIT_AUTH_STORAGE"), "Dex's storage: a postgres:// URL, sqlite:<path> or memory ($TRACEKIT_AUTH_STORAGE); default: the database URL when it is PostgreSQL, else memory")
	grpcCert := fs.String("grpc-tls-cert", "", "PEM certificate of the gRPC API; empty serves it without TLS (inside the cluster network only)")
	grpcKey := fs.String("grpc-tls-key", "", "PEM key of --grpc-tls-cert")
	grpcClientCA := fs.String("grpc-client-ca", "", "PEM CA that must have signed the certificates of gRPC clients (mutual TLS); needs --grpc-tls-cert")
	tokenTTL := fs.Duration("access-token-ttl", 0, "access token lifetime, hence how long a revoked key's token lingers (default 15m)")
	maxClients := fs.Int("max-clients-per-tenant", 0, "registered MCP clients per tenant (default 500)")
	providersFile := fs.String("providers", os.Getenv("TRACEKIT_AUTH_PROVIDERS"), "YAML file of company identity providers (OIDC, LDAP) and whether the API-key form is offered; secrets as $VAR or ${file:/path}; see docs/auth.md ($TRACEKIT_AUTH_PROVIDERS); empty: API keys only")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *issuer == "" {
		return errors.New("--issuer (or $TRACEKIT_AUTH_ISSUER) is required: the URL clients and tenant servers reach this server at")
	}
	logger := slog.New(slog.NewJSONHandler(os.Stderr, nil))
	db, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer db.Close()
	if *storageURL == "" {
		*storageURL = "memory"
		if strings.HasPrefix(*dbURL, "postgres") {
			*storageURL = *dbURL
		}
	}
	var providers dexauth.Providers
	if *providersFile != "" {
		if providers, err = dexauth.LoadProviders(*providersFile); err != nil {
			return err
		}
	}
	st, err := dexauth.OpenStorage(*storageURL, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	srv, err := dexauth.New(ctx, dexauth.Config{Issuer: *issuer, Storage: st, DB: db, Logger: logger,
		AccessTokenTTL: *tokenTTL, MaxClientsPerTenant: *maxClients, Providers: providers})
	if err != nil {
		return err
	}

	creds, err := grpcServerCredentials(*grpcCert, *grpcKey, *grpcClientCA)
	if err != nil {
		return err
	}
	gl, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		return fmt.Errorf("listen on %s for the gRPC API: %w", *grpcAddr, err)
	}
	gs := grpc.NewServer(grpc.Creds(creds))
	api.RegisterDexServer(gs, srv.API())
	go func() {
		<-ctx.Done()
		gs.GracefulStop()
	}()
	go func() {
		if err := gs.Serve(gl); err != nil {
			logger.Error("gRPC API stopped", "err", err)
		}
	}()

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", *addr, err)
	}
	logger.Info("serving", "addr", ln.Addr().String(), "grpc_addr", gl.Addr().String(), "issuer", *issuer, "storage", strings.SplitN(*storageURL, ":", 2)[0])
	return serve(ctx, ln, srv.Handler())
}

// grpcServerCredentials is TLS when a certificate is given, mutual when a client CA is too, else none.
func grpcServerCredentials(certFile, keyFile, clientCAFile string) (credentials.TransportCredentials, error) {
	if certFile == "" {
		if clientCAFile != "" {
			return nil, errors.New("--grpc-client-ca needs --grpc-tls-cert")
		}
		return insecure.NewCredentials(), nil
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("--grpc-tls-cert/--grpc-tls-key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCAFile != "" {
		pem, err := os.ReadFile(clientCAFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--grpc-client-ca %s: no PEM certificate found", clientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return credentials.NewTLS(cfg), nil
}
