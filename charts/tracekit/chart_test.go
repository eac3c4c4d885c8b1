// Package chart tests the Helm chart with the real helm binary (built into bin/ by `make helm`):
// lint, golden renders, the values schema, and an install into envtest's kube-apiserver with the
// operator and sign-in server running from the installed configuration (install_test.go).
package chart

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

const (
	repoRoot = "../.."
	// kubeVersion is envtest's; without it `helm template` assumes 1.20, below the chart's kubeVersion.
	kubeVersion = "1.37.2"
)

// apiVersions are the optional APIs production.yaml uses, which `helm template` cannot discover.
var apiVersions = []string{"--api-versions", "gateway.networking.k8s.io/v1/HTTPRoute", "--api-versions", "monitoring.coreos.com/v1/ServiceMonitor"}

// helmPath is bin/helm (or $HELM). A missing binary fails the test: CI must not pass by skipping.
func helmPath(t testing.TB) string {
	t.Helper()
	p := os.Getenv("HELM")
	if p == "" {
		p = filepath.Join(repoRoot, "bin", "helm")
	}
	p, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("helm not found at %s: run `make helm` (or set HELM)", p)
	}
	return p
}

// runHelm runs helm in the chart's directory; the error carries helm's stderr.
func runHelm(t testing.TB, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(helmPath(t), args...)
	home := t.TempDir() // helm's cache, config and data stay out of $HOME
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"), "HELM_DATA_HOME="+filepath.Join(home, "data"))
	cmd.Env = append(cmd.Env, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// render is `helm template` of release "tracekit" in namespace "tracekit" with a values file of
// testdata/values and extra arguments.
func render(t testing.TB, values string, extra ...string) (string, error) {
	t.Helper()
	args := append([]string{"template", "tracekit", ".", "--namespace", "tracekit", "--kube-version", kubeVersion,
		"-f", filepath.Join("testdata", "values", values)}, apiVersions...)
	return runHelm(t, nil, append(args, extra...)...)
}

func mustRender(t testing.TB, values string, extra ...string) string {
	t.Helper()
	out, err := render(t, values, extra...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func valuesFiles(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "values", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values files in testdata/values: %v", err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	return files
}

// objects splits a rendered manifest into objects.
func objects(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	var out []*unstructured.Unstructured
	for _, doc := range strings.Split(manifest, "\n---") {
		var m map[string]any
		if err := yaml.Unmarshal([]byte(doc), &m); err != nil {
			t.Fatalf("rendered YAML does not parse: %v\n%s", err, doc)
		}
		if len(m) > 0 {
			out = append(out, &unstructured.Unstructured{Object: m})
		}
	}
	return out
}

func find(t testing.TB, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s %q rendered", kind, name)
	return nil
}

func convert[T any](t testing.TB, o *unstructured.Unstructured) *T {
	t.Helper()
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(o.Object, out, true); err != nil {
		t.Fatalf("%s %s: %v", o.GetKind(), o.GetName(), err)
	}
	return out
}

// podSpecs are the pod templates of every Deployment and StatefulSet.
func podSpecs(t testing.TB, objs []*unstructured.Unstructured) map[string]corev1.PodSpec {
	t.Helper()
	specs := map[string]corev1.PodSpec{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Deployment":
			specs[o.GetName()] = convert[appsv1.Deployment](t, o).Spec.Template.Spec
		case "StatefulSet":
			specs[o.GetName()] = convert[appsv1.StatefulSet](t, o).Spec.Template.Spec
		}
	}
	return specs
}

func TestLint(t *testing.T) {
	for _, f := range valuesFiles(t) {
		out, err := runHelm(t, nil, "lint", "--strict", "--kube-version", kubeVersion, "-f", filepath.Join("testdata", "values", f), ".")
		if err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

// The golden files are what each values file renders; the generated database password is replaced,
// being the only thing that differs between renders. `go test -run TestTemplate -update` rewrites
// them.
func TestTemplate_MatchesGoldenFiles(t *testing.T) {
	for _, f := range valuesFiles(t) {
		t.Run(f, func(t *testing.T) {
			out := mustRender(t, f)
			for _, o := range objects(t, out) {
				if o.GetKind() != "Secret" || o.GetName() != "tracekit-database" {
					continue
				}
				for key, val := range o.Object["data"].(map[string]any) {
					out = strings.ReplaceAll(out, val.(string), "GENERATED-"+strings.ToUpper(key))
				}
			}
			golden := filepath.Join("testdata", "golden", f)
			if *update {
				if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run `go test ./charts/tracekit -run TestTemplate -update` to create it)", err)
			}
			if string(want) != out {
				t.Errorf("helm template differs from %s: review the change and rerun with -update (make chart-golden)\n%s", golden, lineDiff(string(want), out))
			}
		})
	}
}

// lineDiff shows the first lines that differ, enough to see what changed.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  golden: %s\n  now:    %s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// Wrong values are refused before anything reaches the cluster, with a message naming the field.
func TestValues_WrongValuesAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name    string
		values  string
		args    []string
		message string
	}{
		{"zero replicas", "default.yaml", []string{"--set", "auth.replicas=0"}, "at '/auth/replicas': minimum: got 0, want 1"},
		{"unknown pull policy", "default.yaml", []string{"--set", "image.pullPolicy=Sometimes"}, "at '/image/pullPolicy': value must be one of"},
		{"misspelt field", "default.yaml", []string{"--set", "auth.replica=2"}, "at '/auth': additional properties 'replica' not allowed"},
		{"tenant URL without {tenant}", "default.yaml", []string{"--set", "operator.tenantURL=https://tracekit.example.com"}, "at '/operator/tenantURL'"},
		{"gateway without namespace", "default.yaml", []string{"--set", "operator.gateway=public"}, "at '/operator/gateway'"},
		{"issuer without scheme", "default.yaml", []string{"--set", "auth.issuer=auth.example.com/dex"}, "at '/auth/issuer'"},
		{"short password", "default.yaml", []string{"--set", "postgresql.auth.password=secret"}, "at '/postgresql/auth/password'"},
		{"password needing escapes", "default.yaml", []string{"--set", "postgresql.auth.password=p@ss/word:0123456789"}, "at '/postgresql/auth/password'"},
		{"digest without algorithm", "default.yaml", []string{"--set", "image.digest=0123abcd"}, "at '/image/digest'"},
		{"duration without unit", "default.yaml", []string{"--set", "operator.recheck=300"}, "at '/operator/recheck'"},
		{"ExternalName service", "default.yaml", []string{"--set", "auth.service.type=ExternalName"}, "at '/auth/service/type'"},
		{"string replicas", "default.yaml", []string{"--set-string", "operator.replicas=two"}, "at '/operator/replicas': got string, want integer"},
		{"no issuer", "default.yaml", []string{"--set", "auth.issuer="}, "auth.issuer is required"},
		{"no tenant URL", "default.yaml", []string{"--set", "operator.tenantURL="}, "operator.tenantURL is required"},
		{"no database", "default.yaml", []string{"--set", "postgresql.enabled=false"}, "database.existingSecret.name is required when postgresql.enabled is false"},
		{"gRPC TLS without Secrets", "default.yaml", []string{"--set", "auth.grpcTLS.enabled=true"}, "auth.grpcTLS.enabled needs auth.grpcTLS.serverSecretName"},
		{"inline provider secret", "default.yaml", []string{"--set-json", `auth.signIn.providers=[{"type":"oidc","id":"okta","name":"Okta","config":{"clientSecret":"hunter2"}}]`},
			"auth.signIn.providers[okta].config.clientSecret must not be written into values"},
		{"unknown provider type", "default.yaml", []string{"--set", "auth.signIn.providers[0].type=saml"}, "at '/auth/signIn/providers/0"},
		{"HTTPRoute without Gateway", "default.yaml", []string{"--set", "auth.httpRoute.enabled=true"}, "auth.httpRoute.enabled needs auth.httpRoute.parentRefs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := render(t, tc.values, tc.args...)
			if err == nil {
				t.Fatalf("rendered with %v; want it refused", tc.args)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error does not say %q:\n%v", tc.message, err)
			}
		})
	}
}

// Optional objects of an API the cluster lacks are refused with a message, not silently dropped.
func TestValues_OptionalAPIsMustExist(t *testing.T) {
	args := []string{"template", "tracekit", ".", "--kube-version", kubeVersion, "-f", filepath.Join("testdata", "values", "production.yaml")}
	_, err := runHelm(t, nil, args...)
	if err == nil || !strings.Contains(err.Error(), "this cluster has no Gateway API") {
		t.Errorf("HTTPRoute without the Gateway API: got %v", err)
	}
	_, err = runHelm(t, nil, append(args, "--api-versions", "gateway.networking.k8s.io/v1/HTTPRoute")...)
	if err == nil || !strings.Contains(err.Error(), "this cluster has no ServiceMonitor CRD") {
		t.Errorf("ServiceMonitor without the Prometheus Operator: got %v", err)
	}
}

// The chart's CRDs and operator rules are copies of what controller-gen generates into config/
// (`make chart-crds chart-rbac`); this fails when they drift.
func TestGeneratedCopiesAreCurrent(t *testing.T) {
	bases, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(bases) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	copies, _ := filepath.Glob(filepath.Join("crds", "*.yaml"))
	names := func(paths []string) []string {
		var out []string
		for _, p := range paths {
			out = append(out, filepath.Base(p))
		}
		return out
	}
	if !slices.Equal(names(bases), names(copies)) {
		t.Errorf("charts/tracekit/crds has %v, config/crd/bases has %v: run `make chart-crds`", names(copies), names(bases))
	}
	pairs := map[string]string{filepath.Join("files", "manager-role.yaml"): filepath.Join(repoRoot, "config", "rbac", "role.yaml")}
	for _, b := range bases {
		pairs[filepath.Join("crds", filepath.Base(b))] = b
	}
	for chartFile, generated := range pairs {
		want, err := os.ReadFile(generated)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(chartFile)
		if err != nil {
			t.Errorf("%v: run `make chart-crds chart-rbac`", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("charts/tracekit/%s differs from %s: run `make chart-crds chart-rbac`", chartFile, generated)
		}
	}

	// And the rendered ClusterRole carries exactly those rules.
	var role rbacv1.ClusterRole
	b, err := os.ReadFile(filepath.Join(repoRoot, "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &role); err != nil {
		t.Fatal(err)
	}
	rendered := convert[rbacv1.ClusterRole](t, find(t, objects(t, mustRender(t, "default.yaml")), "ClusterRole", "tracekit-operator-tracekit"))
	if !reflect.DeepEqual(rendered.Rules, role.Rules) {
		t.Errorf("rendered ClusterRole rules differ from config/rbac/role.yaml:\n got %v\nwant %v", rendered.Rules, role.Rules)
	}
}

// Every pod runs non-root with a read-only root filesystem, no capabilities, the runtime's seccomp
// profile and resource requests, whatever the values.
func TestTemplate_SecureDefaults(t *testing.T) {
	for _, f := range valuesFiles(t) {
		specs := podSpecs(t, objects(t, mustRender(t, f)))
		if len(specs) == 0 {
			t.Fatalf("%s: no workloads rendered", f)
		}
		for name, spec := range specs {
			psc := spec.SecurityContext
			if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Errorf("%s %s: pod may run as root", f, name)
			}
			if psc == nil || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s %s: seccomp profile is not RuntimeDefault", f, name)
			}
			for _, c := range spec.Containers {
				sc := c.SecurityContext
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
					t.Errorf("%s %s/%s: root filesystem is writable", f, name, c.Name)
				}
				if sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
					t.Errorf("%s %s/%s: privilege escalation allowed", f, name, c.Name)
				}
				if sc == nil || sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
					t.Errorf("%s %s/%s: capabilities not dropped", f, name, c.Name)
				}
				if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
					t.Errorf("%s %s/%s: no CPU and memory requests", f, name, c.Name)
				}
				if c.ReadinessProbe == nil || c.LivenessProbe == nil {
					t.Errorf("%s %s/%s: no readiness and liveness probes", f, name, c.Name)
				}
			}
		}
	}
}

