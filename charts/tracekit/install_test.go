package chart

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dexapi "github.com/dexidp/dex/api/v2"
	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/clustertest"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// cluster is envtest's kube-apiserver and etcd with helm pointed at them.
type cluster struct {
	*clustertest.Cluster
	cfg        *rest.Config
	k8s        client.Client
	kubeconfig string   // cluster admin, for helm and kubectl
	helmEnv    []string // KUBECONFIG=kubeconfig
	kubectlDir string
}

func startCluster(t *testing.T) *cluster {
	t.Helper()
	// HTTPRoute and ServiceMonitor are not in a bare API server; the chart can create them.
	thirdParty := os.Getenv("CHART_TEST_CRDS")
	if thirdParty == "" {
		thirdParty = filepath.Join(repoRoot, "bin", "chart-test-crds")
	}
	if _, err := os.Stat(filepath.Join(thirdParty, ".stamp")); err != nil {
		t.Fatalf("CRDs of the Gateway API and Prometheus Operator not found in %s: run `make chart-test-crds`", thirdParty)
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(io.Discard)))

	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := tracekitv1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	// The TraceKit CRD is not preloaded: helm installs it from the chart's crds/.
	cc := clustertest.Start(t, scheme, thirdParty)
	c := &cluster{Cluster: cc, cfg: cc.Config, k8s: cc.Client, kubectlDir: cc.Assets}
	c.kubeconfig = c.Kubeconfig(t, t.TempDir(), envtest.User{Name: "chart-test-admin", Groups: []string{"system:masters"}}, "")
	c.helmEnv = []string{"KUBECONFIG=" + c.kubeconfig}
	return c
}

func (c *cluster) helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runHelm(t, c.helmEnv, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifestKeys are the objects helm says the release has, as kind/namespace/name.
func (c *cluster) manifestKeys(t *testing.T, release, ns string) []string {
	t.Helper()
	var keys []string
	for _, o := range objects(t, c.helm(t, "get", "manifest", release, "-n", ns)) {
		keys = append(keys, o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName())
	}
	slices.Sort(keys)
	return keys
}

// labelled sweeps every listable resource of the API server for objects carrying the release's
// labels, so objects a release left behind are found whatever their kind.
func (c *cluster) labelled(t *testing.T, release string) []string {
	t.Helper()
	cfg := rest.CopyConfig(c.cfg)
	cfg.WarningHandler = rest.NoWarnings{} // listing deprecated kinds is the point
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	lists, err := dc.ServerPreferredResources()
	if err != nil {
		t.Fatal(err)
	}
	selector := "app.kubernetes.io/managed-by=Helm,app.kubernetes.io/instance=" + release
	var keys []string
	for _, l := range lists {
		gv, err := schema.ParseGroupVersion(l.GroupVersion)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range l.APIResources {
			if strings.Contains(r.Name, "/") || !slices.Contains(r.Verbs, "list") {
				continue
			}
			items, err := dyn.Resource(gv.WithResource(r.Name)).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
			if err != nil {
				t.Fatalf("list %s: %v", r.Name, err)
			}
			for _, o := range items.Items {
				if o.GetLabels()["app.kubernetes.io/instance"] == release {
					keys = append(keys, r.Kind+"/"+o.GetNamespace()+"/"+o.GetName())
				}
			}
		}
	}
	slices.Sort(keys)
	return keys
}

// The chart installs into a real API server with default and production values (so every object
// passes server-side validation, CEL included), upgrades between them without leaving what the new
// values no longer render, keeps the generated database password, and uninstalls without orphans.
func TestInstall_UpgradeAndUninstallLeaveNoOrphans(t *testing.T) {
	c := startCluster(t)
	const release, ns = "eval", "tk-eval"
	ctx := context.Background()

	c.helm(t, "install", release, ".", "-n", ns, "--create-namespace", "-f", "testdata/values/default.yaml")
	installed := c.manifestKeys(t, release, ns)
	if len(installed) == 0 {
		t.Fatal("helm get manifest lists no objects")
	}
	t.Logf("installed %d objects", len(installed))
	if got := c.labelled(t, release); !slices.Equal(got, installed) {
		t.Fatalf("after install the cluster has\n%v\nhelm's manifest has\n%v", got, installed)
	}
	crd := &metav1.PartialObjectMetadata{}
	crd.SetGroupVersionKind(schema.GroupVersionKind{Group: "apiextensions.k8s.io", Version: "v1", Kind: "CustomResourceDefinition"})
	if err := c.k8s.Get(ctx, client.ObjectKey{Name: "tracekittenants.tracekit.dev"}, crd); err != nil {
		t.Fatalf("the chart's CRD was not installed: %v", err)
	}
	password := func() string {
		s := &corev1.Secret{}
		if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "eval-tracekit-database"}, s); err != nil {
			t.Fatal(err)
		}
		return string(s.Data["password"])
	}
	generated := password()

	c.helm(t, "upgrade", release, ".", "-n", ns, "--reuse-values", "--set", "auth.replicas=2")
	if got := password(); got != generated {
		t.Error("helm upgrade generated a new database password: the bundled PostgreSQL would no longer accept it")
	}
	pdb := &metav1.PartialObjectMetadata{}
	pdb.SetGroupVersionKind(schema.GroupVersionKind{Group: "policy", Version: "v1", Kind: "PodDisruptionBudget"})
	if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "eval-tracekit-auth"}, pdb); err != nil {
		t.Errorf("auth.replicas=2 made no PodDisruptionBudget: %v", err)
	}

	// Production values rename everything, drop the bundled PostgreSQL and add the HTTPRoute and the
	// ServiceMonitor: what the old values rendered must be gone.
	c.helm(t, "upgrade", release, ".", "-n", ns, "--reset-values", "-f", "testdata/values/production.yaml")
	upgraded := c.manifestKeys(t, release, ns)
	if got := c.labelled(t, release); !slices.Equal(got, upgraded) {
		t.Fatalf("after upgrade the cluster has\n%v\nhelm's manifest has\n%v", got, upgraded)
	}
	for _, kind := range []string{"HTTPRoute/", "ServiceMonitor/"} {
		if !slices.ContainsFunc(upgraded, func(k string) bool { return strings.HasPrefix(k, kind) }) {
			t.Errorf("production values installed no %s", strings.TrimSuffix(kind, "/"))
		}
	}

	c.helm(t, "uninstall", release, "-n", ns, "--wait")
	if got := c.labelled(t, release); len(got) > 0 {
		t.Errorf("helm uninstall left %v", got)
	}
}

