// Package e2e runs the platform's binaries together: envtest's kube-apiserver, `tracekit auth`,
// `tracekit manager` with the RBAC of config/, and `tracekit server` started with exactly what the
// controller wrote into each tenant's Deployment.
package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	mcpauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	tracekitv1alpha1 "github.com/tracekit/tracekit/api/v1alpha1"
	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/internal/clustertest"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// platform is what every test here starts: the cluster with the operator's install applied,
// `tracekit auth`, `tracekit manager`, and two tenants, each served by the `tracekit server` its
// Deployment describes behind a stand-in for the Ingress controller. acme has a host-based URL,
// beta a path-based one on its own host (spec.url.pathPrefix); both are https, terminated at the
// Ingress, as in production.
type platform struct {
	tenants map[string]*tenant
	ingress *ingress
}

type tenant struct {
	name, key string
	// mcpURL is status.mcpURL, what the team pastes into its assistant.
	mcpURL string
	// service is the one service whose span the tenant sent.
	service string
}

func startPlatform(t *testing.T) *platform {
	t.Helper()
	ctx := t.Context()
	build := clustertest.BuildTracekit(t)
	c, adminKubeconfig, managerKubeconfig := startCluster(t)
	k8s := c.Client
	tracekit := build()

	// The operator's install, as a user applies it: CRD, RBAC, namespace (the manager Deployment in
	// it never runs here; the manager runs below as its ServiceAccount).
	c.Kubectl(t, adminKubeconfig, "apply", "-k", filepath.Join(clustertest.RepoRoot(), "config", "default"))

	dsn := storetest.PostgresDSN(t)
	authHTTP, authGRPC, ingressPort := freePort(t), freePort(t), freePort(t)
	p := &platform{tenants: map[string]*tenant{}}
	issuer := fmt.Sprintf("http://127.0.0.1:%d/dex", authHTTP)
	clustertest.Run(t, "auth", tracekit, nil, "auth", "--addr", fmt.Sprintf("127.0.0.1:%d", authHTTP),
		"--grpc-addr", fmt.Sprintf("127.0.0.1:%d", authGRPC), "--issuer", issuer, "--database-url", dsn, "--storage", "memory")
	probes := freePort(t)
	manager := clustertest.Run(t, "manager", tracekit, []string{"KUBECONFIG=" + managerKubeconfig}, "manager",
		"--dex-grpc-addr", fmt.Sprintf("127.0.0.1:%d", authGRPC), "--auth-issuer", issuer,
		"--tenant-url", fmt.Sprintf("http://{tenant}.e2e.test:%d", ingressPort), "--server-image", "tracekit:e2e",
		"--metrics-bind-address", "0", "--health-probe-bind-address", fmt.Sprintf("127.0.0.1:%d", probes),
		"--leader-election-namespace", "tracekit-system")
	manager.WaitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", probes))

	ns := "team"
	cert := newCertificate(t, "*.e2e.test")
	must(t, k8s.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "platform-db"},
		StringData: map[string]string{"url": dsn}}))
	must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "e2e-tls"},
		Type: corev1.SecretTypeTLS, Data: map[string][]byte{corev1.TLSCertKey: cert.certPEM, corev1.TLSPrivateKeyKey: cert.keyPEM}}))
	for name, spec := range map[string]struct {
		key, service string
		url          tracekitv1alpha1.TenantURL
	}{
		"acme": {"tk_acme0123456789abcdefghijklmnopqrstuvwxyzAB", "checkout", tracekitv1alpha1.TenantURL{TLSSecretName: "e2e-tls"}},
		"beta": {"tk_beta0123456789abcdefghijklmnopqrstuvwxyzAB", "ledger", tracekitv1alpha1.TenantURL{TLSSecretName: "e2e-tls", PathPrefix: "/t/beta"}},
	} {
		p.tenants[name] = &tenant{name: name, key: spec.key, service: spec.service}
		must(t, k8s.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name + "-keys"},
			StringData: map[string]string{"e2e": spec.key}}))
		must(t, k8s.Create(ctx, &tracekitv1alpha1.TraceKitTenant{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
			Spec: tracekitv1alpha1.TraceKitTenantSpec{
				DisplayName: "Team " + name,
				URL:         spec.url,
				Database:    tracekitv1alpha1.TenantDatabase{AdminSecretRef: &tracekitv1alpha1.SecretKeyRef{Name: "platform-db"}},
				APIKeys:     &tracekitv1alpha1.APIKeyBootstrap{SecretName: name + "-keys"},
				AlertRules: []tracekitv1alpha1.AlertRule{{Name: "errors", Service: "checkout", Metric: tracekitv1alpha1.MetricErrorRate,
					Comparison: "gt", Threshold: "0.05"}},
			},
		}))
	}
	backends := map[string]string{} // namespace/Service → the tenant server standing in for its pods
	for name := range p.tenants {
		dep := waitDeployment(t, k8s, ns, "tracekit-"+name)
		pod := c.RunDeployment(t, ctx, tracekit, clustertest.Deployment{Namespace: ns, Name: dep.Name})
		backends[ns+"/"+dep.Name] = pod.Addrs["--addr"]
		c.MarkAvailable(t, ns, dep.Name)
	}
	p.ingress = startIngress(t, k8s, ingressPort, backends, cert)
	for name, tn := range p.tenants {
		tn.mcpURL = waitReady(t, k8s, ns, name).Status.MCPURL
		seedSpan(t, dsn, name, tn.service)
	}
	if want := fmt.Sprintf("https://beta.e2e.test:%d/t/beta/mcp", ingressPort); p.tenants["beta"].mcpURL != want {
		t.Fatalf("beta's status.mcpURL %q, want %q", p.tenants["beta"].mcpURL, want)
	}
	return p
}

