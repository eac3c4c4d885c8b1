package oauth_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/dexauth"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// env is the platform as a cluster runs it, in one process: `tracekit auth` (Dex on PostgreSQL
// storage, with the API-key connector and the client API) and one `tracekit server` per tenant with
// its OAuth facade, which reaches Dex only over HTTP, as in a cluster.
type env struct {
	db      *store.DB
	dex     *dexauth.Server
	issuer  string
	tenants map[string]*tenant
	// skew shifts the tenant servers' clock, to see tokens expire.
	skew atomic.Int64
}

type tenant struct {
	name, url, key string
}

type envOptions struct {
	maxClients int
	// refreshReuse is Dex's refresh-token reuse interval (default 3 s).
	refreshReuse time.Duration
	// documents fetches clients' metadata documents (default: the production fetcher).
	documents *oauth.DocumentFetcher
	// webClientID is the /ui pages' client_id (default: their own document, which needs https).
	webClientID string
	// providers are the company identity providers (default: the API-key form only).
	providers dexauth.Providers
}

func newEnv(t *testing.T, opt envOptions, names ...string) *env {
	t.Helper()
	ctx := t.Context()
	logger := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	dsn := storetest.PostgresDSN(t)
	db, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, tenants: map[string]*tenant{}}

	dexSrv := httptest.NewUnstartedServer(nil)
	e.issuer = "http://" + dexSrv.Listener.Addr().String() + "/dex"
	st, err := dexauth.OpenStorage(dsn, logger)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.dex, err = dexauth.New(ctx, dexauth.Config{Issuer: e.issuer, Storage: st, DB: db, Logger: logger,
		MaxClientsPerTenant: opt.maxClients, RefreshReuseInterval: opt.refreshReuse, Providers: opt.providers})
	if err != nil {
		t.Fatal(err)
	}
	dexSrv.Config.Handler = e.dex.Handler()
	dexSrv.Start()
	t.Cleanup(dexSrv.Close)

	for _, name := range names {
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: name, DisplayName: name}); err != nil {
			t.Fatal(err)
		}
		key, _, err := db.Admin().CreateAPIKey(ctx, name, "e2e", nil)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(nil)
		tn := &tenant{name: name, url: "http://" + srv.Listener.Addr().String(), key: key}
		// What the operator does: the tenant's confidential client, redirecting to its callback.
		secret := rand.Text()
		if err := e.dex.EnsureTenantClient(ctx, name, secret, []string{tn.url + "/mcp/callback"}); err != nil {
			t.Fatal(err)
		}
		facade, err := oauth.New(oauth.Config{PublicURL: tn.url, Tenant: name, Issuer: e.issuer,
			ClientID: dexauth.TenantClientID(name), ClientSecret: secret, Logger: logger, Documents: opt.documents,
			Now: func() time.Time { return time.Now().Add(time.Duration(e.skew.Load())) }})
		if err != nil {
			t.Fatal(err)
		}
		srv.Config.Handler = app.New(app.Config{DB: db, Tenant: name, PublicURL: tn.url, Logger: logger, OAuth: facade, WebClientID: opt.webClientID})
		srv.Start()
		t.Cleanup(srv.Close)
		e.tenants[name] = tn
	}
	return e
}

// noRedirects is an HTTP client that shows each redirect instead of following it.
var noRedirects = &http.Client{
	Timeout:       30 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func do(t *testing.T, req *http.Request) (*http.Response, []byte) {
	t.Helper()
	res, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, body
}

func getURL(t *testing.T, u string) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return do(t, req)
}

func postForm(t *testing.T, u string, form url.Values, header http.Header) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	return do(t, req)
}

