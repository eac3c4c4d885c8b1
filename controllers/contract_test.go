package controllers

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/analysis/alerting"
	"github.com/tracekit/tracekit/server/store"
)

// TestContract_TenantRoundTripsIntoTheServersConfig follows a TraceKitTenant through what the
// operator writes (the Deployment's environment and the mounted rules file) into what the server
// reads from them: every metric, comparison and severity the resource admits must reach the server
// as a valid rule with the same meaning.
func TestContract_TenantRoundTripsIntoTheServersConfig(t *testing.T) {
	tenant := contractTenant()
	cm, err := desiredAlertRules(tenant)
	if err != nil {
		t.Fatal(err)
	}
	dep := desiredDeployment(tenant, deploymentParams{image: "img", publicURL: "https://acme.example.com", authIssuer: "https://auth.example.com/dex"})
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	env := map[string]string{}
	for _, e := range c.Env {
		env[*e.Name] = ""
		if e.Value != nil {
			env[*e.Name] = *e.Value
		}
	}
	for _, name := range []string{tenantconfig.EnvDatabaseURL, tenantconfig.EnvTenant, tenantconfig.EnvPublicURL, tenantconfig.EnvAlertRules,
		tenantconfig.EnvRetention, tenantconfig.EnvAuthIssuer, tenantconfig.EnvOAuthClientID, tenantconfig.EnvOAuthClientSecret} {
		if _, ok := env[name]; !ok {
			t.Errorf("the server's container has no $%s", name)
		}
	}
	if env[tenantconfig.EnvTenant] != "acme" || env[tenantconfig.EnvPublicURL] != "https://acme.example.com" ||
		env[tenantconfig.EnvAuthIssuer] != "https://auth.example.com/dex" {
		t.Errorf("environment %v", env)
	}
	if d, err := time.ParseDuration(env[tenantconfig.EnvRetention]); err != nil || d != 48*time.Hour {
		t.Errorf("$%s=%q: the server reads a Go duration", tenantconfig.EnvRetention, env[tenantconfig.EnvRetention])
	}

	file := rulesFile(t, env[tenantconfig.EnvAlertRules], c.VolumeMounts, pod.Volumes, cm.Name, cm.Data)
	got, err := alerting.LoadRules(file)
	if err != nil {
		t.Fatalf("the server rejects the operator's rules: %v", err)
	}
	rule := func(id, metric, cmp string, threshold float64, window int, severity string) store.AlertRule {
		return store.AlertRule{ID: id, Service: "api", Metric: metric, Comparison: cmp, Threshold: threshold, WindowSeconds: window,
			Severity: severity, Enabled: true}
	}
	want := []store.AlertRule{
		rule("error-rate", alerting.ErrorRate, ">", 0.5, 300, "medium"),
		rule("latency-p50", alerting.P50, ">", 0.5, 300, "medium"),
		rule("latency-p95", alerting.P95, ">", 0.5, 300, "medium"),
		rule("latency-p99", alerting.P99, ">", 0.5, 300, "medium"),
		rule("throughput", alerting.Throughput, ">", 30, 300, "medium"), // per second in the resource, per minute in the server
		rule("llm-cost", alerting.LLMCost, ">", 0.5, 300, "medium"),
		rule("llm-tokens", alerting.LLMTokens, ">", 0.5, 300, "medium"),
		rule("quiet", alerting.Throughput, "<", 120, 600, "low"),
		rule("down", alerting.ErrorRate, ">", 0.2, 300, "critical"),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("server rules\n got %+v\nwant %+v", got, want)
	}
}

// contractTenant has a rule for every metric the resource admits, both comparisons and every
// severity, the default window and another.
func contractTenant() *tracekitv1alpha1.TraceKitTenant {
	var rules []tracekitv1alpha1.AlertRule
	for _, m := range []tracekitv1alpha1.AlertMetric{tracekitv1alpha1.MetricErrorRate, tracekitv1alpha1.MetricLatencyP50,
		tracekitv1alpha1.MetricLatencyP95, tracekitv1alpha1.MetricLatencyP99, tracekitv1alpha1.MetricThroughput,
		tracekitv1alpha1.MetricLLMCost, tracekitv1alpha1.MetricLLMTokens} {
		rules = append(rules, tracekitv1alpha1.AlertRule{Name: strings.ReplaceAll(string(m), "_", "-"), Service: "api", Metric: m,
			Comparison: "gt", Threshold: "0.5"})
	}
	rules = append(rules,
		tracekitv1alpha1.AlertRule{Name: "quiet", Service: "api", Metric: tracekitv1alpha1.MetricThroughput, Comparison: "lt",
			Threshold: "2", Window: &metav1.Duration{Duration: 10 * time.Minute}, Severity: "info"},
		tracekitv1alpha1.AlertRule{Name: "down", Service: "api", Metric: tracekitv1alpha1.MetricErrorRate, Comparison: "gt",
			Threshold: "0.2", Severity: "critical"})
	return tenantFor("acme", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
		s.AlertRules = rules
		s.Retention = &metav1.Duration{Duration: 48 * time.Hour}
	})
}

// rulesFile follows path, the server's $TRACEKIT_ALERT_RULES, through the container's mounts to a
// key of the rules ConfigMap, and writes that key's data to a file as the kubelet would.
func rulesFile(t *testing.T, path string, mounts []corev1ac.VolumeMountApplyConfiguration, volumes []corev1ac.VolumeApplyConfiguration,
	cmName *string, data map[string]string) string {
	t.Helper()
	var key string
	for _, m := range mounts {
		if rel, ok := strings.CutPrefix(path, *m.MountPath+"/"); ok {
			for _, v := range volumes {
				if *v.Name == *m.Name && v.ConfigMap != nil && *v.ConfigMap.Name == *cmName {
					key = rel
				}
			}
		}
	}
	content, ok := data[key]
	if !ok {
		t.Fatalf("$%s=%q is not a file of ConfigMap %s (keys %v)", tenantconfig.EnvAlertRules, path, *cmName, data)
	}
	file := filepath.Join(t.TempDir(), key)
	if err := os.WriteFile(file, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
