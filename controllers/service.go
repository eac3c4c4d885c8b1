package controllers

import (
	"context"
	"net/url"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

func (r *TenantReconciler) reconcileService(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, st *status) error {
	return apply(ctx, r, st, &corev1.Service{}, desiredService(t), corev1ac.ExtractService)
}

func desiredService(t *tracekitv1alpha1.TraceKitTenant) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(t)).
			WithPorts(corev1ac.ServicePort().WithName("http").WithPort(80).
				WithTargetPort(intstr.FromString("http")).WithProtocol(corev1.ProtocolTCP),
				// OTLP/gRPC for Collectors and SDKs in the cluster, on the port they default to.
				corev1ac.ServicePort().WithName("otlp-grpc").WithPort(grpcPort).WithAppProtocol("grpc").
					WithTargetPort(intstr.FromString("otlp-grpc")).WithProtocol(corev1.ProtocolTCP)))
}

func (r *TenantReconciler) reconcileIngress(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, base *url.URL, st *status) error {
	return apply(ctx, r, st, &networkingv1.Ingress{}, desiredIngress(t, base), networkingv1ac.ExtractIngress)
}

// desiredIngress routes the tenant's host, or its path prefix on a shared host, to its Service. The
// prefix is passed on unchanged, since rewriting is specific to each Ingress controller: the server
// knows the prefix from TRACEKIT_PUBLIC_URL and answers under it.
//
// Under a prefix, MCP clients also look for the OAuth metadata at the host's root with the prefix
// inserted (RFC 8414 §3.1, RFC 9728 §3.1: /.well-known/oauth-authorization-server/t/acme), which the
// prefix alone does not route; without these paths discovery of a path-based tenant fails.
func desiredIngress(t *tracekitv1alpha1.TraceKitTenant, base *url.URL) *networkingv1ac.IngressApplyConfiguration {
	toServer := func(path string, pathType networkingv1.PathType) *networkingv1ac.HTTPIngressPathApplyConfiguration {
		return networkingv1ac.HTTPIngressPath().WithPath(path).WithPathType(pathType).
			WithBackend(networkingv1ac.IngressBackend().WithService(networkingv1ac.IngressServiceBackend().
				WithName(serverName(t)).
				WithPort(networkingv1ac.ServiceBackendPort().WithName("http"))))
	}
	paths := []*networkingv1ac.HTTPIngressPathApplyConfiguration{toServer("/", networkingv1.PathTypePrefix)}
	if p := base.Path; p != "" {
		paths = []*networkingv1ac.HTTPIngressPathApplyConfiguration{
			toServer(p, networkingv1.PathTypePrefix),
			toServer("/.well-known/oauth-authorization-server"+p, networkingv1.PathTypeExact),
			toServer("/.well-known/oauth-protected-resource"+p, networkingv1.PathTypePrefix),
		}
	}
	spec := networkingv1ac.IngressSpec().WithRules(networkingv1ac.IngressRule().
		WithHost(base.Hostname()).
		WithHTTP(networkingv1ac.HTTPIngressRuleValue().WithPaths(paths...)))
	if c := t.Spec.URL.IngressClassName; c != "" {
		spec.WithIngressClassName(c)
	}
	if s := t.Spec.URL.TLSSecretName; s != "" {
		spec.WithTLS(networkingv1ac.IngressTLS().WithHosts(base.Hostname()).WithSecretName(s))
	}
	return networkingv1ac.Ingress(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(spec)
}
