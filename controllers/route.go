package controllers

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strings"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	gatewayv1ac "sigs.k8s.io/gateway-api/applyconfiguration/apis/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// servicePort is the port of the tenant's Service (desiredService); an HTTPRoute's backend names
// ports by number.
const servicePort = 80

// gateway is the Gateway a tenant's HTTPRoute attaches to, or nil when the tenant gets an Ingress:
// its own gatewayRef, else the operator's default Gateway unless the tenant sets a field that only
// an Ingress has (so tenants that configured an Ingress keep it when a platform adds a Gateway).
func (r *TenantReconciler) gateway(t *tracekitv1alpha1.TraceKitTenant) *tracekitv1alpha1.GatewayRef {
	u := t.Spec.URL
	switch {
	case u.GatewayRef != nil:
		return u.GatewayRef
	case u.IngressClassName != "" || u.TLSSecretName != "":
		return nil
	default:
		return r.Options.Gateway
	}
}

// routeObject is the empty object of the kind that routes the tenant's URL, or nil when the tenant
// asks for an HTTPRoute in a cluster without the Gateway API.
func (r *TenantReconciler) routeObject(t *tracekitv1alpha1.TraceKitTenant) client.Object {
	meta := metav1.ObjectMeta{Namespace: t.Namespace, Name: serverName(t)}
	switch {
	case r.gateway(t) == nil:
		return &networkingv1.Ingress{ObjectMeta: meta}
	case r.Options.GatewayAPI:
		return &gatewayv1.HTTPRoute{ObjectMeta: meta}
	default:
		return nil
	}
}

// reconcileRoute routes the tenant's URL to its Service with an Ingress or an HTTPRoute, and deletes
// the other one. Without the Gateway API, a tenant that asks for an HTTPRoute keeps the Ingress it
// has, if any, and is not Ready.
func (r *TenantReconciler) reconcileRoute(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, base *url.URL, st *status) error {
	meta := metav1.ObjectMeta{Namespace: t.Namespace, Name: serverName(t)}
	gw := r.gateway(t)
	switch {
	case gw == nil:
		if err := r.reconcileIngress(ctx, t, base, st); err != nil {
			return err
		}
		if !r.Options.GatewayAPI {
			return nil
		}
		return remove(ctx, r, st, &gatewayv1.HTTPRoute{ObjectMeta: meta}, "HTTPRoute")
	case !r.Options.GatewayAPI:
		st.refuse("GatewayAPINotInstalled",
			"the tenant is to be served through Gateway %s, but the cluster did not serve HTTPRoutes (gateway.networking.k8s.io/v1) when the operator started: install the Gateway API's CRDs and restart the operator, or set spec.url.ingressClassName to use an Ingress",
			gatewayName(t, gw))
		return nil
	default:
		if err := apply(ctx, r, st, &gatewayv1.HTTPRoute{}, desiredHTTPRoute(t, base, gw), gatewayv1ac.ExtractHTTPRoute); err != nil {
			return err
		}
		return remove(ctx, r, st, &networkingv1.Ingress{ObjectMeta: meta}, "Ingress")
	}
}

// desiredHTTPRoute routes the tenant's host, or its path prefix on a shared host, to its Service,
// through the Gateway gw. As with the Ingress, the prefix is passed on unchanged, and under a prefix
// the OAuth metadata paths with the prefix inserted go to the tenant too (see desiredIngress). TLS
// is the Gateway listener's business.
func desiredHTTPRoute(t *tracekitv1alpha1.TraceKitTenant, base *url.URL, gw *tracekitv1alpha1.GatewayRef) *gatewayv1ac.HTTPRouteApplyConfiguration {
	match := func(typ gatewayv1.PathMatchType, path string) *gatewayv1ac.HTTPRouteMatchApplyConfiguration {
		return gatewayv1ac.HTTPRouteMatch().WithPath(gatewayv1ac.HTTPPathMatch().WithType(typ).WithValue(path))
	}
	matches := []*gatewayv1ac.HTTPRouteMatchApplyConfiguration{match(gatewayv1.PathMatchPathPrefix, "/")}
	if p := base.Path; p != "" {
		matches = []*gatewayv1ac.HTTPRouteMatchApplyConfiguration{
			match(gatewayv1.PathMatchPathPrefix, p),
			match(gatewayv1.PathMatchExact, "/.well-known/oauth-authorization-server"+p),
			match(gatewayv1.PathMatchPathPrefix, "/.well-known/oauth-protected-resource"+p),
		}
	}
	// parentRefs and rules are atomic lists, so the fields the API server defaults in them (group,
	// kind, namespace, weight) count as the operator's: they are spelled out, or what it applied
	// would never compare equal to what it wants and every resync would write.
	parent := gatewayv1ac.ParentReference().
		WithGroup(gatewayv1.GroupName).
		WithKind("Gateway").
		WithNamespace(gatewayv1.Namespace(gatewayNamespace(t, gw))).
		WithName(gatewayv1.ObjectName(gw.Name))
	if gw.SectionName != "" {
		parent.WithSectionName(gatewayv1.SectionName(gw.SectionName))
	}
	return gatewayv1ac.HTTPRoute(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(gatewayv1ac.HTTPRouteSpec().
			WithParentRefs(parent).
			WithHostnames(gatewayv1.Hostname(base.Hostname())).
			WithRules(gatewayv1ac.HTTPRouteRule().
				WithMatches(matches...).
				WithBackendRefs(gatewayv1ac.HTTPBackendRef().
					WithGroup("").
					WithKind("Service").
					WithName(gatewayv1.ObjectName(serverName(t))).
					WithPort(servicePort).
					WithWeight(1))))
}

func gatewayNamespace(t *tracekitv1alpha1.TraceKitTenant, gw *tracekitv1alpha1.GatewayRef) string {
	if gw.Namespace != "" {
		return gw.Namespace
	}
	return t.Namespace
}

// gatewayName is namespace/name[/listener], as in messages and the --gateway flag.
func gatewayName(t *tracekitv1alpha1.TraceKitTenant, gw *tracekitv1alpha1.GatewayRef) string {
	s := gatewayNamespace(t, gw) + "/" + gw.Name
	if gw.SectionName != "" {
		s += "/" + gw.SectionName
	}
	return s
}

// ParseGateway reads the manager's --gateway flag: NAMESPACE/NAME, or NAMESPACE/NAME/LISTENER to
// attach to one listener. Empty means no default Gateway.
func ParseGateway(s string) (*tracekitv1alpha1.GatewayRef, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || slices.Contains(parts, "") {
		return nil, fmt.Errorf("--gateway %q: want NAMESPACE/NAME or NAMESPACE/NAME/LISTENER, e.g. infra/public or infra/public/https", s)
	}
	gw := &tracekitv1alpha1.GatewayRef{Namespace: parts[0], Name: parts[1]}
	if len(parts) == 3 {
		gw.SectionName = parts[2]
	}
	return gw, nil
}
