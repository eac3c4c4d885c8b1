package controllers

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	"k8s.io/utils/ptr"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/tenantconfig"
)

// reconcileAlertRules writes the ConfigMap of alert rules and returns its data.
func (r *TenantReconciler) reconcileAlertRules(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) (map[string]string, error) {
	cm, err := desiredAlertRules(t)
	if err != nil {
		return nil, err
	}
	if err := apply(ctx, r, st, &corev1.ConfigMap{}, cm, corev1ac.ExtractConfigMap); err != nil {
		return nil, err
	}
	return cm.Data, nil
}

func desiredAlertRules(t *tracekitv1alpha1.TraceKitTenant) (*corev1ac.ConfigMapApplyConfiguration, error) {
	rules := make([]tenantconfig.AlertRule, 0, len(t.Spec.AlertRules))
	for _, ar := range t.Spec.AlertRules {
		r, err := serverAlertRule(ar)
		if err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	b, err := tenantconfig.EncodeAlertRules(rules)
	if err != nil {
		return nil, err
	}
	return corev1ac.ConfigMap(alertRulesName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithData(map[string]string{tenantconfig.AlertRulesFile: string(b)}), nil
}

// The server's names for the resource's metrics, comparisons and severities.
var (
	serverMetrics = map[tracekitv1alpha1.AlertMetric]string{
		tracekitv1alpha1.MetricErrorRate:  "error_rate",
		tracekitv1alpha1.MetricLatencyP50: "latency_p50_ms",
		tracekitv1alpha1.MetricLatencyP95: "latency_p95_ms",
		tracekitv1alpha1.MetricLatencyP99: "latency_p99_ms",
		tracekitv1alpha1.MetricThroughput: "throughput_rpm",
		tracekitv1alpha1.MetricLLMCost:    "llm_cost_usd",
		tracekitv1alpha1.MetricLLMTokens:  "llm_tokens",
	}
	serverComparisons = map[string]string{"gt": ">", "lt": "<"}
	serverSeverities  = map[string]string{"info": "low", "warning": "medium", "critical": "critical"}
)

// serverAlertRule translates a rule of the resource into the server's terms: its metric names, a
// throughput per minute instead of per second, its comparison operators and severity scale.
func serverAlertRule(ar tracekitv1alpha1.AlertRule) (tenantconfig.AlertRule, error) {
	threshold, err := strconv.ParseFloat(ar.Threshold, 64)
	if err != nil {
		return tenantconfig.AlertRule{}, fmt.Errorf("alert rule %q: threshold %q is not a decimal number", ar.Name, ar.Threshold)
	}
	if ar.Metric == tracekitv1alpha1.MetricThroughput {
		threshold *= 60
	}
	window, severity := 300, ar.Severity
	if ar.Window != nil {
		window = int(ar.Window.Seconds())
	}
	if severity == "" {
		severity = "warning"
	}
	metric, okM := serverMetrics[ar.Metric]
	comparison, okC := serverComparisons[ar.Comparison]
	severity, okS := serverSeverities[severity]
	if !okM || !okC || !okS {
		// The resource's schema admits only the values the maps hold: this is an operator bug.
		return tenantconfig.AlertRule{}, fmt.Errorf("alert rule %q: metric %q, comparison %q or severity %q has no server equivalent",
			ar.Name, ar.Metric, ar.Comparison, ar.Severity)
	}
	return tenantconfig.AlertRule{ID: ar.Name, Service: ar.Service, Metric: metric, Comparison: comparison,
		Threshold: threshold, WindowSeconds: window, Severity: severity, Enabled: ptr.To(true)}, nil
}
