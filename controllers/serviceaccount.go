package controllers

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

func (r *TenantReconciler) reconcileServiceAccount(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) error {
	return apply(ctx, r, st, &corev1.ServiceAccount{}, desiredServiceAccount(t), corev1ac.ExtractServiceAccount)
}

// desiredServiceAccount gives the tenant's pods an identity of their own. They never call the
// Kubernetes API, so no token is mounted.
func desiredServiceAccount(t *tracekitv1alpha1.TraceKitTenant) *corev1ac.ServiceAccountApplyConfiguration {
	return corev1ac.ServiceAccount(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithAutomountServiceAccountToken(false)
}
