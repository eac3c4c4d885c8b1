package controllers

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	dexapi "github.com/dexidp/dex/api/v2"
	"github.com/jackc/pgx/v5"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

const testAPIKey = "tk_0123456789abcdefghijklmnopqrstuvwxyzABCDEF"

func newTenant(ns, name, adminSecret string) *tracekitv1alpha1.TraceKitTenant {
	return &tracekitv1alpha1.TraceKitTenant{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: tracekitv1alpha1.TraceKitTenantSpec{
			DisplayName: "Team " + name,
			Database:    tracekitv1alpha1.TenantDatabase{AdminSecretRef: &tracekitv1alpha1.SecretKeyRef{Name: adminSecret}},
		},
	}
}

func gomegaFor(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(30 * time.Second)
	g.SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	return g
}

func getTenant(g Gomega, ns, name string) *tracekitv1alpha1.TraceKitTenant {
	t := &tracekitv1alpha1.TraceKitTenant{}
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, t)).To(Succeed())
	return t
}

// eventuallyCondition waits until the tenant's condition has the status and reason, and returns the
// tenant as it was then.
func eventuallyCondition(g *WithT, ns, name, condition string, status metav1.ConditionStatus, reason string) *tracekitv1alpha1.TraceKitTenant {
	var out *tracekitv1alpha1.TraceKitTenant
	g.Eventually(func(g Gomega) {
		t := getTenant(g, ns, name)
		c := meta.FindStatusCondition(t.Status.Conditions, condition)
		g.Expect(c).NotTo(BeNil(), "condition %s not set yet", condition)
		g.Expect(c.Status).To(Equal(status), "%s: %s: %s", condition, c.Reason, c.Message)
		g.Expect(c.Reason).To(Equal(reason), "%s: %s", condition, c.Message)
		g.Expect(c.ObservedGeneration).To(Equal(t.Generation))
		out = t
	}).Should(Succeed())
	return out
}

func eventuallyReady(g *WithT, ns, name string) *tracekitv1alpha1.TraceKitTenant {
	return eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionReady, metav1.ConditionTrue, "Ready")
}

func getObject(g Gomega, ns, name string, obj client.Object) {
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj)).To(Succeed())
}

// update changes a tenant's spec, retrying on conflicts with the operator's status writes.
func update(g *WithT, ns, name string, mutate func(*tracekitv1alpha1.TraceKitTenant)) {
	g.Eventually(func(g Gomega) {
		t := getTenant(g, ns, name)
		mutate(t)
		g.Expect(k8s.Update(context.Background(), t)).To(Succeed())
	}).Should(Succeed())
}

func dexClient(g Gomega, id string) *dexapi.Client {
	resp, err := dex.GetClient(context.Background(), &dexapi.GetClientReq{Id: id})
	g.Expect(err).NotTo(HaveOccurred())
	return resp.Client
}

