package chart

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// config/ is the other way to install, for kustomize users: config/default (operator and sign-in
// server) applies to a real API server, and config/samples' tenant passes the CRD's validation.
func TestKustomize_ConfigDefaultAndSamplesApply(t *testing.T) {
	c := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	rendered, err := exec.CommandContext(ctx, filepath.Join(c.kubectlDir, "kubectl"), "kustomize", filepath.Join(repoRoot, "config", "default")).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize config/default: %v", err)
	}
	var deployments []string
	for _, o := range objects(t, string(rendered)) {
		if o.GetKind() == "Deployment" {
			deployments = append(deployments, o.GetName())
		}
	}
	slices.Sort(deployments)
	if want := []string{"tracekit-auth", "tracekit-manager"}; !slices.Equal(deployments, want) {
		t.Errorf("config/default has Deployments %v, want %v", deployments, want)
	}

	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	c.kubectlScript(t, ctx, "cd "+root+` &&
kubectl apply --server-side -k config/default &&
kubectl wait --for=condition=Established crd/tracekittenants.tracekit.dev crd/tracekitdatabases.tracekit.dev --timeout=60s &&
kubectl apply --server-side -n tracekit-system -k config/samples`)
	for _, name := range []string{"tracekit-manager", "tracekit-auth"} {
		if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: "tracekit-system", Name: name}, &appsv1.Deployment{}); err != nil {
			t.Errorf("Deployment %s: %v", name, err)
		}
	}
	if err := c.k8s.Get(ctx, client.ObjectKey{Namespace: "tracekit-system", Name: "acme"}, &tracekitv1alpha1.TraceKitTenant{}); err != nil {
		t.Errorf("sample tenant: %v", err)
	}
	if err := c.k8s.Get(ctx, client.ObjectKey{Name: "pg-eu-1"}, &tracekitv1alpha1.TraceKitDatabase{}); err != nil {
		t.Errorf("sample database: %v", err)
	}
}
