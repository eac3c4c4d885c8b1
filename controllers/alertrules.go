package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// alertRulesFile is the key of the alert rules ConfigMap, mounted into the server's config directory.
const alertRulesFile = "alert-rules.json"

// alertRuleJSON is one rule as the server reads it from TRACEKIT_ALERT_RULES; the field names are the
// alert_rules columns of the store.
type alertRuleJSON struct {
	ID            string  `json:"id"`
	Service       string  `json:"service"`
	Metric        string  `json:"metric"`
	Comparison    string  `json:"comparison"`
	Threshold     float64 `json:"threshold"`
	WindowSeconds int     `json:"window_seconds"`
	Severity      string  `json:"severity"`
	Enabled       bool    `json:"enabled"`
}

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
	rules := make([]alertRuleJSON, 0, len(t.Spec.AlertRules))
	for _, ar := range t.Spec.AlertRules {
		threshold, err := strconv.ParseFloat(ar.Threshold, 64)
		if err != nil {
			return nil, fmt.Errorf("alert rule %q: threshold %q is not a decimal number", ar.Name, ar.Threshold)
		}
		window, severity := 300, ar.Severity
		if ar.Window != nil {
			window = int(ar.Window.Seconds())
		}
		if severity == "" {
			severity = "warning"
		}
		rules = append(rules, alertRuleJSON{ID: ar.Name, Service: ar.Service, Metric: string(ar.Metric), Comparison: ar.Comparison,
			Threshold: threshold, WindowSeconds: window, Severity: severity, Enabled: true})
	}
	b, err := json.MarshalIndent(rules, "", "  ")
	if err != nil {
		return nil, err
	}
	return corev1ac.ConfigMap(alertRulesName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithData(map[string]string{alertRulesFile: string(b)}), nil
}