func TestTenant_CreateMakesEveryObjectAndRecord(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("acme")
	adminURL := newAdminSecret(t, ns, "platform-db")
	createSecret(t, ns, "acme-keys", map[string]string{"ci": testAPIKey})

	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.Replicas = ptr.To[int32](2)
	tenant.Spec.URL = tracekitv1alpha1.TenantURL{Host: name + ".tracekit.example.com", TLSSecretName: "acme-tls", IngressClassName: "nginx"}
	tenant.Spec.APIKeys = &tracekitv1alpha1.APIKeyBootstrap{SecretName: "acme-keys"}
	tenant.Spec.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "checkout-errors", Service: "checkout",
		Metric: tracekitv1alpha1.MetricErrorRate, Comparison: "gt", Threshold: "0.05", Severity: "critical"}}
	tenant.Spec.LLMPriceOverrides = map[string]tracekitv1alpha1.LLMPrice{"gpt-4o": {Input: "2.00", Output: "8.00"}}
	tenant.Spec.Access = []tracekitv1alpha1.AccessRule{{Groups: []string{"platform"}, ToolGroups: []string{"traces", "debugging"}}}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())

	got := eventuallyReady(g, ns, name)
	wantURL := "https://" + name + ".tracekit.example.com"
	g.Expect(got.Status.MCPURL).To(Equal(wantURL + "/mcp"))
	g.Expect(got.Status.OAuthClientID).To(Equal("tenant-" + name))
	g.Expect(got.Status.AvailableReplicas).To(Equal(int32(2)))
	g.Expect(got.Finalizers).To(ContainElement(finalizer))
	for _, c := range []string{tracekitv1alpha1.ConditionDatabaseReady, tracekitv1alpha1.ConditionAuthClientReady, tracekitv1alpha1.ConditionAvailable} {
		g.Expect(meta.IsStatusConditionTrue(got.Status.Conditions, c)).To(BeTrue(), c)
	}

	owned := func(obj client.Object) {
		refs := obj.GetOwnerReferences()
		g.Expect(refs).To(HaveLen(1), "%T %s", obj, obj.GetName())
		g.Expect(refs[0].UID).To(Equal(got.UID))
		g.Expect(refs[0].Controller).To(Equal(ptr.To(true)))
		g.Expect(obj.GetLabels()).To(HaveKeyWithValue(tenantLabel, name))
	}
	server := "tracekit-" + name

	sa := &corev1.ServiceAccount{}
	getObject(g, ns, server, sa)
	owned(sa)
	g.Expect(sa.AutomountServiceAccountToken).To(Equal(ptr.To(false)))

	dbSecret := &corev1.Secret{}
	getObject(g, ns, server+"-db", dbSecret)
	owned(dbSecret)
	tenantURL := string(dbSecret.Data["url"])
	g.Expect(tenantURL).To(HavePrefix("postgres://" + string(dbSecret.Data["role"]) + ":"))

	oauthSecret := &corev1.Secret{}
	getObject(g, ns, server+"-oauth", oauthSecret)
	owned(oauthSecret)
	g.Expect(string(oauthSecret.Data["client-id"])).To(Equal("tenant-" + name))
	g.Expect(oauthSecret.Data["client-secret"]).To(HaveLen(43))

	cm := &corev1.ConfigMap{}
	getObject(g, ns, server+"-alert-rules", cm)
	owned(cm)
	rules, err := tenantconfig.DecodeAlertRules([]byte(cm.Data[tenantconfig.AlertRulesFile]))
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(rules).To(Equal([]tenantconfig.AlertRule{{ID: "checkout-errors", Service: "checkout", Metric: "error_rate", Comparison: ">",
		Threshold: 0.05, WindowSeconds: 300, Severity: "critical", Enabled: ptr.To(true)}}))

	dep := &appsv1.Deployment{}
	getObject(g, ns, server, dep)
	owned(dep)
	g.Expect(dep.Spec.Replicas).To(Equal(ptr.To[int32](2)))
	g.Expect(dep.Spec.Strategy.RollingUpdate.MaxUnavailable.IntValue()).To(Equal(0))
	pod := dep.Spec.Template
	g.Expect(pod.Annotations).To(HaveKey(configHashAnnotation))
	g.Expect(pod.Spec.ServiceAccountName).To(Equal(server))
	g.Expect(*pod.Spec.SecurityContext.RunAsNonRoot).To(BeTrue())
	c := pod.Spec.Containers[0]
	g.Expect(c.Image).To(Equal(testImage))
	g.Expect(c.Args).To(Equal([]string{"server", "--addr=:8080", "--grpc-addr=:4317"}))
	g.Expect(c.Ports).To(ConsistOf(HaveField("ContainerPort", int32(8080)), And(HaveField("Name", "otlp-grpc"), HaveField("ContainerPort", int32(4317)))))
	g.Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
	g.Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
	g.Expect(*c.SecurityContext.RunAsUser).To(Equal(int64(65532)))
	g.Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
	g.Expect(*c.SecurityContext.AllowPrivilegeEscalation).To(BeFalse())
	g.Expect(c.Resources.Limits.Memory().String()).To(Equal("512Mi"))
	g.Expect(c.VolumeMounts).To(ContainElement(HaveField("MountPath", "/tmp")))
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
	}
	g.Expect(env["TRACEKIT_TENANT"].Value).To(Equal(name))
	g.Expect(env["TRACEKIT_PUBLIC_URL"].Value).To(Equal(wantURL))
	g.Expect(env["TRACEKIT_AUTH_ISSUER"].Value).To(Equal(testIssuer))
	g.Expect(env["TRACEKIT_ALERT_RULES"].Value).To(Equal("/etc/tracekit/alert-rules.json"))
	g.Expect(env["TRACEKIT_DATABASE_URL"].ValueFrom.SecretKeyRef.Name).To(Equal(server + "-db"))
	g.Expect(env["TRACEKIT_OAUTH_CLIENT_ID"].ValueFrom.SecretKeyRef.Name).To(Equal(server + "-oauth"))
	g.Expect(env["TRACEKIT_OAUTH_CLIENT_SECRET"].ValueFrom.SecretKeyRef.Key).To(Equal("client-secret"))

	svc := &corev1.Service{}
	getObject(g, ns, server, svc)
	owned(svc)
	g.Expect(svc.Spec.Selector).To(Equal(selectorLabels(got)))
	g.Expect(svc.Spec.Ports).To(ConsistOf(
		And(HaveField("Name", "http"), HaveField("Port", int32(80)), HaveField("TargetPort", intstr.FromString("http"))),
		And(HaveField("Name", "otlp-grpc"), HaveField("Port", int32(4317)), HaveField("TargetPort", intstr.FromString("otlp-grpc")),
			HaveField("AppProtocol", ptr.To("grpc")))))

	ing := &networkingv1.Ingress{}
	getObject(g, ns, server, ing)
	owned(ing)
	g.Expect(*ing.Spec.IngressClassName).To(Equal("nginx"))
	g.Expect(ing.Spec.Rules[0].Host).To(Equal(name + ".tracekit.example.com"))
	g.Expect(ing.Spec.Rules[0].HTTP.Paths[0].Path).To(Equal("/"))
	g.Expect(ing.Spec.TLS[0].SecretName).To(Equal("acme-tls"))

	np := &networkingv1.NetworkPolicy{}
	getObject(g, ns, server, np)
	owned(np)
	var ingressPorts []int
	for _, p := range np.Spec.Ingress[0].Ports {
		ingressPorts = append(ingressPorts, p.Port.IntValue())
	}
	g.Expect(ingressPorts).To(ConsistOf(8080, 4317))
	var egressPorts []int
	for _, p := range np.Spec.Egress[0].Ports {
		egressPorts = append(egressPorts, p.Port.IntValue())
	}
	g.Expect(egressPorts).To(ConsistOf(53, 53, 5432, 443))

	pdb := &policyv1.PodDisruptionBudget{}
	getObject(g, ns, server, pdb)
	owned(pdb)
	g.Expect(pdb.Spec.MaxUnavailable.IntValue()).To(Equal(1))

	// Outside the cluster: the Dex client, and the tenant's role, row, prices and key in PostgreSQL.
	dc := dexClient(g, "tenant-"+name)
	g.Expect(dc.Secret).To(Equal(string(oauthSecret.Data["client-secret"])))
	g.Expect(dc.RedirectUris).To(Equal([]string{wantURL + "/mcp/callback"}))
	g.Expect(dc.TrustedPeers).To(BeEmpty())
	g.Expect(dc.Public).To(BeFalse())

	asTenant, err := store.Open(ctx, tenantURL)
	g.Expect(err).NotTo(HaveOccurred())
	defer asTenant.Close()
	g.Expect(asTenant.CurrentTenant(ctx)).To(Equal(name), "the Secret's URL logs in as the tenant's own role")
	admin, err := store.Open(ctx, adminURL)
	g.Expect(err).NotTo(HaveOccurred())
	defer admin.Close()
	key, err := admin.LookupAPIKey(ctx, testAPIKey)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(key.TenantID).To(Equal(name))
	g.Expect(key.Name).To(Equal("ci"))
	prices, err := admin.ForTenant(name).PriceOverrides(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(prices).To(MatchJSON(`{"gpt-4o": {"input": 2, "output": 8, "cached_input": 2}}`))
	access, display, err := admin.TenantAccess(ctx, name)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(display).To(Equal(tenant.Spec.DisplayName))
	g.Expect(access).To(MatchJSON(`[{"groups": ["platform"], "toolGroups": ["traces", "debugging"]}]`), "what tracekit auth admits company sign-ins by")
}

