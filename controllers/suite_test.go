package controllers

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dexapi "github.com/dexidp/dex/api/v2"
	dexserver "github.com/dexidp/dex/server"
	dexmemory "github.com/dexidp/dex/storage/memory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/clustertest"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// The suite runs the real thing, once per package: envtest's kube-apiserver and etcd (built by
// `make envtest-assets`) with the Gateway API's HTTPRoute CRD (`make chart-test-crds`), Dex's own
// gRPC API over its memory storage, and the operator's manager. Each test brings its own namespace
// and PostgreSQL database. Missing binaries, CRDs or PostgreSQL fail the suite; nothing is skipped.
var (
	k8s        client.Client // uncached, as a user's kubectl would see the cluster
	dex        dexapi.DexClient
	reconciler *TenantReconciler
	testScheme = runtime.NewScheme()

	// managerCache reads as the reconciler does, from the manager's cache.
	managerCache client.Reader

	// What the manager's reconciler writes, to the API server (events included) and to Dex.
	managerWrites = &countingClient{}
	managerEvents = &countingRecorder{}
	managerOAuth  = &countingOAuth{}
)

const (
	testImage  = "ghcr.io/tracekit/tracekit:test"
	testIssuer = "https://auth.tracekit.example.com/dex"
)

var tracekitCRDs = filepath.Join("..", "config", "crd", "bases")

func TestMain(m *testing.M) {
	os.Exit(runSuite(m))
}

func runSuite(m *testing.M) int {
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))
	if v := os.Getenv("TRACEKIT_TEST_LOG"); v != "" {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	}
	cfg, stopAPIServer, err := startAPIServer()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopAPIServer()
	if k8s, err = client.New(cfg, client.Options{Scheme: testScheme}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	dexAddr, stopDex, err := startDex()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopDex()
	conn, err := grpc.NewClient(dexAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer conn.Close()
	dex = dexapi.NewDexClient(conn)
	dbs := NewDatabases()
	defer dbs.Close()
	stopManager, err := startManager(cfg, conn, dbs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer stopManager()
	return m.Run()
}

// startAPIServer starts envtest with the TraceKit and HTTPRoute CRDs loaded.
func startAPIServer() (*rest.Config, func(), error) {
	// Like kubebuilder's scaffold: $KUBEBUILDER_ASSETS, else what `make envtest-assets` built in bin/k8s.
	if _, err := clustertest.Assets(); err != nil {
		return nil, nil, err
	}
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, tracekitv1alpha1.AddToScheme, gatewayv1.Install} {
		if err := add(testScheme); err != nil {
			panic(err)
		}
	}
	thirdParty := os.Getenv("CHART_TEST_CRDS")
	if thirdParty == "" {
		thirdParty = filepath.Join("..", "bin", "chart-test-crds")
	}
	httpRouteCRD := filepath.Join(thirdParty, "gateway.networking.k8s.io_httproutes.yaml")
	if _, err := os.Stat(httpRouteCRD); err != nil {
		return nil, nil, fmt.Errorf("the Gateway API's HTTPRoute CRD is missing (%v): run `make chart-test-crds`", err)
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{tracekitCRDs, httpRouteCRD},
		ErrorIfCRDPathMissing: true,
		Scheme:                testScheme,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, fmt.Errorf("start envtest (KUBEBUILDER_ASSETS=%s): %v", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	stop := func() { _ = env.Stop() }
	if gatewayAPI, err := GatewayAPIInstalled(cfg); err != nil || !gatewayAPI {
		stop()
		return nil, nil, fmt.Errorf("the API server does not serve HTTPRoutes after loading %s (%v)", httpRouteCRD, err)
	}
	return cfg, stop, nil
}

// startManager runs the tenant reconciler (through the counting and failure-injecting clients the
// tests read) and a fake Deployment controller until the returned stop is called.
func startManager(cfg *rest.Config, dexConn *grpc.ClientConn, dbs *Databases) (stop func(), err error) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Cache:                  CacheOptions(true),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	if err != nil {
		return nil, err
	}
	opts := Options{ServerImage: testImage, TenantURL: "https://tracekit.example.com/t/{tenant}", AuthIssuer: testIssuer, GatewayAPI: true}
	// Tests need outages noticed and retried within their patience; benchmarks measure the
	// production defaults (5 minute recheck and backoff cap).
	if flag.Lookup("test.bench").Value.String() == "" {
		opts.Recheck, opts.MaxBackoff = time.Second, 2*time.Second
	}
	managerWrites.Client = mgr.GetClient()
	managerCache = mgr.GetClient()
	managerEvents.EventRecorder = mgr.GetEventRecorder("tracekit-operator")
	managerOAuth.OAuthClients = NewDexClients(dexConn)
	reconciler = &TenantReconciler{
		Client:    managerWrites,
		Scheme:    mgr.GetScheme(),
		Recorder:  managerEvents,
		OAuth:     managerOAuth,
		Databases: dbs,
		Options:   opts,
	}
	if err := reconciler.SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := (&DatabaseReconciler{Client: mgr.GetClient(), Databases: dbs, Recheck: opts.Recheck}).SetupWithManager(mgr); err != nil {
		return nil, err
	}
	if err := ctrl.NewControllerManagedBy(mgr).Named("fake-deployment-controller").For(&appsv1.Deployment{}).
		Complete(&fakeDeploymentController{mgr.GetClient()}); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := mgr.Start(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "manager:", err)
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// startDex serves Dex's gRPC API (the same code a Dex deployment runs) over its memory storage on a
// loopback port.
func startDex() (addr string, stop func(), err error) {
	logger := slog.New(slog.DiscardHandler)
	srv := grpc.NewServer()
	dexapi.RegisterDexServer(srv, dexserver.NewAPI(dexmemory.New(logger), logger, "test"))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go srv.Serve(lis)
	return lis.Addr().String(), srv.Stop, nil
}

// fakeDeploymentController stands in for kube-controller-manager and kubelets, which envtest does
// not run: it reports every replica of a Deployment available.
type fakeDeploymentController struct{ client.Client }

func (f *fakeDeploymentController) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &appsv1.Deployment{}
	if err := f.Get(ctx, req.NamespacedName, d); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	n := int32(1)
	if d.Spec.Replicas != nil {
		n = *d.Spec.Replicas
	}
	s := d.Status
	if s.ObservedGeneration == d.Generation && s.AvailableReplicas == n && s.Replicas == n {
		return ctrl.Result{}, nil
	}
	d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	return ctrl.Result{}, client.IgnoreNotFound(f.Status().Update(ctx, d))
}

// newNamespace creates a namespace for one test. envtest runs no namespace controller, so it is
// never really deleted; names are unique instead.
func newNamespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tk-test-"}}
	if err := k8s.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// newAdminSecret creates a fresh PostgreSQL database and a Secret with its admin URL; it returns the
// URL.
func newAdminSecret(t testing.TB, ns, name string) string {
	t.Helper()
	dsn := storetest.PostgresDSN(t)
	createSecret(t, ns, name, map[string]string{"url": dsn})
	return dsn
}

func createSecret(t testing.TB, ns, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	if err := k8s.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
}

var tenantSeq atomic.Int64

// uniqueName returns a tenant name not used by any other test: Dex and the name check are shared.
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, os.Getpid()%10000, tenantSeq.Add(1))
}