// register registers a public client with redirectURI through tn's facade.
func (e *env) register(t *testing.T, tn *tenant, metadata map[string]any) (int, map[string]any) {
	t.Helper()
	body, _ := json.Marshal(metadata)
	req, _ := http.NewRequest(http.MethodPost, tn.url+"/mcp/register", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	res, raw := do(t, req)
	var out map[string]any
	json.Unmarshal(raw, &out)
	return res.StatusCode, out
}

func (e *env) registerClient(t *testing.T, tn *tenant, redirectURI string) string {
	t.Helper()
	status, out := e.register(t, tn, map[string]any{"redirect_uris": []string{redirectURI}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "client_name": "e2e"})
	if status != http.StatusCreated {
		t.Fatalf("register: %d %v", status, out)
	}
	return out["client_id"].(string)
}

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	v := rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

func authorizeQuery(clientID, redirectURI string, p pkce) url.Values {
	return url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"}, "state": {"st-" + rand.Text()}}
}

// loginPage follows an authorization request to Dex's API-key page and returns its URL, or the
// redirect back to the client when the facade or Dex answered with an error.
func (e *env) loginPage(t *testing.T, tn *tenant, q url.Values) (page string, back *url.URL) {
	t.Helper()
	u := tn.url + "/mcp/authorize?" + q.Encode()
	for range 5 {
		res, body := getURL(t, u)
		switch res.StatusCode {
		case http.StatusOK:
			if !strings.Contains(string(body), "Enter your TraceKit API key") {
				t.Fatalf("not the API-key page: %s", body)
			}
			return u, nil
		case http.StatusFound, http.StatusSeeOther:
			loc, _ := res.Location()
			if !strings.HasPrefix(loc.String(), e.issuer) {
				return "", loc
			}
			u = loc.String()
		default:
			t.Fatalf("GET %s: %d %s", u, res.StatusCode, body)
		}
	}
	t.Fatal("too many redirects")
	return "", nil
}

// pageDefaults are the tool groups the API-key page ticks until the person changes them.
var pageDefaults = []string{"traces", "metrics", "llm"}

// submitKey posts key on the API-key page with the page's default tool groups; on success it follows
// Dex's and the facade's redirects and returns where the client is sent.
func (e *env) submitKey(t *testing.T, page, key string, header http.Header) (int, *url.URL) {
	t.Helper()
	res, body := postForm(t, page, url.Values{"login": {"api-key"}, "password": {key}, "tools": pageDefaults}, header)
	if res.StatusCode != http.StatusSeeOther {
		if res.StatusCode == http.StatusUnauthorized && !strings.Contains(string(body), "not a valid API key") {
			t.Fatalf("wrong-key page without its message: %s", body)
		}
		return res.StatusCode, nil
	}
	loc, _ := res.Location()
	res, body = getURL(t, loc.String()) // the facade's callback
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", res.StatusCode, body)
	}
	back, _ := res.Location()
	return http.StatusSeeOther, back
}

// signIn runs the authorization code flow without a browser and returns the code.
func (e *env) signIn(t *testing.T, tn *tenant, q url.Values, key string) string {
	t.Helper()
	page, back := e.loginPage(t, tn, q)
	if back != nil {
		t.Fatalf("authorization refused: %s", back)
	}
	status, back := e.submitKey(t, page, key, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("sign-in with the key: %d", status)
	}
	if back.Query().Get("state") != q.Get("state") || back.Query().Get("iss") != tn.url {
		t.Fatalf("redirect back %s: want state %s and iss %s", back, q.Get("state"), tn.url)
	}
	return back.Query().Get("code")
}

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	IDToken      string `json:"id_token"`
	Scope        string `json:"scope"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (e *env) token(t *testing.T, tn *tenant, form url.Values) (int, tokenResponse) {
	t.Helper()
	res, body := postForm(t, tn.url+"/mcp/token", form, nil)
	var tr tokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatalf("token response %d: %s", res.StatusCode, body)
	}
	if res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token response without Cache-Control: no-store")
	}
	return res.StatusCode, tr
}

// fullSignIn registers a client and signs in with tn's key, returning the client id and tokens.
func (e *env) fullSignIn(t *testing.T, tn *tenant) (string, tokenResponse) {
	t.Helper()
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	p := newPKCE()
	code := e.signIn(t, tn, authorizeQuery(clientID, redirect, p), tn.key)
	status, tok := e.token(t, tn, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID},
		"redirect_uri": {redirect}, "code_verifier": {p.verifier}, "resource": {tn.url + "/mcp"}})
	if status != http.StatusOK {
		t.Fatalf("token: %d %+v", status, tok)
	}
	return clientID, tok
}

// callMCP sends an MCP initialize with token and returns the status and WWW-Authenticate.
func callMCP(t *testing.T, tn *tenant, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, tn.url+"/mcp", strings.NewReader(
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"e2e","version":"1"}}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, _ := do(t, req)
	return res.StatusCode, res.Header.Get("WWW-Authenticate")
}
