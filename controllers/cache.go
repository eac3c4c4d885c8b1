package controllers

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// managedByLabel carries fieldOwner on every object the operator makes; the manager's cache holds
// only objects with it.
const managedByLabel = "app.kubernetes.io/managed-by"

// ownedKinds are the kinds of the objects a tenant owns. HTTPRoute is one only when the cluster
// serves it.
func ownedKinds(gatewayAPI bool) []client.Object {
	kinds := []client.Object{&corev1.ServiceAccount{}, &corev1.Secret{}, &corev1.ConfigMap{}, &appsv1.Deployment{},
		&corev1.Service{}, &networkingv1.Ingress{}, &networkingv1.NetworkPolicy{}, &policyv1.PodDisruptionBudget{}}
	if gatewayAPI {
		kinds = append(kinds, &gatewayv1.HTTPRoute{})
	}
	return kinds
}

// CacheOptions restrict the manager's cache of every owned kind to the objects the operator made
// (labelled app.kubernetes.io/managed-by=tracekit-operator): without it the manager would hold
// every Secret, ConfigMap and Deployment of the cluster in memory. The Secrets tenants reference
// and objects in the way of a tenant's are read past the cache (TenantReconciler.APIReader).
func CacheOptions(gatewayAPI bool) cache.Options {
	own := cache.ByObject{Label: labels.SelectorFromSet(labels.Set{managedByLabel: fieldOwner})}
	byObject := map[client.Object]cache.ByObject{}
	for _, kind := range ownedKinds(gatewayAPI) {
		byObject[kind] = own
	}
	return cache.Options{ByObject: byObject}
}

// GatewayAPIInstalled reports whether the cluster serves HTTPRoutes of gateway.networking.k8s.io/v1.
// The manager asks once at start-up: it watches and makes HTTPRoutes only if so, and otherwise
// starts all the same (installing the Gateway API later takes a restart of the manager).
func GatewayAPIInstalled(cfg *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return false, err
	}
	resources, err := dc.ServerResourcesForGroupVersion(gatewayv1.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("discover %s: %w", gatewayv1.GroupVersion, err)
	}
	for _, r := range resources.APIResources {
		if r.Name == "httproutes" {
			return true, nil
		}
	}
	return false, nil
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
