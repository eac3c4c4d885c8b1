package controllers

import (
	"context"
	"os"
	"testing"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

func TestTenant_GatewayRefMakesAnHTTPRouteInsteadOfTheIngress(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("gw")
	newAdminSecret(t, ns, "platform-db")
	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	tenant := eventuallyReady(g, ns, name)
	server := "tracekit-" + name
	getObject(g, ns, server, &networkingv1.Ingress{})

	// Path-based, on the operator's template: the Gateway routes the prefix, unchanged.
	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) {
		tt.Spec.URL.GatewayRef = &tracekitv1alpha1.GatewayRef{Name: "public", Namespace: "infra", SectionName: "https"}
	})
	route := &gatewayv1.HTTPRoute{}
	g.Eventually(func(g Gomega) {
		getObject(g, ns, server, route)
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: server}, &networkingv1.Ingress{})).
			To(WithTransform(apierrors.IsNotFound, BeTrue()), "the Ingress goes when the HTTPRoute comes")
	}).Should(Succeed())
	g.Expect(metav1.IsControlledBy(route, tenant)).To(BeTrue())
	g.Expect(route.Labels).To(HaveKeyWithValue(tenantLabel, name))
	g.Expect(route.Spec.ParentRefs).To(ConsistOf(gatewayv1.ParentReference{
		Group: ptr.To[gatewayv1.Group](gatewayv1.GroupName), Kind: ptr.To[gatewayv1.Kind]("Gateway"),
		Namespace: ptr.To[gatewayv1.Namespace]("infra"), Name: "public", SectionName: ptr.To[gatewayv1.SectionName]("https"),
	}))
	g.Expect(route.Spec.Hostnames).To(Equal([]gatewayv1.Hostname{"tracekit.example.com"}))
	g.Expect(route.Spec.Rules).To(HaveLen(1))
	rule := route.Spec.Rules[0]
	g.Expect(rule.Matches).NotTo(BeEmpty())
	g.Expect(*rule.Matches[0].Path.Type).To(Equal(gatewayv1.PathMatchPathPrefix))
	g.Expect(*rule.Matches[0].Path.Value).To(Equal("/t/" + name))
	g.Expect(rule.BackendRefs).To(HaveLen(1))
	g.Expect(rule.BackendRefs[0].Name).To(Equal(gatewayv1.ObjectName(server)))
	g.Expect(rule.BackendRefs[0].Port).To(Equal(ptr.To[gatewayv1.PortNumber](80)))
	g.Expect(eventuallyReady(g, ns, name).Status.MCPURL).To(Equal("https://tracekit.example.com/t/" + name + "/mcp"))
	expectResyncWritesNothing(g, ns, name)

	// Host-based, on the tenant's namespace's Gateway.
	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) {
		tt.Spec.URL = tracekitv1alpha1.TenantURL{Host: name + ".tracekit.example.com", GatewayRef: &tracekitv1alpha1.GatewayRef{Name: "own"}}
	})
	g.Eventually(func(g Gomega) {
		getObject(g, ns, server, route)
		g.Expect(route.Spec.Hostnames).To(Equal([]gatewayv1.Hostname{gatewayv1.Hostname(name + ".tracekit.example.com")}))
		g.Expect(route.Spec.Rules[0].Matches).To(HaveLen(1))
		g.Expect(*route.Spec.Rules[0].Matches[0].Path.Value).To(Equal("/"))
		g.Expect(route.Spec.ParentRefs).To(HaveLen(1))
		g.Expect(route.Spec.ParentRefs[0].Name).To(Equal(gatewayv1.ObjectName("own")))
		g.Expect(*route.Spec.ParentRefs[0].Namespace).To(Equal(gatewayv1.Namespace(ns)))
		g.Expect(route.Spec.ParentRefs[0].SectionName).To(BeNil())
	}).Should(Succeed())

	// Edited by hand, then deleted: repaired both times.
	g.Eventually(func(g Gomega) {
		getObject(g, ns, server, route)
		route.Spec.Hostnames = []gatewayv1.Hostname{"attacker.example.com"}
		g.Expect(k8s.Update(ctx, route, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		getObject(g, ns, server, route)
		g.Expect(route.Spec.Hostnames).To(Equal([]gatewayv1.Hostname{gatewayv1.Hostname(name + ".tracekit.example.com")}))
	}).Should(Succeed())
	old := route.UID
	g.Expect(k8s.Delete(ctx, route)).To(Succeed())
	g.Eventually(func(g Gomega) {
		getObject(g, ns, server, route)
		g.Expect(route.UID).NotTo(Equal(old))
	}).Should(Succeed())

	// And back to an Ingress.
	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) {
		tt.Spec.URL = tracekitv1alpha1.TenantURL{Host: name + ".tracekit.example.com", IngressClassName: "nginx"}
	})
	g.Eventually(func(g Gomega) {
		ing := &networkingv1.Ingress{}
		getObject(g, ns, server, ing)
		g.Expect(*ing.Spec.IngressClassName).To(Equal("nginx"))
		g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: server}, &gatewayv1.HTTPRoute{})).
			To(WithTransform(apierrors.IsNotFound, BeTrue()), "the HTTPRoute goes when the Ingress comes")
	}).Should(Succeed())
	eventuallyReady(g, ns, name)
}