// Each tenant's server, started from its Deployment, serves its own data to its own API key and
// refuses the other tenant's key.
func TestOperator_TenantServersRunWithWhatTheControllerWrote(t *testing.T) {
	p := startPlatform(t)
	acme, beta := p.tenants["acme"], p.tenants["beta"]
	if got := listServices(t, acme.mcpURL, p.ingress.client(acme.key)); !strings.Contains(got, acme.service) || strings.Contains(got, beta.service) {
		t.Errorf("acme's list_services does not show just the span acme sent: %s", got)
	}
	if got := listServices(t, beta.mcpURL, p.ingress.client(beta.key)); !strings.Contains(got, beta.service) || strings.Contains(got, acme.service) {
		t.Errorf("beta's list_services does not show just the span beta sent: %s", got)
	}
	if status, _, _ := initialize(t, acme.mcpURL, p.ingress.client(beta.key)); status != http.StatusUnauthorized {
		t.Errorf("beta's key at acme's server: status %d, want 401", status)
	}
}

// An MCP client that is given only a tenant's URL signs in as a person would: the Go SDK's client
// gets the 401, discovers the authorization server at the tenant's URL, registers, opens the
// authorization page in Chromium where the tenant's API key is typed, exchanges the code and reads
// the tenant's data. The token it got is refused at the other tenant's URL. acme's URL is host-based,
// beta's path-based: discovery must work through the Ingress for both.
func TestOperator_MCPClientSignsInAtTheTenantURLAndReadsOnlyThatTenant(t *testing.T) {
	p := startPlatform(t)
	b := browsertest.New(t, p.ingress.browserOptions()...)
	for _, names := range [][2]string{{"acme", "beta"}, {"beta", "acme"}} {
		tn, other := p.tenants[names[0]], p.tenants[names[1]]
		t.Run(tn.name, func(t *testing.T) {
			token, services := p.signIn(t, b, tn)
			if !strings.Contains(services, tn.service) || strings.Contains(services, other.service) {
				t.Errorf("list_services after signing in at %s shows other than %s's service: %s", tn.mcpURL, tn.name, services)
			}

			// The token at the other tenant's URL: refused before any MCP message is read.
			status, challenge, body := initialize(t, other.mcpURL, p.ingress.client(token))
			if status != http.StatusUnauthorized && status != http.StatusForbidden {
				t.Errorf("%s's token at %s: status %d, want 401 or 403", tn.name, other.mcpURL, status)
			}
			if status == http.StatusUnauthorized && !strings.Contains(challenge, `error="invalid_token"`) {
				t.Errorf("%s's token at %s: WWW-Authenticate %q, want invalid_token", tn.name, other.mcpURL, challenge)
			}
			if strings.Contains(body, other.service) {
				t.Errorf("%s's token at %s got %s's data: %s", tn.name, other.mcpURL, other.name, body)
			}
			// The same through the SDK's client holding the token: it is asked to sign in again, and
			// never gets a session.
			h := &fixedToken{token: token}
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "operator-e2e", Version: "1"}, nil).
				Connect(ctx, &mcp.StreamableClientTransport{Endpoint: other.mcpURL, HTTPClient: p.ingress.client(""), OAuthHandler: h}, nil)
			if err == nil {
				cs.Close()
				t.Fatalf("%s's token opened a session at %s", tn.name, other.mcpURL)
			}
			if h.challenged != http.StatusUnauthorized && h.challenged != http.StatusForbidden {
				t.Errorf("%s's token at %s: the client was not challenged (%d): %v", tn.name, other.mcpURL, h.challenged, err)
			}
		})
	}
}

