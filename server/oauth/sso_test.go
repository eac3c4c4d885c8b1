package oauth_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosundheit "github.com/AppsFlyer/go-sundheit"
	"github.com/chromedp/chromedp"
	dexserver "github.com/dexidp/dex/server"
	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/dexauth"
	"github.com/tracekit/tracekit/server/store"
)

// The company's directory: alice and carol are in platform, bob only in sales.
var directorySeed = `dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups
` + person("alice") + person("bob") + person("carol") + `
dn: cn=platform,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: platform
member: uid=alice,ou=people,dc=example,dc=org
member: uid=carol,ou=people,dc=example,dc=org

dn: cn=sales,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: sales
member: uid=bob,ou=people,dc=example,dc=org
`

func person(uid string) string {
	return fmt.Sprintf(`
dn: uid=%[1]s,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: %[1]s
cn: %[1]s
sn: %[1]s
mail: %[1]s@example.org
userPassword: %[1]s-password
`, uid)
}

// directory is an OpenLDAP slapd of its own, seeded with directorySeed.
type directory struct {
	url, dir string
}

const (
	ldapAdmin    = "cn=admin,dc=example,dc=org"
	ldapPassword = "admin-secret"
)

func startDirectory(t *testing.T) *directory {
	t.Helper()
	slapd := browsertest.RequireTool(t, "slapd", "/usr/sbin/slapd")
	slapadd := browsertest.RequireTool(t, "slapadd", "/usr/sbin/slapadd")
	browsertest.RequireTool(t, "ldapmodify", "/usr/bin/ldapmodify")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "slapd.conf")
	var schemas strings.Builder
	for _, s := range []string{"core", "cosine", "inetorgperson"} {
		fmt.Fprintf(&schemas, "include /etc/ldap/schema/%s.schema\n", s)
	}
	err := os.WriteFile(conf, []byte(schemas.String()+fmt.Sprintf(`pidfile %[1]s/slapd.pid
modulepath /usr/lib/ldap
moduleload back_mdb
database mdb
maxsize 10485760
suffix "dc=example,dc=org"
rootdn "%[2]s"
rootpw %[3]s
directory %[1]s/data
`, dir, ldapAdmin, ldapPassword)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	seed := filepath.Join(dir, "seed.ldif")
	os.WriteFile(seed, []byte(directorySeed), 0o600)
	if out, err := exec.Command(slapadd, "-f", conf, "-l", seed).CombinedOutput(); err != nil {
		t.Fatalf("slapadd: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	// -d keeps slapd in the foreground, where the test can stop it.
	cmd := exec.Command(slapd, "-f", conf, "-h", "ldap://"+addr+"/", "-d", "0")
	cmd.Stdout, cmd.Stderr = t.Output(), t.Output()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start slapd: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slapd did not start listening")
		}
	}
	return &directory{url: addr, dir: dir}
}

// removeFromGroup is what a directory administrator does, with the standard tool.
func (d *directory) removeFromGroup(t *testing.T, uid, group string) {
	t.Helper()
	ldif := fmt.Sprintf("dn: cn=%s,ou=groups,dc=example,dc=org\nchangetype: modify\ndelete: member\nmember: uid=%s,ou=people,dc=example,dc=org\n", group, uid)
	cmd := exec.Command("ldapmodify", "-x", "-H", "ldap://"+d.url, "-D", ldapAdmin, "-w", ldapPassword)
	cmd.Stdin = strings.NewReader(ldif)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldapmodify: %v\n%s", err, out)
	}
}

// ldapConfig is Dex's LDAP connector configuration for the directory.
func (d *directory) ldapConfig(bindPW string) string {
	return fmt.Sprintf(`{"host": %q, "insecureNoSSL": true, "bindDN": %q, "bindPW": %q,
		"userSearch": {"baseDN": "ou=people,dc=example,dc=org", "filter": "(objectClass=inetOrgPerson)", "username": "uid",
			"idAttr": "uid", "emailAttr": "mail", "nameAttr": "cn", "preferredUsernameAttr": "uid"},
		"groupSearch": {"baseDN": "ou=groups,dc=example,dc=org", "filter": "(objectClass=groupOfNames)",
			"userMatchers": [{"userAttr": "DN", "groupAttr": "member"}], "nameAttr": "cn"}}`, d.url, ldapAdmin, bindPW)
}

