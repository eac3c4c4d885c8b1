package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/controllers"
)

func runManager(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address of the /healthz and /readyz probes")
	leaderElect := fs.Bool("leader-elect", true, "elect a leader, so only one of several manager replicas reconciles")
	leaderNamespace := fs.String("leader-election-namespace", "", "namespace of the leader-election Lease (default: the manager's own namespace in a cluster)")
	dexAddr := fs.String("dex-grpc-addr", os.Getenv("TRACEKIT_DEX_GRPC_ADDR"), "host:port of Dex's gRPC API (tracekit auth --grpc-addr), where tenants' OAuth clients are managed ($TRACEKIT_DEX_GRPC_ADDR)")
	dexCA := fs.String("dex-grpc-ca", "", "PEM file of the CA that signed Dex's gRPC certificate; empty connects without TLS (inside the cluster network only)")
	dexCert := fs.String("dex-grpc-cert", "", "PEM client certificate for Dex's gRPC API, when it requires mutual TLS")
	dexKey := fs.String("dex-grpc-key", "", "PEM key of --dex-grpc-cert")
	image := fs.String("server-image", "ghcr.io/tracekit/tracekit:latest", "image that runs 'tracekit server' for tenants without spec.image; pin a version or digest in production")
	tenantURL := fs.String("tenant-url", os.Getenv("TRACEKIT_TENANT_URL"), "template of tenant URLs, {tenant} standing for the tenant's name: https://{tenant}.tracekit.example.com (host-based) or https://tracekit.example.com/t/{tenant} (path-based); tenants may override host and path ($TRACEKIT_TENANT_URL)")
	issuer := fs.String("auth-issuer", os.Getenv("TRACEKIT_AUTH_ISSUER"), "Dex's issuer URL, given to tenant servers to verify tokens ($TRACEKIT_AUTH_ISSUER)")
	gateway := fs.String("gateway", "", "default Gateway for tenants' HTTPRoutes, as NAMESPACE/NAME or NAMESPACE/NAME/LISTENER: tenants that set neither spec.url.gatewayRef nor an Ingress field (ingressClassName, tlsSecretName) get an HTTPRoute attached to it instead of an Ingress; empty gives them an Ingress")
	workers := fs.Int("max-concurrent-reconciles", 16, "tenants reconciled at once; reconciles mostly wait on the API server, PostgreSQL and Dex")
	recheck := fs.Duration("recheck", 5*time.Minute, "how often a Ready tenant's database and Dex client, and every TraceKitDatabase, are checked again (reads only)")
	debug := fs.Bool("debug", false, "human-readable debug logs instead of JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dexAddr == "" {
		return errors.New("--dex-grpc-addr (or $TRACEKIT_DEX_GRPC_ADDR) is required: tenants' OAuth clients are created through Dex's gRPC API")
	}
	defaultGateway, err := controllers.ParseGateway(*gateway)
	if err != nil {
		return err
	}
	ctrl.SetLogger(zap.New(zap.UseDevMode(*debug)))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := tracekitv1alpha1.AddToScheme(scheme); err != nil {
		return err
	}
	if err := gatewayv1.Install(scheme); err != nil {
		return err
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("find the Kubernetes API (in-cluster config or $KUBECONFIG): %w", err)
	}
	gatewayAPI, err := controllers.GatewayAPIInstalled(cfg)
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                        scheme,
		Cache:                         controllers.CacheOptions(gatewayAPI),
		Metrics:                       metricsserver.Options{BindAddress: *metricsAddr},
		HealthProbeBindAddress:        *probeAddr,
		LeaderElection:                *leaderElect,
		LeaderElectionID:              "tracekit-operator.tracekit.dev",
		LeaderElectionNamespace:       *leaderNamespace,
		LeaderElectionReleaseOnCancel: true,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}

	creds, err := dexCredentials(*dexCA, *dexCert, *dexKey)
	if err != nil {
		return err
	}
	conn, err := grpc.NewClient(*dexAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return fmt.Errorf("the Dex gRPC API at %s: %w", *dexAddr, err)
	}
	defer conn.Close()
	dbs := controllers.NewDatabases()
	defer dbs.Close()

	r := &controllers.TenantReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("tracekit-operator"),
		OAuth:     controllers.NewDexClients(conn),
		Databases: dbs,
		Options: controllers.Options{
			ServerImage:             *image,
			TenantURL:               *tenantURL,
			AuthIssuer:              *issuer,
			Recheck:                 *recheck,
			MaxConcurrentReconciles: *workers,
			Gateway:                 defaultGateway,
			GatewayAPI:              gatewayAPI,
		},
	}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the TraceKitTenant controller: %w", err)
	}
	if err := (&controllers.DatabaseReconciler{Client: mgr.GetClient(), Databases: dbs, Recheck: *recheck}).SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the TraceKitDatabase controller: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("manager").Info("starting", "dex", *dexAddr, "tenantURL", *tenantURL, "serverImage", *image, "leaderElection", *leaderElect,
		"gatewayAPI", gatewayAPI, "gateway", *gateway)
	return mgr.Start(ctx)
}

// dexCredentials is TLS (mutual when a client certificate is given) when a CA is given, else none.
func dexCredentials(caFile, certFile, keyFile string) (credentials.TransportCredentials, error) {
	if caFile == "" {
		if certFile != "" {
			return nil, errors.New("--dex-grpc-cert needs --dex-grpc-ca")
		}
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("--dex-grpc-ca %s: no PEM certificate found", caFile)
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("--dex-grpc-cert/--dex-grpc-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return credentials.NewTLS(cfg), nil
}