// signIn connects the Go SDK's MCP client to tn's URL with nothing but the URL and an OAuth handler
// that registers dynamically; Chromium signs in with tn's key. It returns the access token and what
// list_services answered.
func (p *platform) signIn(t *testing.T, b *browsertest.Browser, tn *tenant) (string, string) {
	t.Helper()
	cb := browsertest.NewCallback(t)
	base := strings.TrimSuffix(tn.mcpURL, "/mcp")
	var iss string
	h, err := mcpauth.NewAuthorizationCodeHandler(&mcpauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &mcpauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{cb.URL}, ClientName: "operator e2e", TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"},
		}},
		RequestRefreshToken: true,
		Client:              p.ingress.client(""),
		AuthorizationCodeFetcher: func(ctx context.Context, args *mcpauth.AuthorizationArgs) (*mcpauth.AuthorizationResult, error) {
			if !strings.HasPrefix(args.URL, base+"/mcp/authorize?") {
				return nil, fmt.Errorf("the client was sent to %s, not to the tenant's authorization endpoint", args.URL)
			}
			if err := b.SignIn(args.URL, tn.key); err != nil {
				return nil, fmt.Errorf("sign-in page: %w", err)
			}
			select {
			case q := <-cb.Got:
				iss = q.Get("iss")
				return &mcpauth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: iss}, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	})
	must(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "operator-e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tn.mcpURL, HTTPClient: p.ingress.client(""), OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("sign in at %s: %v", tn.mcpURL, err)
	}
	defer cs.Close()
	if iss != base {
		t.Errorf("authorization response iss %q, want the tenant's URL %s", iss, base)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{"since": "1h"}})
	if err != nil || res.IsError {
		t.Fatalf("list_services at %s: %v %+v", tn.mcpURL, err, res)
	}
	out, _ := json.Marshal(res)
	ts, err := h.TokenSource(ctx)
	must(t, err)
	tok, err := ts.Token()
	must(t, err)
	return tok.AccessToken, string(out)
}

// fixedToken is an MCP client's OAuth handler that holds a token from elsewhere; asked to
// authorize, it records the status that asked and gives up.
type fixedToken struct {
	token      string
	challenged int
}

func (f *fixedToken) TokenSource(context.Context) (oauth2.TokenSource, error) {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: f.token, TokenType: "Bearer"}), nil
}

