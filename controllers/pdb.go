package controllers

import (
	"context"

	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// reconcilePodDisruptionBudget keeps a PodDisruptionBudget while the tenant runs more than one pod;
// with one pod a budget would block node drains forever.
func (r *TenantReconciler) reconcilePodDisruptionBudget(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) error {
	if replicas(t) <= 1 {
		pdb := &policyv1.PodDisruptionBudget{ObjectMeta: metav1.ObjectMeta{Namespace: t.Namespace, Name: serverName(t)}}
		return remove(ctx, r, st, pdb, "PodDisruptionBudget")
	}
	return apply(ctx, r, st, &policyv1.PodDisruptionBudget{}, desiredPodDisruptionBudget(t), policyv1ac.ExtractPodDisruptionBudget)
}

func desiredPodDisruptionBudget(t *tracekitv1alpha1.TraceKitTenant) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(t))))
}