// The image defaults to the chart's appVersion, for the operator, the sign-in server and the tenant
// servers the operator deploys.
func TestTemplate_ImageTagIsAppVersion(t *testing.T) {
	b, err := os.ReadFile("Chart.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(b, &chart); err != nil || chart.AppVersion == "" {
		t.Fatalf("Chart.yaml has no appVersion: %v", err)
	}
	want := "ghcr.io/tracekit/tracekit:" + chart.AppVersion
	specs := podSpecs(t, objects(t, mustRender(t, "default.yaml")))
	for _, name := range []string{"tracekit-operator", "tracekit-auth"} {
		if got := specs[name].Containers[0].Image; got != want {
			t.Errorf("%s image = %s, want %s", name, got, want)
		}
	}
	if args := specs["tracekit-operator"].Containers[0].Args; !slices.Contains(args, "--server-image="+want) {
		t.Errorf("operator args %v lack --server-image=%s", args, want)
	}
}

// The bundled database's URL reaches it from any namespace (tenant servers run in the tenants'),
// without TLS (the pod serves none), and with the generated password.
func TestTemplate_BundledDatabaseURL(t *testing.T) {
	s := convert[corev1.Secret](t, find(t, objects(t, mustRender(t, "default.yaml")), "Secret", "tracekit-database"))
	pw := string(s.Data["password"])
	if len(pw) != 32 {
		t.Errorf("generated password has %d characters, want 32", len(pw))
	}
	want := "postgres://tracekit:" + pw + "@tracekit-postgresql.tracekit.svc:5432/tracekit?sslmode=disable"
	if got := string(s.Data["url"]); got != want {
		t.Errorf("url = %s, want %s", got, want)
	}
	other := convert[corev1.Secret](t, find(t, objects(t, mustRender(t, "default.yaml")), "Secret", "tracekit-database"))
	if string(other.Data["password"]) == pw {
		t.Error("two renders without a cluster generated the same password")
	}
}