func TestTenant_UpdatesAreReflected(t *testing.T) {
	g := gomegaFor(t)
	ns, name := newNamespace(t), uniqueName("beta")
	newAdminSecret(t, ns, "platform-db")
	g.Expect(k8s.Create(context.Background(), newTenant(ns, name, "platform-db"))).To(Succeed())
	before := eventuallyReady(g, ns, name)
	g.Expect(before.Status.MCPURL).To(Equal("https://tracekit.example.com/t/"+name+"/mcp"), "the operator's template")
	server := "tracekit-" + name
	dep := &appsv1.Deployment{}
	getObject(g, ns, server, dep)
	hashBefore := dep.Spec.Template.Annotations[configHashAnnotation]
	g.Expect(k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: server}, &policyv1.PodDisruptionBudget{})).
		To(WithTransform(apierrors.IsNotFound, BeTrue()), "no PodDisruptionBudget for one replica")

	// The authorization server trusts each MCP client registered for the tenant; the operator's
	// updates must keep that.
	mcpClient := "tenant-" + name + ".mcp.abc.def"
	_, err := dex.UpdateClient(context.Background(), &dexapi.UpdateClientReq{Id: "tenant-" + name, TrustedPeers: []string{mcpClient}})
	g.Expect(err).NotTo(HaveOccurred())

	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) {
		tt.Spec.Replicas = ptr.To[int32](3)
		tt.Spec.URL = tracekitv1alpha1.TenantURL{Host: "observability.example.com", PathPrefix: "/teams/" + name}
		tt.Spec.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "slow", Service: "api", Metric: tracekitv1alpha1.MetricLatencyP99,
			Comparison: "gt", Threshold: "800", Window: &metav1.Duration{Duration: 10 * time.Minute}}}
		tt.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}}
	})
	wantURL := "https://observability.example.com/teams/" + name
	g.Eventually(func(g Gomega) {
		tt := getTenant(g, ns, name)
		g.Expect(tt.Status.MCPURL).To(Equal(wantURL + "/mcp"))
		g.Expect(meta.IsStatusConditionTrue(tt.Status.Conditions, tracekitv1alpha1.ConditionReady)).To(BeTrue())
		g.Expect(tt.Status.AvailableReplicas).To(Equal(int32(3)))

		d := &appsv1.Deployment{}
		getObject(g, ns, server, d)
		g.Expect(*d.Spec.Replicas).To(Equal(int32(3)))
		g.Expect(d.Spec.Template.Annotations[configHashAnnotation]).NotTo(Equal(hashBefore), "new alert rules roll the pods")
		g.Expect(d.Spec.Template.Spec.Containers[0].Env).To(ContainElement(corev1.EnvVar{Name: "TRACEKIT_PUBLIC_URL", Value: wantURL}))
		g.Expect(d.Spec.Template.Spec.Containers[0].Resources.Requests.Cpu().String()).To(Equal("250m"))

		ing := &networkingv1.Ingress{}
		getObject(g, ns, server, ing)
		g.Expect(ing.Spec.Rules[0].Host).To(Equal("observability.example.com"))
		g.Expect(ing.Spec.Rules[0].HTTP.Paths[0].Path).To(Equal("/teams/" + name))

		cm := &corev1.ConfigMap{}
		getObject(g, ns, server+"-alert-rules", cm)
		g.Expect(cm.Data[tenantconfig.AlertRulesFile]).To(ContainSubstring(`"window_seconds": 600`))
		g.Expect(cm.Data[tenantconfig.AlertRulesFile]).To(ContainSubstring(`"metric": "latency_p99_ms"`))

		getObject(g, ns, server, &policyv1.PodDisruptionBudget{})
		dc := dexClient(g, "tenant-"+name)
		g.Expect(dc.RedirectUris).To(Equal([]string{wantURL + "/mcp/callback"}))
		g.Expect(dc.TrustedPeers).To(Equal([]string{mcpClient}))
	}).Should(Succeed())

	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) { tt.Spec.Replicas = ptr.To[int32](1) })
	g.Eventually(func() bool {
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: server}, &policyv1.PodDisruptionBudget{})
		return apierrors.IsNotFound(err)
	}).Should(BeTrue(), "the PodDisruptionBudget goes with the second replica")
}