// The path a platform team follows: install, run the NOTES' next step verbatim, and the operator and
// sign-in server, started from exactly what the chart configured, make the tenant Ready; an upgrade
// reaches the tenant; deleting tenants as the NOTES say removes their records; uninstall leaves
// nothing.
func TestInstall_NotesNextStepMakesATenantReady(t *testing.T) {
	tracekit := clustertest.BuildTracekit(t) // meanwhile
	c := startCluster(t)
	const release, ns = "tracekit", "tracekit"
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	dbURL := storetest.PostgresDSN(t)
	if err := c.k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	if err := c.k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform-db"},
		StringData: map[string]string{"url": dbURL}}); err != nil {
		t.Fatal(err)
	}
	c.helm(t, "install", release, ".", "-n", ns, "-f", "testdata/values/default.yaml",
		"--set", "postgresql.enabled=false", "--set", "database.existingSecret.name=platform-db")
	c.ReportDeploymentsAvailable(t, ctx)

	auth := c.RunDeployment(t, ctx, tracekit(), clustertest.Deployment{Namespace: ns, Name: "tracekit-auth", ProbePort: "http"})
	// The operator runs as the chart's ServiceAccount, so the chart's RBAC is what it gets.
	sa := c.Kubeconfig(t, t.TempDir(), envtest.User{Name: "system:serviceaccount:" + ns + ":tracekit-operator",
		Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}, "")
	operatorDeployment := clustertest.Deployment{Namespace: ns, Name: "tracekit-operator", Env: []string{"KUBECONFIG=" + sa},
		ProbePort: "health", Overrides: map[string]string{"--dex-grpc-addr": auth.Addrs["--grpc-addr"]}}
	operator := c.RunDeployment(t, ctx, tracekit(), operatorDeployment)

	notes := c.helm(t, "get", "notes", release, "-n", ns)
	script := nextStep(t, notes)
	c.kubectlScript(t, ctx, script)

	tenant := &tracekitv1alpha1.TraceKitTenant{}
	if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: "my-team"}, tenant); err != nil {
		t.Fatal(err)
	}
	if want := "https://my-team.tracekit.example.com/mcp"; tenant.Status.MCPURL != want {
		t.Errorf("mcpURL = %q, want %q (the chart's operator.tenantURL)", tenant.Status.MCPURL, want)
	}
	c.expectServerImage(t, ctx, ns, "tracekit-my-team", "ghcr.io/tracekit/tracekit:0.1.0")
	conn, err := grpc.NewClient(auth.Addrs["--grpc-addr"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	dex := dexapi.NewDexClient(conn)
	db, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close(ctx)
	role := c.expectProvisioned(t, ctx, dex, db, tenant)

	// An upgrade with other values rolls the operator; the tenant follows its new settings.
	c.helm(t, "upgrade", release, ".", "-n", ns, "--reuse-values",
		"--set", "operator.tenantURL=https://tracekit.example.com/t/{tenant}", "--set", "image.tag=0.1.1")
	operator.Stop(t)
	operator = c.RunDeployment(t, ctx, tracekit(), operatorDeployment)
	clustertest.Eventually(t, "the tenant's URL follows the upgraded operator.tenantURL", time.Minute, func() error {
		if err := c.k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); err != nil {
			return err
		}
		if want := "https://tracekit.example.com/t/my-team/mcp"; tenant.Status.MCPURL != want {
			return fmt.Errorf("mcpURL %q, want %q", tenant.Status.MCPURL, want)
		}
		return nil
	})
	c.expectServerImage(t, ctx, ns, "tracekit-my-team", "ghcr.io/tracekit/tracekit:0.1.1")

	// Before uninstalling, the NOTES say to delete the tenants while the operator runs.
	c.expectDeletedAsNotesSay(t, ctx, notes, tenant, dex, db, role)

	operator.Stop(t)
	auth.Stop(t)
	c.helm(t, "uninstall", release, "-n", ns, "--wait")
	if got := c.labelled(t, release); len(got) > 0 {
		t.Errorf("helm uninstall left %v", got)
	}
}