// A cluster without the Gateway API: the manager starts, watches no HTTPRoutes, gives Ingresses to
// tenants that ask for them, and says what to do to tenants that would get an HTTPRoute. It has an
// API server of its own, since the suite's serves HTTPRoutes.
func TestManager_StartsWithoutGatewayAPI(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	env := &envtest.Environment{CRDDirectoryPaths: []string{tracekitCRDs}, ErrorIfCRDPathMissing: true, Scheme: testScheme}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("start envtest (KUBEBUILDER_ASSETS=%s): %v", os.Getenv("KUBEBUILDER_ASSETS"), err)
	}
	defer env.Stop()

	installed, err := GatewayAPIInstalled(cfg)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(installed).To(BeFalse())
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 testScheme,
		Cache:                  CacheOptions(installed),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		// The suite's manager runs a controller of the same name in this process.
		Controller: config.Controller{SkipNameValidation: ptr.To(true)},
	})
	g.Expect(err).NotTo(HaveOccurred())
	gw, err := ParseGateway("infra/public")
	g.Expect(err).NotTo(HaveOccurred())
	dbs := NewDatabases()
	defer dbs.Close()
	r := &TenantReconciler{
		Client:    mgr.GetClient(),
		Scheme:    mgr.GetScheme(),
		Recorder:  mgr.GetEventRecorder("tracekit-operator"),
		OAuth:     reconciler.OAuth,
		Databases: dbs,
		Options:   Options{ServerImage: testImage, TenantURL: "https://{tenant}.tracekit.example.com", Gateway: gw, GatewayAPI: installed},
	}
	g.Expect(r.SetupWithManager(mgr)).To(Succeed())
	mctx, cancel := context.WithCancel(ctx)
	stopped := make(chan error, 1)
	go func() { stopped <- mgr.Start(mctx) }()
	defer func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("manager: %v", err)
		}
	}()

	c, err := client.New(cfg, client.Options{Scheme: testScheme})
	g.Expect(err).NotTo(HaveOccurred())
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tk-test-"}}
	g.Expect(c.Create(ctx, nsObj)).To(Succeed())
	ns := nsObj.Name
	readyOf := func(g Gomega, name string) *metav1.Condition {
		tt := &tracekitv1alpha1.TraceKitTenant{}
		g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, tt)).To(Succeed())
		cond := meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady)
		g.Expect(cond).NotTo(BeNil())
		return cond
	}

	// The operator's default Gateway applies, but there is no Gateway API.
	viaGateway := uniqueName("nogw")
	g.Expect(c.Create(ctx, newTenant(ns, viaGateway, "platform-db"))).To(Succeed())
	g.Eventually(func(g Gomega) {
		cond := readyOf(g, viaGateway)
		g.Expect(cond.Reason).To(Equal("GatewayAPINotInstalled"), cond.Message)
		g.Expect(cond.Message).To(ContainSubstring("Gateway infra/public"))
		g.Expect(cond.Message).To(ContainSubstring("install the Gateway API's CRDs and restart the operator"))
	}).Should(Succeed())
	g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tracekit-" + viaGateway}, &networkingv1.Ingress{})).
		To(WithTransform(apierrors.IsNotFound, BeTrue()))

	// An Ingress field asks for an Ingress, default Gateway or not.
	viaIngress := uniqueName("noingress")
	tenant := newTenant(ns, viaIngress, "platform-db")
	tenant.Spec.URL.IngressClassName = "nginx"
	g.Expect(c.Create(ctx, tenant)).To(Succeed())
	g.Eventually(func(g Gomega) {
		g.Expect(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tracekit-" + viaIngress}, &networkingv1.Ingress{})).To(Succeed())
		g.Expect(readyOf(g, viaIngress).Reason).To(Equal("AdminSecretNotFound"))
	}).Should(Succeed())
	select {
	case err := <-stopped:
		stopped <- err // for the deferred check
		t.Fatal("the manager stopped while the test ran")
	default:
	}
}