// countingClient counts the write requests a reconciler makes.
type countingClient struct {
	client.Client
	writes atomic.Int64
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	c.writes.Add(1)
	return c.Client.Update(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

func (c *countingClient) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.ApplyOption) error {
	c.writes.Add(1)
	return c.Client.Apply(ctx, obj, opts...)
}

func (c *countingClient) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	c.writes.Add(1)
	return c.Client.Delete(ctx, obj, opts...)
}

func (c *countingClient) DeleteAllOf(ctx context.Context, obj client.Object, opts ...client.DeleteAllOfOption) error {
	c.writes.Add(1)
	return c.Client.DeleteAllOf(ctx, obj, opts...)
}

func (c *countingClient) Status() client.SubResourceWriter {
	return &countingStatus{SubResourceWriter: c.Client.Status(), writes: &c.writes}
}

type countingStatus struct {
	client.SubResourceWriter
	writes *atomic.Int64
}

func (s *countingStatus) Create(ctx context.Context, obj, sub client.Object, opts ...client.SubResourceCreateOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Create(ctx, obj, sub, opts...)
}

func (s *countingStatus) Update(ctx context.Context, obj client.Object, opts ...client.SubResourceUpdateOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Update(ctx, obj, opts...)
}

func (s *countingStatus) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Patch(ctx, obj, patch, opts...)
}

func (s *countingStatus) Apply(ctx context.Context, obj runtime.ApplyConfiguration, opts ...client.SubResourceApplyOption) error {
	s.writes.Add(1)
	return s.SubResourceWriter.Apply(ctx, obj, opts...)
}

// countingRecorder counts events, which are writes too.
type countingRecorder struct {
	events.EventRecorder
	n atomic.Int64
}

func (r *countingRecorder) Eventf(regarding, related runtime.Object, eventtype, reason, action, note string, args ...any) {
	r.n.Add(1)
	r.EventRecorder.Eventf(regarding, related, eventtype, reason, action, note, args...)
}

// countingOAuth counts calls that change Dex.
type countingOAuth struct {
	OAuthClients
	writes atomic.Int64
}

func (o *countingOAuth) Ensure(ctx context.Context, c OAuthClient) (bool, error) {
	changed, err := o.OAuthClients.Ensure(ctx, c)
	if changed {
		o.writes.Add(1)
	}
	return changed, err
}

func (o *countingOAuth) Delete(ctx context.Context, id string) error {
	o.writes.Add(1)
	return o.OAuthClients.Delete(ctx, id)
}
