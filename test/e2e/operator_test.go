// Package e2e runs the platform's binaries together: envtest's kube-apiserver, `tracekit auth`,
// `tracekit manager` with the RBAC of config/, and `tracekit server` started with exactly what the
// controller wrote into each tenant's Deployment.
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var repoRoot = filepath.Join("..", "..")

// Two tenants are applied; each one's server, started from its Deployment, serves its own data to its
// own API key and refuses the other tenant's key.
func TestOperator_TenantServersRunWithWhatTheControllerWrote(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make envtest-assets` and set it to bin/k8s/<version>")
	}
	ctx := t.Context()
	dir := t.TempDir()
	tracekit := buildTracekit(t, dir)
	k8s, adminKubeconfig, managerKubeconfig := startCluster(t, dir)

	// The operator's install, as a user applies it: CRD, RBAC, namespace (the manager Deployment in
	// it never runs here; the manager runs below as its ServiceAccount).
	kubectl(t, assets, adminKubeconfig, "apply", "-k", filepath.Join(repoRoot, "config", "default"))

	dsn := storetest.PostgresDSN(t)
	authHTTP, authGRPC, ingress := freePort(t), freePort(t), freePort(t)
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", authHTTP)
	start(t, dir, "auth", tracekit, nil, "auth", "--addr", fmt.Sprintf("127.0.0.1:%d", authHTTP),
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", authGRPC), "--issuer", issuer, "--database-url", dsn, "--storage", "memory")
	probes := freePort(t)
	start(t, dir, "manager", tracekit, []string{"KUBECONFIG=" + managerKubeconfig}, "manager",
		"--dex-grpc-addr", fmt.Sprintf("127.0.0.1:%d", authGRPC), "--auth-issuer", issuer,
		"--tenant-url", fmt.Sprintf("http://{tenant}.e2e.test:%d", ingress), "--server-image", "tracekit:e2e",
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probes),
		"--leader-election-namespace", "tracekit-system")
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", probes))

	ns := "team"
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform-db"},
		StringData: map[string]string{"url": dsn}}))
	keys := map[string]string{
		"acme": "tk_acme0123456789abcdefghijklmnopqrstuvwxyzAB",
		"beta": "tk_beta0123456789abcdefghijklmnopqrstuvwxyzAB",
	}
	routes := map[string]string{} // Host → the tenant server's address, as the Ingress would route
	for name, key := range keys {
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-keys"},
			StringData: map[string]string{"e2e": key}}))
		must(t, k8s.Create(ctx, &tracekitv1alpha1.TraceKitTenant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: tracekitv1alpha1.TraceKitTenantSpec{
				DisplayName: "Team " + name,
				Database:    tracekitv1alpha1.TenantDatabase{AdminSecretRef: tracekitv1alpha1.SecretKeyRef{Name: "platform-db"}},
				APIKeys:     &tracekitv1alpha1.APIKeyBootstrap{SecretName: name + "-keys"},
				AlertRules: []tracekitv1alpha1.AlertRule{{Name: "errors", Service: "checkout", Metric: tracekitv1alpha1.MetricErrorRate,
					Comparison: "gt", Threshold: "0.05"}},
			},
		}))
	}
	for name := range keys {
		dep := waitDeployment(t, k8s, ns, "tracekit-"+name)
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		runPod(t, k8s, dir, tracekit, dep, addr)
		routes[fmt.Sprintf("%s.e2e.test:%d", name, ingress)] = addr
		markAvailable(t, k8s, dep)
	}
	startIngress(t, ingress, routes)
	for name := range keys {
		waitReady(t, k8s, ns, name)
	}

	acme := fmt.Sprintf("http://acme.e2e.test:%d", ingress)
	seedSpan(t, dsn, "acme", "checkout")
	services := listServices(t, acme, keys["acme"])
	if !strings.Contains(services, "checkout") {
		t.Errorf("acme's list_services does not show the span acme sent: %s", services)
	}
	if got := listServices(t, fmt.Sprintf("http://beta.e2e.test:%d", ingress), keys["beta"]); strings.Contains(got, "checkout") {
		t.Errorf("beta sees acme's service: %s", got)
	}
	if status := initialize(t, acme, keys["beta"]); status != http.StatusUnauthorized {
		t.Errorf("beta's key at acme's server: status %d, want 401", status)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func buildTracekit(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tracekit")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracekit")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tracekit: %v\n%s", err, out)
	}
	return bin
}

// startCluster starts envtest and writes two kubeconfigs: an administrator's, and one that
// impersonates the operator's ServiceAccount so the manager runs with config/rbac's permissions only.
func startCluster(t *testing.T, dir string) (client.Client, string, string) {
	t.Helper()
	env := &envtest.Environment{}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest: %v", err)
	}
	t.Cleanup(func() { env.Stop() })
	user, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, cfg)
	must(t, err)
	kc, err := user.KubeConfig()
	must(t, err)
	admin := filepath.Join(dir, "admin.kubeconfig")
	must(t, os.WriteFile(admin, kc, 0o600))
	parsed, err := clientcmd.Load(kc)
	must(t, err)
	for _, a := range parsed.AuthInfos {
		a.Impersonate = "system:serviceaccount:tracekit-system:tracekit-manager"
	}
	manager := filepath.Join(dir, "manager.kubeconfig")
	must(t, clientcmd.WriteToFile(*parsed, manager))

	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, tracekitv1alpha1.AddToScheme(scheme))
	c, err := client.New(user.Config(), client.Options{Scheme: scheme})
	must(t, err)
	return c, admin, manager
}

func kubectl(t *testing.T, assets, kubeconfig string, args ...string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
}

// start runs a process until the test ends; its output goes to a log file shown when the test fails.
func start(t *testing.T, dir, name, bin string, env []string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	must(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	must(t, cmd.Start())
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("--- %s log ---\n%s", name, tail(string(b), 4000))
		}
	})
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// poll calls fn until it returns nil or the deadline passes.
func poll(t *testing.T, what string, timeout time.Duration, fn func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := fn()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		<-tick.C
	}
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	poll(t, "GET "+u, time.Minute, func() error {
		res, err := http.Get(u)
		if err != nil {
			return err
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", res.StatusCode)
		}
		return nil
	})
}

func waitDeployment(t *testing.T, k8s client.Client, ns, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	poll(t, "Deployment "+name, time.Minute, func() error {
		return k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, dep)
	})
	return dep
}

func waitReady(t *testing.T, k8s client.Client, ns, name string) {
	t.Helper()
	poll(t, "tenant "+name+" Ready", time.Minute, func() error {
		tt := &tracekitv1alpha1.TraceKitTenant{}
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, tt); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %+v", tt.Status.Conditions)
		}
		return nil
	})
}

// runPod does what a kubelet would with the Deployment's pod template: the container's args and
// environment as written, Secret references resolved, ConfigMap volumes materialised in a directory
// standing in for their mount path. Only the listen address changes, since pods have their own
// network namespaces and these processes share one.
func runPod(t *testing.T, k8s client.Client, dir, bin string, dep *appsv1.Deployment, addr string) {
	t.Helper()
	ctx := t.Context()
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	mounts := map[string]string{} // mount path → local directory
	for _, vm := range c.VolumeMounts {
		local := filepath.Join(dir, dep.Name, vm.Name)
		must(t, os.MkdirAll(local, 0o755))
		mounts[vm.MountPath] = local
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.ConfigMap == nil {
				continue
			}
			cm := &corev1.ConfigMap{}
			must(t, k8s.Get(ctx, types.NamespacedName{Namespace: dep.Namespace, Name: v.ConfigMap.Name}, cm))
			for k, data := range cm.Data {
				must(t, os.WriteFile(filepath.Join(local, k), []byte(data), 0o644))
			}
		}
	}
	var env []string
	for _, e := range c.Env {
		value := e.Value
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil {
			s := &corev1.Secret{}
			must(t, k8s.Get(ctx, types.NamespacedName{Namespace: dep.Namespace, Name: ref.SecretKeyRef.Name}, s))
			value = string(s.Data[ref.SecretKeyRef.Key])
		}
		for mountPath, local := range mounts {
			if strings.HasPrefix(value, mountPath+"/") {
				value = local + strings.TrimPrefix(value, mountPath)
			}
		}
		env = append(env, e.Name+"="+value)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		if strings.HasPrefix(a, "--addr=") {
			a = "--addr=" + addr
		}
		args[i] = a
	}
	start(t, dir, dep.Name, bin, env, args...)
	for _, probe := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		waitHTTP(t, "http://"+addr+probe.HTTPGet.Path)
	}
}

// markAvailable reports the Deployment's pods available once its process answers its probes, as the
// Deployment controller would.
func markAvailable(t *testing.T, k8s client.Client, dep *appsv1.Deployment) {
	t.Helper()
	poll(t, "mark "+dep.Name+" available", time.Minute, func() error {
		d := &appsv1.Deployment{}
		if err := k8s.Get(t.Context(), client.ObjectKeyFromObject(dep), d); err != nil {
			return err
		}
		n := *d.Spec.Replicas
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: n, ReadyReplicas: n, AvailableReplicas: n, UpdatedReplicas: n}
		return k8s.Status().Update(t.Context(), d)
	})
}

// startIngress routes by Host header to the tenants' servers, passing the request on unchanged.
func startIngress(t *testing.T, port int, routes map[string]string) {
	t.Helper()
	proxy := &httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme = "http"
		r.Out.URL.Host = routes[r.In.Host]
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must(t, err)
	srv := &http.Server{Handler: proxy, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// viaIngress is an HTTP client that reaches every *.e2e.test host at the local ingress, as DNS
// would, and sends an API key.
func viaIngress(key string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 30 * time.Second, Transport: &keyTransport{key: key, base: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, network, "127.0.0.1:"+port)
		},
	}}}
}

type keyTransport struct {
	key  string
	base http.RoundTripper
}

func (k *keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return k.base.RoundTrip(r)
}

// seedSpan stores a span of service for tenant, as its services' traffic would.
func seedSpan(t *testing.T, adminURL, tenant, service string) {
	t.Helper()
	db, err := store.Open(t.Context(), adminURL)
	must(t, err)
	defer db.Close()
	now := time.Now()
	must(t, db.ForTenant(tenant).InsertBatch(t.Context(), store.Batch{Spans: []store.Span{{
		TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Service: service, Operation: "POST /pay",
		Kind: store.KindServer, IsEntry: true, StartNS: now.Add(-time.Second).UnixNano(), DurationNS: int64(time.Second),
	}}}))
}

// listServices calls the list_services tool with the official Go SDK's MCP client.
func listServices(t *testing.T, base, key string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := mcp.NewClient(&mcp.Implementation{Name: "operator-e2e", Version: "1"}, nil)
	cs, err := c.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: viaIngress(key)}, nil)
	if err != nil {
		t.Fatalf("connect to %s/mcp: %v", base, err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{"since": "1h"}})
	if err != nil {
		t.Fatalf("list_services at %s: %v", base, err)
	}
	b, _ := json.Marshal(res)
	return string(b)
}

// initialize sends an MCP initialize with key and returns the HTTP status.
func initialize(t *testing.T, base, key string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	res, err := viaIngress(key).Do(req)
	must(t, err)
	res.Body.Close()
	return res.StatusCode
}