func (f *fixedToken) Authorize(_ context.Context, _ *http.Request, res *http.Response) error {
	f.challenged = res.StatusCode
	res.Body.Close()
	return fmt.Errorf("server answered %d to the token", res.StatusCode)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// startCluster starts envtest and writes two kubeconfigs: an administrator's, and one that
// impersonates the operator's ServiceAccount so the manager runs with config/rbac's permissions only.
func startCluster(t *testing.T) (*clustertest.Cluster, string, string) {
	t.Helper()
	scheme := runtime.NewScheme()
	must(t, clientgoscheme.AddToScheme(scheme))
	must(t, tracekitv1alpha1.AddToScheme(scheme))
	c := clustertest.Start(t, scheme)
	dir := t.TempDir()
	admin := envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}
	return c, c.Kubeconfig(t, dir, admin, ""), c.Kubeconfig(t, dir, admin, "system:serviceaccount:tracekit-system:tracekit-manager")
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitDeployment(t *testing.T, k8s client.Client, ns, name string) *appsv1.Deployment {
	t.Helper()
	dep := &appsv1.Deployment{}
	clustertest.Eventually(t, "Deployment "+name, time.Minute, func() error {
		return k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, dep)
	})
	return dep
}

func waitReady(t *testing.T, k8s client.Client, ns, name string) *tracekitv1alpha1.TraceKitTenant {
	t.Helper()
	tt := &tracekitv1alpha1.TraceKitTenant{}
	clustertest.Eventually(t, "tenant "+name+" Ready", time.Minute, func() error {
		if err := k8s.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, tt); err != nil {
			return err
		}
		if c := meta.FindStatusCondition(tt.Status.Conditions, tracekitv1alpha1.ConditionReady); c == nil || c.Status != metav1.ConditionTrue {
			return fmt.Errorf("conditions %+v", tt.Status.Conditions)
		}
		return nil
	})
	return tt
}

// ingress stands in for an Ingress controller: it serves the Ingresses in the cluster as written,
// routing by host and path (Exact, or Prefix matched element-wise, the longest path winning) and
// terminating TLS with the certificate of the Secret an Ingress names for the host. Services are
// mapped straight to the server started for their pods.
type ingress struct {
	k8s      client.Client
	port     int
	backends map[string]string // namespace/Service → address
	cert     *certificate
}

func startIngress(t *testing.T, k8s client.Client, port int, backends map[string]string, cert *certificate) *ingress {
	t.Helper()
	in := &ingress{k8s: k8s, port: port, backends: backends, cert: cert}
	l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	must(t, err)
	srv := &http.Server{Handler: in, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{GetCertificate: in.getCertificate}}
	go srv.ServeTLS(l, "", "")
	t.Cleanup(func() { srv.Close() })
	return in
}

func (in *ingress) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	addr, err := in.route(r.Context(), host, r.URL.Path)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	if addr == "" {
		http.Error(w, "default backend - 404", http.StatusNotFound)
		return
	}
	(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.Out.URL.Scheme, r.Out.URL.Host = "http", addr
		r.Out.Host = r.In.Host
		r.SetXForwarded()
	}}).ServeHTTP(w, r)
}

// route returns the address serving host and path, or "" when no Ingress rule matches.
func (in *ingress) route(ctx context.Context, host, path string) (string, error) {
	var list networkingv1.IngressList
	if err := in.k8s.List(ctx, &list); err != nil {
		return "", err
	}
	addr, longest := "", -1
	for _, ing := range list.Items {
		for _, rule := range ing.Spec.Rules {
			if rule.Host != host || rule.HTTP == nil {
				continue
			}
			for _, p := range rule.HTTP.Paths {
				if p.Backend.Service == nil || len(p.Path) <= longest || !pathMatches(p, path) {
					continue
				}
				addr, longest = in.backends[ing.Namespace+"/"+p.Backend.Service.Name], len(p.Path)
			}
		}
	}
	return addr, nil
}

