package controllers

import (
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// managedByLabel carries fieldOwner on every object the operator makes; the manager's cache holds
// only objects with it.
const managedByLabel = "app.kubernetes.io/managed-by"

// ownedKinds are the kinds of the objects a tenant owns.
func ownedKinds() []client.Object {
	return []client.Object{&corev1.ServiceAccount{}, &corev1.Secret{}, &corev1.ConfigMap{}, &appsv1.Deployment{},
		&corev1.Service{}, &networkingv1.Ingress{}, &networkingv1.NetworkPolicy{}, &policyv1.PodDisruptionBudget{}}
}

// CacheOptions restrict the manager's cache of every owned kind to the objects the operator made
// (labelled app.kubernetes.io/managed-by=tracekit-operator): without it the manager would hold
// every Secret, ConfigMap and Deployment of the cluster in memory. The Secrets tenants reference
// and objects in the way of a tenant's are read past the cache (TenantReconciler.APIReader).
func CacheOptions() cache.Options {
	own := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{managedByLabel: fieldOwner})}
	byObject := map[client.Object]cache.ByObject{}
	for _, kind := range ownedKinds() {
		byObject[kind] = own
	}
	return cache.Options{ByObject: byObject}
}

// nameOnly keeps an object's identity and drops the rest of its metadata before the watch of
// referenced Secrets caches it: annotations such as kubectl's last-applied-configuration can hold a
// Secret's data.
func nameOnly(in any) (any, error) {
	if m, ok := in.(*metav1.PartialObjectMetadata); ok {
		m.ObjectMeta = metav1.ObjectMeta{Namespace: m.Namespace, Name: m.Name, UID: m.UID, ResourceVersion: m.ResourceVersion}
	}
	return in, nil
}