func TestTenant_DriftIsRepaired(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("drift")
	newAdminSecret(t, ns, "platform-db")
	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	eventuallyReady(g, ns, name)
	server := "tracekit-" + name

	// Someone edits the Deployment by hand, as `kubectl edit` would.
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		getObject(g, ns, server, d)
		d.Spec.Replicas = ptr.To[int32](7)
		d.Spec.Template.Spec.Containers[0].Image = "attacker/image:latest"
		g.Expect(k8s.Update(ctx, d, client.FieldOwner("kubectl-edit"))).To(Succeed())
	}).Should(Succeed())
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		getObject(g, ns, server, d)
		g.Expect(*d.Spec.Replicas).To(Equal(int32(1)))
		g.Expect(d.Spec.Template.Spec.Containers[0].Image).To(Equal(testImage))
	}).Should(Succeed())

	// Someone deletes the Deployment and the Service.
	dep := &appsv1.Deployment{}
	getObject(g, ns, server, dep)
	g.Expect(k8s.Delete(ctx, dep)).To(Succeed())
	g.Expect(k8s.Delete(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: server}})).To(Succeed())
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		getObject(g, ns, server, d)
		g.Expect(d.UID).NotTo(Equal(dep.UID))
		getObject(g, ns, server, &corev1.Service{})
	}).Should(Succeed())
	eventuallyReady(g, ns, name)

	// Someone deletes the OAuth Secret: a new client secret is generated and Dex gets it.
	old := &corev1.Secret{}
	getObject(g, ns, server+"-oauth", old)
	g.Expect(k8s.Delete(ctx, old)).To(Succeed())
	g.Eventually(func(g Gomega) {
		s := &corev1.Secret{}
		getObject(g, ns, server+"-oauth", s)
		g.Expect(s.UID).NotTo(Equal(old.UID))
		g.Expect(dexClient(g, "tenant-"+name).Secret).To(Equal(string(s.Data["client-secret"])))
	}).Should(Succeed())
}