// companyIdP is a second Dex standing for the company's OIDC provider (Okta, Entra ID, Keycloak…),
// signing people in against the same directory, so its ID tokens carry the directory's groups.
type companyIdP struct {
	issuer  string
	storage storage.Storage
}

const idpClientSecret = "company-idp-client-secret"

func startCompanyIdP(t *testing.T, d *directory) *companyIdP {
	t.Helper()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv := httptest.NewUnstartedServer(nil)
	idp := &companyIdP{issuer: "http://" + srv.Listener.Addr().String() + "/idp", storage: memory.New(logger)}
	err := idp.storage.CreateConnector(t.Context(), storage.Connector{ID: "ldap", Type: "ldap", Name: "Example Corp", ResourceVersion: "1",
		Config: []byte(d.ldapConfig(ldapPassword))})
	if err != nil {
		t.Fatal(err)
	}
	refresh, err := dexserver.NewRefreshTokenPolicy(logger, false, "", "", "")
	if err != nil {
		t.Fatal(err)
	}
	h, err := dexserver.NewServer(t.Context(), dexserver.Config{Issuer: idp.issuer, Storage: idp.storage, SkipApprovalScreen: true,
		RefreshTokenPolicy: refresh, Logger: logger, HealthChecker: gosundheit.New(), Web: dexserver.WebConfig{Issuer: "Example Corp"}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return idp
}

// trust registers TraceKit's sign-in at the company IdP, as its administrators would.
func (idp *companyIdP) trust(t *testing.T, tracekitIssuer string) {
	t.Helper()
	err := idp.storage.CreateClient(t.Context(), storage.Client{ID: "tracekit", Secret: idpClientSecret, Name: "TraceKit",
		RedirectURIs: []string{tracekitIssuer + "/callback"}})
	if err != nil {
		t.Fatal(err)
	}
}

// ssoArtifacts is where the sign-in screenshots go: $TRACEKIT_ARTIFACTS when set, else the
// git-ignored bin/artifacts/sso of the repository, kept after the run.
func ssoArtifacts(t *testing.T) string {
	dir := os.Getenv("TRACEKIT_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "artifacts")
	}
	dir = filepath.Join(dir, "sso")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newSSOEnv is the platform with two company identity providers configured as an operator would,
// through the providers file with secrets from the environment: the company's OIDC provider and its
// LDAP directory. Tenant acme admits the platform group with every tool group.
func newSSOEnv(t *testing.T, opt envOptions) (*env, *directory) {
	t.Helper()
	d := startDirectory(t)
	idp := startCompanyIdP(t, d)
	t.Setenv("TEST_IDP_CLIENT_SECRET", idpClientSecret)
	pwFile := filepath.Join(t.TempDir(), "bind-password")
	os.WriteFile(pwFile, []byte(ldapPassword+"\n"), 0o600)
	cfg := filepath.Join(t.TempDir(), "providers.yaml")
	err := os.WriteFile(cfg, []byte(fmt.Sprintf(`providers:
- type: oidc
  id: company
  name: Example Corp SSO
  config:
    issuer: %s
    clientID: tracekit
    clientSecret: $TEST_IDP_CLIENT_SECRET
    scopes: [openid, profile, email, groups, offline_access]
    insecureEnableGroups: true
- type: ldap
  id: directory
  name: the company directory
  config: %s
`, idp.issuer, strings.ReplaceAll(d.ldapConfig("${file:"+pwFile+"}"), "\n", " "))), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	providers, err := dexauth.LoadProviders(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Dex answers refreshes within its reuse interval without asking the connector; the test
	// refreshes right after signing in.
	opt.providers, opt.refreshReuse = providers, 10*time.Millisecond
	e := newEnv(t, opt, "acme")
	idp.trust(t, e.issuer)
	err = e.db.Admin().SetAccess(t.Context(), "acme", []byte(`[{"groups": ["platform"], "toolGroups": ["traces", "metrics", "llm", "debugging"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	return e, d
}

// A member of the admitted group signs in at the tenant's URL through each provider in a real
// Chromium, and an MCP client (the Go SDK) gets a token and reads the tenant; the token is an
// API-key sign-in's but for who signed in. A person outside the group is refused with a page naming
// the tenant and the group to ask for. Removing the member from the group in the directory ends
// both grants at their next refresh.
func TestCompanySignIn_MembersReadTheTenantOthersAreRefusedAndRemovalEndsAccessAtRefresh(t *testing.T) {
	b := browsertest.New(t)
	e, d := newSSOEnv(t, envOptions{})
	tn := e.tenants["acme"]
	shots := ssoArtifacts(t)
	verifier := &auth.OAuthTokens{Issuer: e.issuer, Audience: dexauth.TenantClientID("acme"), Tenant: "acme"}

	type grant struct{ clientID, refresh string }
	grants := map[string]grant{}
	for _, provider := range []string{"Example Corp SSO", "the company directory"} {
		var clientID string
		h, _ := goSDKClient(t, browsertest.NewCallback(t), func(authURL string) error {
			u, _ := url.Parse(authURL)
			clientID = u.Query().Get("client_id")
			return b.SignInWithProvider(authURL, provider, "alice", "alice-password")
		})
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "sso-e2e", Version: "1"}, nil).
			Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tn.url + "/mcp", OAuthHandler: h}, nil)
		if err != nil {
			t.Fatalf("%s: connect: %v", provider, err)
		}
		tools, err := cs.ListTools(ctx, nil)
		if err != nil || !slices.ContainsFunc(tools.Tools, func(tl *mcp.Tool) bool { return tl.Name == "search_snapshots" }) {
			t.Fatalf("%s: tools/list without the debugging tools the platform group may grant: %v %+v", provider, err, tools)
		}
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{}})
		if err != nil || res.IsError {
			t.Fatalf("%s: tool call: %v %+v", provider, err, res)
		}
		cs.Close()
		ts, err := h.TokenSource(ctx)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := ts.Token()
		if err != nil || tok.RefreshToken == "" {
			t.Fatalf("%s: token: %v", provider, err)
		}
		p, err := verifier.Verify(ctx, tok.AccessToken)
		if err != nil || p.Method != "oauth" || !p.HasScope("read") || strings.Join(p.ToolGroups, ",") != "traces,metrics,llm,debugging" ||
			p.User != "alice@example.org" || strings.Join(p.IdPGroups, ",") != "platform" {
			t.Fatalf("%s: access token: %+v %v", provider, p, err)
		}
		grants[provider] = grant{clientID, tok.RefreshToken}
	}

	// bob is in sales only.
	clientID := e.registerClient(t, tn, "http://127.0.0.1:7777/callback")
	authURL := tn.url + "/mcp/authorize?" + authorizeQuery(clientID, "http://127.0.0.1:7777/callback", newPKCE()).Encode()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("provider-tracekit"))); err != nil {
		t.Fatal(err)
	}
	if err := b.Screenshot(filepath.Join(shots, "sign-in-choice.png")); err != nil {
		t.Fatal(err)
	}
	for _, provider := range []string{"Example Corp SSO", "the company directory"} {
		if err := b.SignInWithProvider(authURL, provider, "bob", "bob-password"); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("refused"))); err != nil {
			t.Fatalf("%s: no refusal page: %v", provider, err)
		}
		text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
		if err != nil || !strings.Contains(text, "No access to acme") || !strings.Contains(text, "bob@example.org") ||
			!strings.Contains(text, "members of platform") || !strings.Contains(text, "spec.access of TraceKitTenant acme") {
			t.Fatalf("%s: refusal page: %v\n%s", provider, err, text)
		}
		name := strings.ReplaceAll(provider, " ", "-")
		if err := b.Screenshot(filepath.Join(shots, "refused-"+name+".png")); err != nil {
			t.Fatal(err)
		}
	}

	refresh := func(provider string) (int, tokenResponse) {
		g := grants[provider]
		status, tok := e.token(t, tn, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {g.refresh}, "client_id": {g.clientID}})
		if status == http.StatusOK {
			grants[provider] = grant{g.clientID, tok.RefreshToken}
		}
		return status, tok
	}
	time.Sleep(20 * time.Millisecond) // past Dex's reuse interval
	for provider := range grants {
		if status, tok := refresh(provider); status != http.StatusOK || !strings.Contains(tok.Scope, "tools:debugging") {
			t.Fatalf("%s: refresh while a member: %d %+v", provider, status, tok)
		}
	}
	d.removeFromGroup(t, "alice", "platform")
	time.Sleep(20 * time.Millisecond)
	for provider := range grants {
		status, tok := refresh(provider)
		if status != http.StatusBadRequest || tok.Error != "invalid_grant" || !strings.Contains(tok.Description, "no longer in a group that may use tenant \"acme\"") {
			t.Fatalf("%s: refresh after leaving the group: %d %+v", provider, status, tok)
		}
	}
}

// A member signs in to the team's API keys page (<tenant URL>/keys) with the company directory, not
// with a key: the page offers only what a company sign-in holds (read, the groups its access rule
// grants), the key it mints works on /mcp, and the audit trail names the person, not a credential.
func TestCompanySignIn_AMemberManagesTheTeamsKeysAtTheKeysPage(t *testing.T) {
	b := browsertest.New(t)
	var tenantURL string
	e, _ := newSSOEnv(t, webViewsClient(t, &tenantURL, envOptions{}))
	tn := e.tenants["acme"]
	tenantURL = tn.url
	ctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()

	if err := chromedp.Do(ctx, chromedp.Navigate(tn.url+"/keys"), chromedp.WaitVisible(chromedp.ID("oauth"))); err != nil {
		t.Fatalf("the keys page offers no sign-in through the team's sign-in page: %v", err)
	}
	start, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('oauth').href`))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.SignInWithProvider(start, "the company directory", "alice", "alice-password"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("create"))); err != nil {
		t.Fatalf("back from the company sign-in: %v", err)
	}
	actor, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("actor")))
	if err != nil || !strings.Contains(actor, "alice@example.org") {
		t.Errorf("signed in as %q (%v), want alice@example.org", actor, err)
	}
	offered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input[name=scope]')).map(b => b.value)`))
	if err != nil || strings.Join(offered, ",") != "read" {
		t.Errorf("scopes offered to a company sign-in: %v (%v), want read only", offered, err)
	}
	err = chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("name"), "alice-laptop"),
		chromedp.Click(chromedp.ID("create-key")), chromedp.WaitVisible(chromedp.ID("new-key")))
	if err != nil {
		t.Fatalf("create in the browser: %v", err)
	}
	key, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("new-key")))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Screenshot(filepath.Join(ssoArtifacts(t), "keys-company-sign-in.png")); err != nil {
		t.Fatal(err)
	}
	if status, challenge := callMCP(t, tn, key); status != http.StatusOK {
		t.Errorf("/mcp with the key made after a company sign-in: %d %s", status, challenge)
	}
	events, err := e.db.Admin().AuditEvents(t.Context(), store.AuditFilter{Tenant: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(events, func(ev store.AuditEvent) bool { return ev.Action == "apikey.create" })
	if i < 0 || events[i].Actor != "alice@example.org (company sign-in, group platform)" || events[i].Method != "oauth" {
		t.Errorf("audit trail: %+v, want apikey.create by alice@example.org (company sign-in, group platform)", events)
	}
}
