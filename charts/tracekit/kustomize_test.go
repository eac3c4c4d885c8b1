package chart

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// config/ is the other way to install, for kustomize users: config/default applies to a real API
// server, runs the chart's image version, and config/samples' tenant passes the CRD's validation.
func TestKustomize_ConfigDefaultAndSamplesApply(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rendered, err := exec.CommandContext(ctx, filepath.Join(c.kubectlDir, "kubectl"), "kustomize", filepath.Join(repoRoot, "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	b, err := os.ReadFile("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil {
		t.Fatal(err)
	}
	image := "ghcr.io/tracekit/tracekit:" + chart.AppVersion
	for _, o := range objects(t, string(rendered)) {
		if o.GetKind() != "Deployment" {
			continue
		}
		ctr := convert[appsv1.Deployment](t, o).Spec.Template.Spec.Containers[0]
		if ctr.Image != image {
			t.Errorf("config/ Deployment %s runs %s, the chart %s", o.GetName(), ctr.Image, image)
		}
		if i := slices.IndexFunc(ctr.Args, func(a string) bool { return strings.HasPrefix(a, "--server-image=") }); i >= 0 && ctr.Args[i] != "--server-image="+image {
			t.Errorf("config/ operator deploys tenants with %s, the chart with %s", ctr.Args[i], image)
		}
	}

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	c.kubectlScript(t, ctx, "cd "+root+` &&
kubectl apply --server-side -k config/default &&
kubectl wait --for=condition=Established crd/tracekittenants.tracekit.dev --timeout=60s &&
kubectl apply --server-side -n tracekit-system -k config/samples`)
	for _, name := range []string{"tracekit-operator", "tracekit-auth"} {
		if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: "tracekit-system", Name: name}, &appsv1.Deployment{}); err != nil {
			t.Errorf("Deployment %s: %v", name, err)
		}
	}
	if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: "tracekit-system", Name: "acme"}, &tracekitv1alpha1.TraceKitTenant{}); err != nil {
		t.Errorf("sample tenant: %v", err)
	}
}
