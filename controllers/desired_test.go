package controllers

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
)

// These tests cover the pure functions that build desired objects; the suite covers the cluster.

func tenantFor(name string, mutate func(*tracekitv1alpha1.TraceKitTenantSpec)) *tracekitv1alpha1.TraceKitTenant {
	t := &tracekitv1alpha1.TraceKitTenant{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", UID: "uid-1"}}
	t.Spec.DisplayName = "Team"
	if mutate != nil {
		mutate(&t.Spec)
	}
	return t
}

func TestPublicURL_CombinesTemplateWithSpec(t *testing.T) {
	for _, tc := range []struct {
		name, template string
		url            tracekitv1alpha1.TenantURL
		want, wantErr  string
	}{
		{name: "host template", template: "https://{tenant}.tracekit.example.com", want: "https://acme.tracekit.example.com"},
		{name: "path template", template: "https://tracekit.example.com/t/{tenant}/", want: "https://tracekit.example.com/t/acme"},
		{name: "spec host replaces template host and path", template: "https://tracekit.example.com/t/{tenant}",
			url: tracekitv1alpha1.TenantURL{Host: "obs.acme.io"}, want: "https://obs.acme.io"},
		{name: "spec path on template host", template: "https://tracekit.example.com/t/{tenant}",
			url: tracekitv1alpha1.TenantURL{PathPrefix: "/teams/acme"}, want: "https://tracekit.example.com/teams/acme"},
		{name: "TLS secret means https", template: "http://{tenant}.localhost:8080",
			url: tracekitv1alpha1.TenantURL{TLSSecretName: "tls"}, want: "https://acme.localhost:8080"},
		{name: "no template, spec host", url: tracekitv1alpha1.TenantURL{Host: "acme.example.com"}, want: "https://acme.example.com"},
		{name: "no template, no host", wantErr: "set spec.url.host, or start the operator with --tenant-url"},
		{name: "bad template", template: "tracekit.example.com", wantErr: "is not an http(s) URL template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := publicURL(tenantFor("acme", func(s *tracekitv1alpha1.TraceKitTenantSpec) { s.URL = tc.url }), tc.template)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("want error containing %q, got %v", tc.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
}

func TestDesiredIngress_RoutesHostOrPathPrefix(t *testing.T) {
	tenant := tenantFor("acme", nil)
	for _, tc := range []struct{ url, host, path string }{
		{"https://acme.tracekit.example.com", "acme.tracekit.example.com", "/"},
		{"https://tracekit.example.com/t/acme", "tracekit.example.com", "/t/acme"},
		{"http://acme.localhost:8080", "acme.localhost", "/"},
	} {
		u, _ := url.Parse(tc.url)
		rule := desiredIngress(tenant, u).Spec.Rules[0]
		if *rule.Host != tc.host || *rule.HTTP.Paths[0].Path != tc.path {
			t.Errorf("%s: host %s path %s, want %s %s", tc.url, *rule.Host, *rule.HTTP.Paths[0].Path, tc.host, tc.path)
		}
		if *rule.HTTP.Paths[0].Backend.Service.Name != "tracekit-acme" {
			t.Errorf("backend %s", *rule.HTTP.Paths[0].Backend.Service.Name)
		}
		// Under a prefix, the OAuth metadata at the host's root with the prefix inserted goes to the
		// tenant too, or MCP clients cannot discover its authorization server.
		var wellKnown []string
		for _, p := range rule.HTTP.Paths[1:] {
			wellKnown = append(wellKnown, string(*p.PathType)+" "+*p.Path+" → "+*p.Backend.Service.Name)
		}
		want := []string(nil)
		if tc.path != "/" {
			want = []string{"Exact /.well-known/oauth-authorization-server" + tc.path + " → tracekit-acme",
				"Prefix /.well-known/oauth-protected-resource" + tc.path + " → tracekit-acme"}
		}
		if !slices.Equal(wellKnown, want) {
			t.Errorf("%s: other paths %q, want %q", tc.url, wellKnown, want)
		}
	}
}

func TestDesiredDeployment_SuspendAndResources(t *testing.T) {
	p := deploymentParams{image: "img", publicURL: "https://x", configHash: "h"}
	suspended := desiredDeployment(tenantFor("acme", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
		s.Replicas = ptr.To[int32](3)
		s.Suspend = true
	}), p)
	if *suspended.Spec.Replicas != 0 {
		t.Errorf("suspended tenant runs %d replicas", *suspended.Spec.Replicas)
	}

	custom := desiredDeployment(tenantFor("acme", func(s *tracekitv1alpha1.TraceKitTenantSpec) {
		s.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")}}
		s.Retention = &metav1.Duration{Duration: 48 * time.Hour}
	}), p)
	c := custom.Spec.Template.Spec.Containers[0]
	if c.Resources.Requests != nil {
		t.Errorf("requests %v: the spec set none, so the default must not be mixed in", *c.Resources.Requests)
	}
	if got := (*c.Resources.Limits)[corev1.ResourceMemory]; got.String() != "1Gi" {
		t.Errorf("memory limit %s", got.String())
	}
	env := map[string]string{}
	for _, e := range c.Env {
		if e.Value != nil {
			env[*e.Name] = *e.Value
		}
	}
	if env["TRACEKIT_RETENTION"] != "48h0m0s" {
		t.Errorf("retention env %q", env["TRACEKIT_RETENTION"])
	}
	if _, ok := env["TRACEKIT_AUTH_ISSUER"]; ok {
		t.Error("no issuer configured, yet TRACEKIT_AUTH_ISSUER is set")
	}
	if custom.Spec.Template.Annotations[configHashAnnotation] != "h" {
		t.Error("config hash annotation missing from the pod template")
	}
}

func TestConfigHash_ChangesWithAnyInput(t *testing.T) {
	base := configHash(map[string][]byte{"url": []byte("a")}, map[string][]byte{"client-secret": []byte("s")}, map[string]string{"r": "[]"})
	for name, h := range map[string]string{
		"db url":      configHash(map[string][]byte{"url": []byte("b")}, map[string][]byte{"client-secret": []byte("s")}, map[string]string{"r": "[]"}),
		"secret":      configHash(map[string][]byte{"url": []byte("a")}, map[string][]byte{"client-secret": []byte("t")}, map[string]string{"r": "[]"}),
		"rules":       configHash(map[string][]byte{"url": []byte("a")}, map[string][]byte{"client-secret": []byte("s")}, map[string]string{"r": "[{}]"}),
		"moved bytes": configHash(map[string][]byte{"url": []byte("as")}, map[string][]byte{"client-secret": []byte("")}, map[string]string{"r": "[]"}),
	} {
		if h == base {
			t.Errorf("%s changed but the hash did not", name)
		}
	}
	if base != configHash(map[string][]byte{"url": []byte("a")}, map[string][]byte{"client-secret": []byte("s")}, map[string]string{"r": "[]"}) {
		t.Error("hash is not stable")
	}
}

func TestPriceOverrides_DefaultsCachedInputToInput(t *testing.T) {
	got, err := priceOverrides(map[string]tracekitv1alpha1.LLMPrice{
		"gpt-4o":          {Input: "2.5", Output: "10"},
		"claude-sonnet-4": {Input: "3", Output: "15", CachedInput: "0.30"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"claude-sonnet-4":{"input":3,"output":15,"cached_input":0.3},"gpt-4o":{"input":2.5,"output":10,"cached_input":2.5}}`
	if string(got) != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
	if _, err := priceOverrides(map[string]tracekitv1alpha1.LLMPrice{"m": {Input: "x", Output: "1"}}); err == nil {
		t.Error("a non-number price was accepted")
	}
}

func TestDesiredNetworkPolicy_OpensOnlyWhatTheServerUses(t *testing.T) {
	np := desiredNetworkPolicy(tenantFor("acme", nil), 6432, "http://dex.auth:5556/dex")
	if len(np.Spec.Ingress) != 1 || len(np.Spec.Ingress[0].Ports) != 2 || np.Spec.Ingress[0].Ports[0].Port.IntValue() != serverPort ||
		np.Spec.Ingress[0].Ports[1].Port.IntValue() != grpcPort {
		t.Errorf("ingress %+v: want the server's HTTP and OTLP/gRPC ports only", np.Spec.Ingress)
	}
	var ports []int
	for _, p := range np.Spec.Egress[0].Ports {
		ports = append(ports, p.Port.IntValue())
	}
	if want := []int{53, 53, 6432, 5556}; !slices.Equal(ports, want) {
		t.Errorf("egress ports %v, want %v", ports, want)
	}
}

func TestPostgresPort(t *testing.T) {
	for raw, want := range map[string]int32{
		"postgres://u:p@db:6543/x": 6543, "postgresql://db/x": 5432,
	} {
		if got, err := postgresPort(raw); err != nil || got != want {
			t.Errorf("%s: %d, %v", raw, got, err)
		}
	}
	for _, raw := range []string{"mysql://db/x", "sqlite:/tmp/x.db", "postgres://db:abc/x"} {
		if _, err := postgresPort(raw); err == nil {
			t.Errorf("%s accepted", raw)
		}
	}
}

func TestDexNotFound_RecognisesDexStorageError(t *testing.T) {
	if !dexNotFound(grpcstatus.Error(codes.Unknown, "not found")) || !dexNotFound(grpcstatus.Error(codes.NotFound, "x")) {
		t.Error("Dex's not-found answers were not recognised")
	}
	if dexNotFound(grpcstatus.Error(codes.Unavailable, "connection refused")) || dexNotFound(errors.New("not found?")) {
		t.Error("other errors taken for not found")
	}
}

func TestGateway_TenantRefThenIngressFieldsThenOperatorDefault(t *testing.T) {
	def := &tracekitv1alpha1.GatewayRef{Namespace: "infra", Name: "public"}
	own := &tracekitv1alpha1.GatewayRef{Name: "own"}
	for _, tc := range []struct {
		name string
		url  tracekitv1alpha1.TenantURL
		def  *tracekitv1alpha1.GatewayRef
		want *tracekitv1alpha1.GatewayRef
	}{
		{name: "nothing anywhere: Ingress"},
		{name: "operator default", def: def, want: def},
		{name: "tenant's own", url: tracekitv1alpha1.TenantURL{GatewayRef: own}, def: def, want: own},
		{name: "tenant's own without a default", url: tracekitv1alpha1.TenantURL{GatewayRef: own}, want: own},
		{name: "ingress class keeps an Ingress", url: tracekitv1alpha1.TenantURL{IngressClassName: "nginx"}, def: def},
		{name: "TLS secret keeps an Ingress", url: tracekitv1alpha1.TenantURL{TLSSecretName: "tls"}, def: def},
	} {
		r := &TenantReconciler{Options: Options{Gateway: tc.def, GatewayAPI: true}}
		got := r.gateway(tenantFor("acme", func(s *tracekitv1alpha1.TraceKitTenantSpec) { s.URL = tc.url }))
		if got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestDesiredHTTPRoute_RoutesHostOrPathPrefixThroughTheGateway(t *testing.T) {
	tenant := tenantFor("acme", nil)
	for _, tc := range []struct {
		url, host, path string
		gw              tracekitv1alpha1.GatewayRef
		wantNamespace   string
	}{
		{"https://acme.tracekit.example.com", "acme.tracekit.example.com", "/", tracekitv1alpha1.GatewayRef{Name: "public"}, "team"},
		{"https://tracekit.example.com/t/acme", "tracekit.example.com", "/t/acme",
			tracekitv1alpha1.GatewayRef{Namespace: "infra", Name: "public", SectionName: "https"}, "infra"},
	} {
		u, _ := url.Parse(tc.url)
		spec := desiredHTTPRoute(tenant, u, &tc.gw).Spec
		if len(spec.Hostnames) != 1 || string(spec.Hostnames[0]) != tc.host {
			t.Errorf("%s: hostnames %v, want [%s]", tc.url, spec.Hostnames, tc.host)
		}
		parent := spec.ParentRefs[0]
		if string(*parent.Namespace) != tc.wantNamespace || string(*parent.Name) != tc.gw.Name || string(*parent.Kind) != "Gateway" {
			t.Errorf("%s: parent %s/%s (%s), want %s/%s Gateway", tc.url, *parent.Namespace, *parent.Name, *parent.Kind, tc.wantNamespace, tc.gw.Name)
		}
		if (parent.SectionName == nil) != (tc.gw.SectionName == "") {
			t.Errorf("%s: sectionName %v, want %q", tc.url, parent.SectionName, tc.gw.SectionName)
		}
		var matches []string
		for _, m := range spec.Rules[0].Matches {
			matches = append(matches, string(*m.Path.Type)+" "+*m.Path.Value)
		}
		want := []string{"PathPrefix /"}
		if tc.path != "/" {
			want = []string{"PathPrefix " + tc.path, "Exact /.well-known/oauth-authorization-server" + tc.path,
				"PathPrefix /.well-known/oauth-protected-resource" + tc.path}
		}
		if !slices.Equal(matches, want) {
			t.Errorf("%s: matches %q, want %q", tc.url, matches, want)
		}
		backend := spec.Rules[0].BackendRefs[0]
		if string(*backend.Name) != "tracekit-acme" || *backend.Port != 80 || string(*backend.Kind) != "Service" {
			t.Errorf("%s: backend %s %s:%d, want Service tracekit-acme:80", tc.url, *backend.Kind, *backend.Name, *backend.Port)
		}
	}
}

func TestParseGateway(t *testing.T) {
	for in, want := range map[string]*tracekitv1alpha1.GatewayRef{
		"":                   nil,
		"infra/public":       {Namespace: "infra", Name: "public"},
		"infra/public/https": {Namespace: "infra", Name: "public", SectionName: "https"},
	} {
		got, err := ParseGateway(in)
		if err != nil || (got == nil) != (want == nil) || (got != nil && *got != *want) {
			t.Errorf("ParseGateway(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"public", "infra/", "/public", "a/b/c/d", "infra//https"} {
		if _, err := ParseGateway(bad); err == nil || !strings.Contains(err.Error(), "want NAMESPACE/NAME or NAMESPACE/NAME/LISTENER") {
			t.Errorf("ParseGateway(%q): want an error saying the format, got %v", bad, err)
		}
	}
}

func TestDesiredDeployment_PassesTheAttributeIndexToTheServer(t *testing.T) {
	p := deploymentParams{image: "img", publicURL: "https://x", configHash: "h"}
	envOf := func(spec func(*tracekitv1alpha1.TraceKitTenantSpec)) map[string]string {
		env := map[string]string{}
		for _, e := range desiredDeployment(tenantFor("acme", spec), p).Spec.Template.Spec.Containers[0].Env {
			if e.Value != nil {
				env[*e.Name] = *e.Value
			}
		}
		return env
	}
	env := envOf(func(s *tracekitv1alpha1.TraceKitTenantSpec) {
		s.AttributeIndex = &tracekitv1alpha1.AttributeIndex{AdditionalKeys: []string{"app.order_id", "k8s.pod.name"}, MaxValuesPerDay: ptr.To[int32](5000)}
	})
	if env["TRACEKIT_INDEXED_ATTRIBUTES"] != "app.order_id,k8s.pod.name" || env["TRACEKIT_ATTRIBUTE_VALUES_PER_DAY"] != "5000" {
		t.Errorf("attribute index env: %v", env)
	}
	if env := envOf(nil); env["TRACEKIT_INDEXED_ATTRIBUTES"] != "" || env["TRACEKIT_ATTRIBUTE_VALUES_PER_DAY"] != "" {
		t.Errorf("no attribute index in the spec, yet the env sets one: %v", env)
	}
}