// expectDeletedAsNotesSay deletes the tenant with the NOTES' command and checks that its records
// outside the cluster went with it: OAuth client and database role.
func (c *cluster) expectDeletedAsNotesSay(t *testing.T, ctx context.Context, notes string, tenant *tracekitv1alpha1.TraceKitTenant,
	dex dexapi.DexClient, db *pgx.Conn, role string) {
	t.Helper()
	del := regexp.MustCompile(`kubectl delete tracekittenants [^\n]*`).FindString(notes)
	if del == "" {
		t.Fatalf("the NOTES do not say how to delete tenants before uninstalling:\n%s", notes)
	}
	c.kubectlScript(t, ctx, del+" --wait")
	if err := c.k8s.Get(ctx, client.ObjectKeyFromObject(tenant), tenant); !apierrors.IsNotFound(err) {
		t.Errorf("tenant still there after deletion: %v", err)
	}
	if _, err := dex.GetClient(ctx, &dexapi.GetClientReq{Id: tenant.Status.OAuthClientID}); err == nil {
		t.Error("the tenant's OAuth client is still in Dex")
	}
	var roles int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&roles); err != nil || roles != 0 {
		t.Errorf("the tenant's database role %s is still there (%d, %v)", role, roles, err)
	}
}

// expectProvisioned checks what the operator made for the tenant outside the cluster (its OAuth
// client in Dex, its imported API key) and returns its database role.
func (c *cluster) expectProvisioned(t *testing.T, ctx context.Context, dex dexapi.DexClient, db *pgx.Conn, tenant *tracekitv1alpha1.TraceKitTenant) string {
	t.Helper()
	if _, err := dex.GetClient(ctx, &dexapi.GetClientReq{Id: tenant.Status.OAuthClientID}); err != nil {
		t.Errorf("tenant's OAuth client %q is not in Dex: %v", tenant.Status.OAuthClientID, err)
	}
	var keys int
	if err := db.QueryRow(ctx, "SELECT count(*) FROM api_keys WHERE tenant_id = $1", tenant.Name).Scan(&keys); err != nil || keys != 1 {
		t.Errorf("the NOTES' API key was not imported: %d keys, %v", keys, err)
	}
	dbSecret := &corev1.Secret{}
	if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: tenant.Namespace, Name: "tracekit-" + tenant.Name + "-db"}, dbSecret); err != nil {
		t.Fatal(err)
	}
	return string(dbSecret.Data["role"])
}

// nextStep is the shell block of the NOTES: the lines after "Copy and run:" up to the next blank
// line.
func nextStep(t *testing.T, notes string) string {
	t.Helper()
	_, rest, ok := strings.Cut(notes, "Copy and run:\n\n")
	if !ok {
		t.Fatalf("the NOTES have no \"Copy and run:\" block:\n%s", notes)
	}
	block, _, _ := strings.Cut(rest, "\n\n")
	return block
}

// kubectlScript runs a shell script as a user would, with envtest's kubectl on the PATH.
func (c *cluster) kubectlScript(t *testing.T, ctx context.Context, script string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "bash", "-euo", "pipefail", "-c", script)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+c.kubeconfig, "PATH="+c.kubectlDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n--- script:\n%s\n--- output:\n%s", err, script, out)
	}
	t.Logf("$ %s\n%s", script, out)
}

func (c *cluster) expectServerImage(t *testing.T, ctx context.Context, ns, name, want string) {
	t.Helper()
	clustertest.Eventually(t, "tenant server image "+want, time.Minute, func() error {
		d := &appsv1.Deployment{}
		if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, d); err != nil {
			return err
		}
		if got := d.Spec.Template.Spec.Containers[0].Image; got != want {
			return fmt.Errorf("image %s", got)
		}
		return nil
	})
}