func TestTenant_DeleteRemovesDexClientAndDatabaseRole(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("gone")
	adminURL := newAdminSecret(t, ns, "platform-db")
	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	eventuallyReady(g, ns, name)
	dbSecret := &corev1.Secret{}
	getObject(g, ns, "tracekit-"+name+"-db", dbSecret)
	role := string(dbSecret.Data["role"])
	g.Expect(roleExists(t, adminURL, role)).To(BeTrue())

	g.Expect(k8s.Delete(ctx, &tracekitv1alpha1.TraceKitTenant{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}})).To(Succeed())
	g.Eventually(func() bool {
		err := k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &tracekitv1alpha1.TraceKitTenant{})
		return apierrors.IsNotFound(err)
	}).Should(BeTrue(), "the finalizer is removed once the external records are gone")

	_, err := dex.GetClient(ctx, &dexapi.GetClientReq{Id: "tenant-" + name})
	g.Expect(err).To(MatchError(ContainSubstring("not found")))
	g.Expect(roleExists(t, adminURL, role)).To(BeFalse())
	admin, err := store.Open(ctx, adminURL)
	g.Expect(err).NotTo(HaveOccurred())
	defer admin.Close()
	tenants, err := admin.ListTenants(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	g.Expect(tenants).To(BeEmpty())
}

