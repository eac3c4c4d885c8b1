package controllers

import (
	"context"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// appliedObjects are the objects a reconcile of t writes, as empty objects with their names: the
// ones that must not belong to anyone else.
func (r *TenantReconciler) appliedObjects(t *tracekitv1alpha1.TraceKitTenant) []client.Object {
	named := func(name string) metav1.ObjectMeta { return metav1.ObjectMeta{Namespace: t.Namespace, Name: name} }
	objs := []client.Object{
		&corev1.ServiceAccount{ObjectMeta: named(serverName(t))},
		&corev1.Secret{ObjectMeta: named(dbSecretName(t))},
		&corev1.Secret{ObjectMeta: named(oauthSecretName(t))},
		&corev1.ConfigMap{ObjectMeta: named(alertRulesName(t))},
		&appsv1.Deployment{ObjectMeta: named(serverName(t))},
		&corev1.Service{ObjectMeta: named(serverName(t))},
		&networkingv1.NetworkPolicy{ObjectMeta: named(serverName(t))},
	}
	if route := r.routeObject(t); route != nil {
		objs = append(objs, route)
	}
	if replicas(t) > 1 {
		objs = append(objs, &policyv1.PodDisruptionBudget{ObjectMeta: named(serverName(t))})
	}
	return objs
}

// nameConflict finds an object t would write that exists and is not controlled by t, e.g. one of
// the Helm chart's objects when a tenant in the release namespace is named auth or operator. Server-
// side apply with force would take such an object over; the operator leaves it alone instead, and
// returns what to tell the user ("" when there is no conflict).
//
// The cache holds only the operator's objects, so the usual answer (the tenant's own object) costs
// no request; an object missing from the cache is looked up on the API server, by its metadata only
// (a foreign Secret's data is none of the operator's business).
func (r *TenantReconciler) nameConflict(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant) (string, error) {
	for _, obj := range r.appliedObjects(t) {
		gvk, err := apiutil.GVKForObject(obj, r.Scheme)
		if err != nil {
			return "", err
		}
		key := client.ObjectKeyFromObject(obj)
		var found metav1.Object = obj
		err = r.Get(ctx, key, obj)
		if apierrors.IsNotFound(err) {
			m := &metav1.PartialObjectMetadata{}
			m.SetGroupVersionKind(gvk)
			if err = r.APIReader.Get(ctx, key, m); apierrors.IsNotFound(err) {
				continue
			}
			found = m
		}
		if err != nil {
			return "", fmt.Errorf("read %s %s: %w", gvk.Kind, key.Name, err)
		}
		if metav1.IsControlledBy(found, t) {
			continue
		}
		return fmt.Sprintf("%s %s already exists in namespace %s and is %s, not by this TraceKitTenant; the operator leaves it alone. "+
			"Rename the tenant (delete it and create it under another name), or delete or move that %s",
			gvk.Kind, key.Name, key.Namespace, whoseObject(found), gvk.Kind), nil
	}
	return "", nil
}

// whoseObject says who an object belongs to, as far as its metadata tells.
func whoseObject(o metav1.Object) string {
	if ref := metav1.GetControllerOf(o); ref != nil {
		return fmt.Sprintf("controlled by %s %s (uid %s)", ref.Kind, ref.Name, ref.UID)
	}
	if m := o.GetLabels()[managedByLabel]; m != "" {
		return "managed by " + m
	}
	return "controlled by no one"
}
