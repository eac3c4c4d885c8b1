package controllers

import (
	"context"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

func (r *TenantReconciler) reconcileNetworkPolicy(ctx context.Context, t *tracekitv1alpha1.TraceKitTenant, db dbResult, st *status) error {
	return apply(ctx, r, st, &networkingv1.NetworkPolicy{}, desiredNetworkPolicy(t, db.port, r.Options.AuthIssuer), networkingv1ac.ExtractNetworkPolicy)
}

// desiredNetworkPolicy lets traffic reach the server's HTTP and OTLP/gRPC ports only, and lets the server reach only
// DNS, its database's port and the issuer's port: a compromised tenant server cannot probe the rest
// of the cluster on other ports.
func desiredNetworkPolicy(t *tracekitv1alpha1.TraceKitTenant, dbPort int32, issuer string) *networkingv1ac.NetworkPolicyApplyConfiguration {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(proto corev1.Protocol, p int32) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(proto).WithPort(intstr.FromInt32(p))
	}
	egress := []*networkingv1ac.NetworkPolicyPortApplyConfiguration{port(udp, 53), port(tcp, 53)}
	if dbPort != 0 {
		egress = append(egress, port(tcp, dbPort))
	}
	if p := issuerPort(issuer); p != 0 && p != dbPort && p != 53 {
		egress = append(egress, port(tcp, p))
	}
	return networkingv1ac.NetworkPolicy(serverName(t), t.Namespace).
		WithLabels(objectLabels(t)).
		WithOwnerReferences(ownerRef(t)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(t))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().WithPorts(port(tcp, serverPort), port(tcp, grpcPort))).
			WithEgress(networkingv1ac.NetworkPolicyEgressRule().WithPorts(egress...)))
}

func issuerPort(issuer string) int32 {
	u, err := url.Parse(issuer)
	if err != nil || u.Host == "" {
		return 0
	}
	if p, err := strconv.ParseInt(u.Port(), 10, 32); err == nil {
		return int32(p)
	}
	if u.Scheme == "http" {
		return 80
	}
	return 443
}