func roleExists(t *testing.T, dsn, role string) bool {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_roles WHERE rolname = $1", role).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestTenant_InvalidSpecsAreRefusedWithWhatToFix(t *testing.T) {
	ns := newNamespace(t)
	for _, tc := range []struct {
		name    string
		tenant  string
		mutate  func(*tracekitv1alpha1.TraceKitTenantSpec)
		message string
	}{
		{"name too long", strings.Repeat("a", 51), nil, "metadata.name is the tenant id: use 1-50 lowercase letters"},
		{"error rate above one", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "e", Service: "api", Metric: tracekitv1alpha1.MetricErrorRate, Comparison: "gt", Threshold: "5"}}
		}, "error_rate is a fraction: use a threshold between 0 and 1 (0.05 means 5%)"},
		{"unknown metric", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "e", Service: "api", Metric: "cpu", Comparison: "gt", Threshold: "5"}}
		}, `supported values: "error_rate", "latency_p50"`},
		{"window too long", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "e", Service: "api", Metric: tracekitv1alpha1.MetricThroughput, Comparison: "lt",
				Threshold: "1", Window: &metav1.Duration{Duration: 48 * time.Hour}}}
		}, "window must be between 1m and 24h, e.g. 5m"},
		{"retention too short", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.Retention = &metav1.Duration{Duration: 10 * time.Minute}
		}, "retention must be between 1h and 8760h (one year), e.g. 720h for 30 days"},
		{"model name with spaces", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.LLMPriceOverrides = map[string]tracekitv1alpha1.LLMPrice{"gpt 4o": {Input: "1", Output: "2"}}
		}, "llmPriceOverrides: model names are 1-128 characters"},
		{"access rule without groups or users", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.Access = []tracekitv1alpha1.AccessRule{{ToolGroups: []string{"traces"}}}
		}, "an access rule admits groups or users"},
		{"access rule with an unknown tool group", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.Access = []tracekitv1alpha1.AccessRule{{Groups: []string{"sre"}, ToolGroups: []string{"shell"}}}
		}, `supported values: "traces", "metrics", "llm", "debugging"`},
		{"resource claims", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.Resources = &corev1.ResourceRequirements{Claims: []corev1.ResourceClaim{{Name: "gpu"}}}
		}, "resources.claims is not supported"},
		{"zero replicas", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) { s.Replicas = ptr.To[int32](0) },
			"should be greater than or equal to 1"},
		{"no admin secret", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) { s.Database.AdminSecretRef.Name = "" },
			"spec.database.adminSecretRef.name"},
		{"database name and admin secret", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) { s.Database.Name = "pg-1" },
			"spec.database: set name (a TraceKitDatabase) or adminSecretRef (a Secret in this namespace), not both"},
		{"gateway with a TLS secret", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.URL = tracekitv1alpha1.TenantURL{GatewayRef: &tracekitv1alpha1.GatewayRef{Name: "public"}, TLSSecretName: "acme-tls"}
		}, "gatewayRef and tlsSecretName exclude each other: with a Gateway, TLS is terminated by its listener"},
		{"gateway with an ingress class", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.URL = tracekitv1alpha1.TenantURL{GatewayRef: &tracekitv1alpha1.GatewayRef{Name: "public"}, IngressClassName: "nginx"}
		}, "gatewayRef and ingressClassName exclude each other"},
		{"reserved attribute key", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.AttributeIndex = &tracekitv1alpha1.AttributeIndex{AdditionalKeys: []string{"app.order_id", "tracekit.linked_trace"}}
		}, "additionalKeys: tracekit.linked_trace is reserved"},
		{"gateway without a name", "", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
			s.URL = tracekitv1alpha1.TenantURL{GatewayRef: &tracekitv1alpha1.GatewayRef{Namespace: "infra"}}
		}, "spec.url.gatewayRef.name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := tc.tenant
			if name == "" {
				name = uniqueName("invalid")
			}
			tenant := newTenant(ns, name, "platform-db")
			if tc.mutate != nil {
				tc.mutate(&tenant.Spec)
			}
			err := k8s.Create(context.Background(), tenant)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want the API server to refuse the spec as invalid, got %v", err)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("error %q does not say %q", err, tc.message)
			}
		})
	}
}

