// Package clustertest is the in-process cluster that the operator's and the chart's tests run on:
// envtest's kube-apiserver and etcd, the tracekit binary built from this checkout, and a
// Deployment's container run on this machine as a kubelet would run it. Nothing runs pods here (no
// Docker), so a test that needs a server starts the binary with what the Deployment says. Only tests
// import it.
package clustertest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the repository's root directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Assets returns the directory of envtest's binaries: $KUBEBUILDER_ASSETS, or else the one `make
// envtest-assets` built under bin/k8s (the newest version there), as kubebuilder's scaffold falls
// back. It sets KUBEBUILDER_ASSETS so that envtest uses the same directory.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	base := filepath.Join(RepoRoot(), "bin", "k8s")
	entries, _ := os.ReadDir(base)
	var versions []string
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(base, e.Name(), "kube-apiserver")); err == nil {
			versions = append(versions, e.Name())
		}
	}
	if len(versions) == 0 {
		return "", fmt.Errorf("no envtest binaries: KUBEBUILDER_ASSETS is not set and %s holds no kube-apiserver; run `make envtest-assets`", base)
	}
	slices.SortFunc(versions, compareVersions)
	dir := filepath.Join(base, versions[len(versions)-1])
	return dir, os.Setenv("KUBEBUILDER_ASSETS", dir)
}

// compareVersions orders dotted version numbers numerically (1.9.0 < 1.37.2).
func compareVersions(a, b string) int {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := range min(len(pa), len(pb)) {
		var x, y int
		fmt.Sscan(pa[i], &x)
		fmt.Sscan(pb[i], &y)
		if x != y {
			return x - y
		}
	}
	return len(pa) - len(pb)
}

// Cluster is a running envtest API server.
type Cluster struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client // cluster admin, with the scheme given to Start
	Assets string        // envtest's binaries, kubectl among them
}

// Start starts envtest with the CRDs in crdPaths and stops it when the test ends.
func Start(t testing.TB, scheme *k8sruntime.Scheme, crdPaths ...string) *Cluster {
	t.Helper()
	assets, err := Assets()
	if err != nil {
		t.Fatal(err)
	}
	env := &envtest.Environment{CRDDirectoryPaths: crdPaths, ErrorIfCRDPathMissing: len(crdPaths) > 0, Scheme: scheme}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest (KUBEBUILDER_ASSETS=%s): %v", assets, err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	c := &Cluster{Env: env, Config: cfg, Assets: assets}
	if c.Client, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		t.Fatal(err)
	}
	return c
}

// Kubeconfig writes a kubeconfig for user u into dir; with impersonate set, its requests are made
// as that user (e.g. a ServiceAccount, to run with exactly its RBAC).
func (c *Cluster) Kubeconfig(t testing.TB, dir string, u envtest.User, impersonate string) string {
	t.Helper()
	user, err := c.Env.AddUser(u, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	name := strings.NewReplacer(":", "-").Replace(u.Name)
	if impersonate != "" {
		parsed, err := clientcmd.Load(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range parsed.AuthInfos {
			a.Impersonate = impersonate
		}
		if b, err = clientcmd.Write(*parsed); err != nil {
			t.Fatal(err)
		}
		name += "-as-" + strings.NewReplacer(":", "-").Replace(impersonate)
	}
	path := filepath.Join(dir, name+".kubeconfig")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Kubectl runs envtest's kubectl with kubeconfig and returns its output.
func (c *Cluster) Kubectl(t testing.TB, kubeconfig string, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(c.Assets, "kubectl"), append([]string{"--kubeconfig", kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// BuildTracekit starts building the tracekit binary of this checkout; the function it returns waits
// for the build and returns the binary's path.
func BuildTracekit(t testing.TB) func() string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tracekit")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracekit")
	cmd.Dir = RepoRoot()
	var out []byte
	var err error
	done := make(chan struct{})
	go func() {
		out, err = cmd.CombinedOutput()
		close(done)
	}()
	t.Cleanup(func() { <-done })
	return func() string {
		t.Helper()
		<-done
		if err != nil {
			t.Fatalf("go build ./cmd/tracekit: %v\n%s", err, out)
		}
		return bin
	}
}

// Eventually calls check every 100ms until it returns nil, failing the test with its last error
// after timeout, or at once when check returns a Stop error.
func Eventually(t testing.TB, what string, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		err := check()
		if err == nil {
			return
		}
		if s, ok := err.(Stop); ok {
			t.Fatalf("%s: %v", what, s.Err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		<-tick.C
	}
}

// Stop ends Eventually at once.
type Stop struct{ Err error }

func (s Stop) Error() string { return s.Err.Error() }