func pathMatches(p networkingv1.HTTPIngressPath, path string) bool {
	if p.PathType != nil && *p.PathType == networkingv1.PathTypeExact {
		return path == p.Path
	}
	prefix := strings.TrimSuffix(p.Path, "/")
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// getCertificate is the TLS certificate of the Ingress that names the host in SNI.
func (in *ingress) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	var list networkingv1.IngressList
	if err := in.k8s.List(hello.Context(), &list); err != nil {
		return nil, err
	}
	for _, ing := range list.Items {
		for _, it := range ing.Spec.TLS {
			if !slices.Contains(it.Hosts, hello.ServerName) {
				continue
			}
			s := &corev1.Secret{}
			if err := in.k8s.Get(hello.Context(), types.NamespacedName{Namespace: ing.Namespace, Name: it.SecretName}, s); err != nil {
				return nil, err
			}
			c, err := tls.X509KeyPair(s.Data[corev1.TLSCertKey], s.Data[corev1.TLSPrivateKeyKey])
			return &c, err
		}
	}
	return nil, fmt.Errorf("no Ingress has TLS for %q", hello.ServerName)
}

// client is an HTTP client that reaches every *.e2e.test host at the ingress, as DNS would, trusts
// its certificate, and sends key as bearer credential unless it is empty.
func (in *ingress) client(key string) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	var rt http.RoundTripper = &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", in.port))
		},
		TLSClientConfig: &tls.Config{RootCAs: in.cert.roots},
	}
	if key != "" {
		rt = &keyTransport{key: key, base: rt}
	}
	return &http.Client{Timeout: 30 * time.Second, Transport: rt}
}

// browserOptions make Chromium resolve *.e2e.test to the ingress and accept its certificate (and
// that one only).
func (in *ingress) browserOptions() []chromedp.ExecAllocatorOption {
	return []chromedp.ExecAllocatorOption{
		chromedp.Flag("host-resolver-rules", "MAP *.e2e.test 127.0.0.1"),
		chromedp.Flag("ignore-certificate-errors-spki-list", in.cert.spki),
	}
}

type keyTransport struct {
	key  string
	base http.RoundTripper
}

func (k *keyTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+k.key)
	return k.base.RoundTrip(r)
}

// certificate is a server certificate for the ingress, signed by a CA made for the test.
type certificate struct {
	certPEM, keyPEM []byte
	roots           *x509.CertPool
	spki            string // base64 SHA-256 of the certificate's public key, as Chromium pins it
}

func newCertificate(t *testing.T, dnsName string) *certificate {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tracekit e2e CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(t, err)
	ca, err = x509.ParseCertificate(caDER)
	must(t, err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(t, err)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName}, DNSNames: []string{dnsName},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	must(t, err)
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	must(t, err)
	spkiDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	must(t, err)
	sum := sha256.Sum256(spkiDER)
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	return &certificate{
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		roots:   roots,
		spki:    base64.StdEncoding.EncodeToString(sum[:]),
	}
}

// seedSpan stores a span of service for tenant, as its services' traffic would.
func seedSpan(t *testing.T, adminURL, tenant, service string) {
	t.Helper()
	db, err := store.Open(t.Context(), adminURL)
	must(t, err)
	defer db.Close()
	now := time.Now()
	must(t, db.ForTenant(tenant).InsertBatch(t.Context(), store.Batch{Spans: []store.Span{{
		TraceID: "0af7651916cd43dd8448eb211c80319c", SpanID: "b7ad6b7169203331", Service: service, Operation: "POST /pay",
		Kind: store.KindServer, IsEntry: true, StartNS: now.Add(-time.Second).UnixNano(), DurationNS: int64(time.Second),
	}}}))
}

// listServices calls the list_services tool with the official Go SDK's MCP client.
func listServices(t *testing.T, mcpURL string, c *http.Client) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "operator-e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: mcpURL, HTTPClient: c}, nil)
	if err != nil {
		t.Fatalf("connect to %s: %v", mcpURL, err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{"since": "1h"}})
	if err != nil {
		t.Fatalf("list_services at %s: %v", mcpURL, err)
	}
	b, _ := json.Marshal(res)
	return string(b)
}

// initialize sends an MCP initialize with c and returns the HTTP status, WWW-Authenticate and body.
func initialize(t *testing.T, mcpURL string, c *http.Client) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, mcpURL, strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	res, err := c.Do(req)
	must(t, err)
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("WWW-Authenticate"), string(body)
}