func TestTenant_DatabaseOutageShowsInConditionsAndRecovers(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("outage")

	dsn, err := url.Parse(storetest.PostgresDSN(t))
	g.Expect(err).NotTo(HaveOccurred())
	proxy := newTCPProxy(t, dsn.Host)
	dsn.Host = proxy.addr
	createSecret(t, ns, "platform-db", map[string]string{"url": dsn.String()})

	// Created while the database is down.
	proxy.down()
	g.Expect(k8s.Create(ctx, newTenant(ns, name, "platform-db"))).To(Succeed())
	tt := eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "DatabaseUnreachable")
	g.Expect(meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionDatabaseReady).Message).
		To(ContainSubstring("cannot reach the database of Secret platform-db"))
	ready := meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady)
	g.Expect(ready.Status).To(Equal(metav1.ConditionFalse))
	g.Expect(ready.Reason).To(Equal("DatabaseUnreachable"))
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: ns, Name: "tracekit-" + name}, &appsv1.Deployment{})).
		To(WithTransform(apierrors.IsNotFound, BeTrue()), "no server without database credentials")

	proxy.up()
	eventuallyReady(g, ns, name)

	// Goes down while Ready: the periodic check notices, then it recovers.
	proxy.down()
	eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionReady, metav1.ConditionFalse, "DatabaseUnreachable")
	proxy.up()
	eventuallyReady(g, ns, name)
}

// tcpProxy forwards a loopback port to PostgreSQL and can be taken down and brought back on the same
// port, which is what a database outage looks like to the operator.
type tcpProxy struct {
	t      *testing.T
	target string
	addr   string
	mu     sync.Mutex
	lis    net.Listener
	conns  []net.Conn
}

func newTCPProxy(t *testing.T, target string) *tcpProxy {
	p := &tcpProxy{t: t, target: target}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = lis.Addr().String()
	p.serve(lis)
	t.Cleanup(p.down)
	return p
}

func (p *tcpProxy) serve(lis net.Listener) {
	p.mu.Lock()
	p.lis = lis
	p.mu.Unlock()
	go func() {
		for {
			in, err := lis.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, in, out)
			p.mu.Unlock()
			go pipe(in, out)
			go pipe(out, in)
		}
	}()
}

func pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// down refuses new connections and cuts the open ones.
func (p *tcpProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lis != nil {
		p.lis.Close()
		p.lis = nil
	}
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) up() {
	lis, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serve(lis)
}

func TestTenant_ResyncWithNothingChangedWritesNothing(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("idem")
	newAdminSecret(t, ns, "platform-db")
	createSecret(t, ns, "keys", map[string]string{"ci": testAPIKey})
	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.Replicas = ptr.To[int32](2)
	tenant.Spec.APIKeys = &tracekitv1alpha1.APIKeyBootstrap{SecretName: "keys"}
	tenant.Spec.AlertRules = []tracekitv1alpha1.AlertRule{{Name: "slow", Service: "api", Metric: tracekitv1alpha1.MetricLatencyP95, Comparison: "gt", Threshold: "300"}}
	tenant.Spec.Resources = &corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("0.5Gi")}}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())
	eventuallyReady(g, ns, name)
	expectResyncWritesNothing(g, ns, name)
}

// expectResyncWritesNothing reconciles the tenant again and again until the manager's own
// reconciles have settled, and then wants no write at all: to the API server, events, or Dex.
func expectResyncWritesNothing(g *WithT, ns, name string) {
	ctx := context.Background()
	// The same reconciler over a client that counts writes; the manager's informers feed both.
	counting := &countingClient{Client: reconciler.Client}
	events := &countingRecorder{EventRecorder: reconciler.Recorder}
	oauth := &countingOAuth{OAuthClients: reconciler.OAuth}
	r := *reconciler
	r.Client, r.Recorder, r.OAuth = counting, events, oauth
	req := ctrl.Request{NamespacedName: types.NamespacedName{Namespace: ns, Name: name}}
	g.Eventually(func(g Gomega) {
		// The manager's own reconciles may still be settling (e.g. the status write after the
		// Deployment became available); once they are, a resync must not write at all.
		counting.writes.Store(0)
		events.n.Store(0)
		oauth.writes.Store(0)
		for range 3 {
			_, err := r.Reconcile(ctx, req)
			g.Expect(err).NotTo(HaveOccurred())
		}
		g.Expect(counting.writes.Load()).To(BeZero(), "API writes")
		g.Expect(events.n.Load()).To(BeZero(), "events")
		g.Expect(oauth.writes.Load()).To(BeZero(), "Dex writes")
	}).Should(Succeed())
}

func TestTenant_NameTakenInAnotherNamespaceIsRefused(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	name := uniqueName("shared")
	first, second := newNamespace(t), newNamespace(t)
	newAdminSecret(t, first, "platform-db")
	newAdminSecret(t, second, "platform-db")
	g.Expect(k8s.Create(ctx, newTenant(first, name, "platform-db"))).To(Succeed())
	eventuallyReady(g, first, name)
	secretBefore := dexClient(g, "tenant-"+name).Secret

	g.Expect(k8s.Create(ctx, newTenant(second, name, "platform-db"))).To(Succeed())
	tt := eventuallyCondition(g, second, name, tracekitv1alpha1.ConditionReady, metav1.ConditionFalse, "TenantIDTaken")
	g.Expect(meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady).Message).To(ContainSubstring(first + "/" + name))
	g.Expect(tt.Finalizers).To(BeEmpty())
	g.Expect(k8s.Get(ctx, types.NamespacedName{Namespace: second, Name: "tracekit-" + name + "-oauth"}, &corev1.Secret{})).
		To(WithTransform(apierrors.IsNotFound, BeTrue()))

	g.Expect(k8s.Delete(ctx, tt)).To(Succeed())
	g.Eventually(func() bool {
		return apierrors.IsNotFound(k8s.Get(ctx, types.NamespacedName{Namespace: second, Name: name}, &tracekitv1alpha1.TraceKitTenant{}))
	}).Should(BeTrue())
	g.Expect(dexClient(g, "tenant-"+name).Secret).To(Equal(secretBefore), "the holder's client is untouched")
}

func TestTenant_SuspendScalesToZeroAndKeepsRecords(t *testing.T) {
	g := gomegaFor(t)
	ns, name := newNamespace(t), uniqueName("sleepy")
	newAdminSecret(t, ns, "platform-db")
	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.Replicas = ptr.To[int32](2)
	g.Expect(k8s.Create(context.Background(), tenant)).To(Succeed())
	eventuallyReady(g, ns, name)

	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) { tt.Spec.Suspend = true })
	eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionReady, metav1.ConditionFalse, "Suspended")
	g.Eventually(func(g Gomega) {
		d := &appsv1.Deployment{}
		getObject(g, ns, "tracekit-"+name, d)
		g.Expect(*d.Spec.Replicas).To(BeZero())
		err := k8s.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: "tracekit-" + name}, &policyv1.PodDisruptionBudget{})
		g.Expect(apierrors.IsNotFound(err)).To(BeTrue())
	}).Should(Succeed())
	g.Expect(dexClient(g, "tenant-"+name).Id).To(Equal("tenant-" + name))

	update(g, ns, name, func(tt *tracekitv1alpha1.TraceKitTenant) { tt.Spec.Suspend = false })
	eventuallyReady(g, ns, name)
}

func TestTenant_MissingSecretsSayWhatToCreate(t *testing.T) {
	g := gomegaFor(t)
	ctx := context.Background()
	ns, name := newNamespace(t), uniqueName("nosecret")
	tenant := newTenant(ns, name, "platform-db")
	tenant.Spec.APIKeys = &tracekitv1alpha1.APIKeyBootstrap{SecretName: "keys"}
	g.Expect(k8s.Create(ctx, tenant)).To(Succeed())

	tt := eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "AdminSecretNotFound")
	g.Expect(meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionDatabaseReady).Message).
		To(ContainSubstring(fmt.Sprintf("Secret platform-db in namespace %s needs key \"url\"", ns)))

	newAdminSecret(t, ns, "platform-db")
	eventuallyCondition(g, ns, name, tracekitv1alpha1.ConditionDatabaseReady, metav1.ConditionFalse, "APIKeysSecretNotFound")

	createSecret(t, ns, "keys", map[string]string{"ci": testAPIKey})
	eventuallyReady(g, ns, name)
}
