package oauth_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	mcpauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/dexauth"
)

// awaitAuthorization is a client's authorization code fetcher after the browser signed in: the
// response the authorization server redirected to cb.
func awaitAuthorization(ctx context.Context, cb *browsertest.Callback) (*mcpauth.AuthorizationResult, error) {
	select {
	case q := <-cb.Got:
		return &mcpauth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// goSDKClient is the Go SDK's OAuth handler for a client that registers itself (RFC 7591) with the
// loopback redirect cb; signIn does what a person does in the browser with the authorization URL.
// It returns the handler and the authorization response the client received.
func goSDKClient(t *testing.T, cb *browsertest.Callback, signIn func(authURL string) error) (*mcpauth.AuthorizationCodeHandler, *mcpauth.AuthorizationResult) {
	t.Helper()
	got := &mcpauth.AuthorizationResult{}
	h, err := mcpauth.NewAuthorizationCodeHandler(&mcpauth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &mcpauth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{cb.URL}, ClientName: "Go SDK e2e", TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"},
		}},
		RequestRefreshToken: true,
		AuthorizationCodeFetcher: func(ctx context.Context, args *mcpauth.AuthorizationArgs) (*mcpauth.AuthorizationResult, error) {
			if err := signIn(args.URL); err != nil {
				return nil, err
			}
			res, err := awaitAuthorization(ctx, cb)
			if res != nil {
				*got = *res
			}
			return res, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, got
}

// The Go SDK's MCP client discovers the authorization server from the 401, registers, opens the
// authorization URL in a real Chromium where the API-key page is filled in, exchanges the code and
// calls a tool with the token, then keeps working after the access token is refreshed.
func TestGoSDKClient_SignsInWithAnAPIKeyInChromiumAndCallsATool(t *testing.T) {
	b := browsertest.New(t)
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	h, authz := goSDKClient(t, browsertest.NewCallback(t), func(authURL string) error { return b.SignIn(authURL, tn.key) })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1"}, nil)
	cs, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tn.url + "/mcp", OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if authz.Iss != tn.url {
		t.Fatalf("authorization response iss %q, want the tenant's URL", authz.Iss)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("tool call: %v %+v", err, res)
	}
	ts, err := h.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil || tok.RefreshToken == "" || tok.Extra("id_token") != nil {
		t.Fatalf("token: %v refresh=%q id_token=%v", err, tok.RefreshToken, tok.Extra("id_token"))
	}
	p, err := (&auth.OAuthTokens{Issuer: e.issuer, Audience: dexauth.TenantClientID("acme"), Tenant: "acme"}).Verify(ctx, tok.AccessToken)
	if err != nil || p.TenantID != "acme" || !p.HasScope("read") || p.Method != "oauth" {
		t.Fatalf("access token: %+v %v", p, err)
	}
}

func TestResourceServer_NoTokenGets401WithMetadataThatLeadsToTheFacade(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	status, challenge := callMCP(t, tn, "")
	ch, err := oauthex.ParseWWWAuthenticate([]string{challenge})
	if status != http.StatusUnauthorized || err != nil || ch[0].Params["resource_metadata"] == "" {
		t.Fatalf("got %d %q", status, challenge)
	}
	res, body := getURL(t, ch[0].Params["resource_metadata"])
	var prm oauthex.ProtectedResourceMetadata
	if res.StatusCode != 200 || json.Unmarshal(body, &prm) != nil || prm.Resource != tn.url+"/mcp" || prm.AuthorizationServers[0] != tn.url {
		t.Fatalf("metadata %d %s", res.StatusCode, body)
	}
	asm, err := mcpauth.GetAuthServerMetadata(t.Context(), prm.AuthorizationServers[0], nil)
	if err != nil || asm.RegistrationEndpoint != tn.url+"/mcp/register" || strings.Join(asm.CodeChallengeMethodsSupported, ",") != "S256" {
		t.Fatalf("AS metadata %+v %v", asm, err)
	}
}

func TestTokens_RefusedWhenExpiredTamperedOrForAnotherTenant(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme", "globex")
	acme, globex := e.tenants["acme"], e.tenants["globex"]
	_, tok := e.fullSignIn(t, acme)
	if status, _ := callMCP(t, acme, tok.AccessToken); status != http.StatusOK {
		t.Fatalf("own tenant: %d", status)
	}

	status, challenge := callMCP(t, globex, tok.AccessToken)
	if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
		t.Fatalf("acme's token at globex: %d %q", status, challenge)
	}
	parts := strings.Split(tok.AccessToken, ".")
	sig := []byte(parts[2])
	sig[10] ^= 1
	if status, _ := callMCP(t, acme, parts[0]+"."+parts[1]+"."+string(sig)); status != http.StatusUnauthorized {
		t.Fatalf("tampered signature: %d", status)
	}
	if tok.IDToken != "" {
		t.Fatal("the facade handed out Dex's ID token, whose issuer is not the facade")
	}
	e.skew.Store(int64(16 * time.Minute)) // access tokens live 15 minutes
	if status, _ := callMCP(t, acme, tok.AccessToken); status != http.StatusUnauthorized {
		t.Fatalf("expired: %d", status)
	}

	// Tenant globex's key on acme's page is a wrong key.
	redirect := "http://127.0.0.1:7777/callback"
	page, _ := e.loginPage(t, acme, authorizeQuery(e.registerClient(t, acme, redirect), redirect, newPKCE()))
	if status, _ := e.submitKey(t, page, globex.key, nil); status != http.StatusUnauthorized {
		t.Fatalf("another tenant's key: %d", status)
	}
}

func TestTokens_FromAnotherIssuerAreRefused(t *testing.T) {
	a := newEnv(t, envOptions{}, "acme")
	b := newEnv(t, envOptions{}, "acme") // another deployment with a tenant of the same name
	_, tok := b.fullSignIn(t, b.tenants["acme"])
	status, _ := callMCP(t, a.tenants["acme"], tok.AccessToken)
	if status != http.StatusUnauthorized {
		t.Fatalf("token of another issuer: %d", status)
	}
	_, err := (&auth.OAuthTokens{Issuer: a.issuer, Audience: "tenant-acme", Tenant: "acme"}).Verify(t.Context(), tok.AccessToken)
	if !errors.Is(err, auth.ErrInvalidCredentials) {
		t.Fatalf("got %v", err)
	}
}

func TestPKCE_S256IsRequiredAndVerified(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)

	for name, mod := range map[string]func(url.Values){
		"missing":   func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") },
		"plain":     func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"no method": func(q url.Values) { q.Del("code_challenge_method") },
	} {
		q := authorizeQuery(clientID, redirect, newPKCE())
		mod(q)
		_, back := e.loginPage(t, tn, q)
		if back == nil || back.Query().Get("error") != "invalid_request" || back.Query().Get("state") != q.Get("state") {
			t.Errorf("PKCE %s: redirected to %v", name, back)
		}
	}

	p := newPKCE()
	code := e.signIn(t, tn, authorizeQuery(clientID, redirect, p), tn.key)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID}, "redirect_uri": {redirect}}
	if status, tr := e.token(t, tn, form); status != 400 || tr.Error != "invalid_request" {
		t.Fatalf("no verifier: %d %+v", status, tr)
	}
	form.Set("code_verifier", newPKCE().verifier)
	if status, tr := e.token(t, tn, form); status != 400 || tr.Error != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %+v", status, tr)
	}
}

func TestCodes_AreSingleUseAndBoundToTheRedirectURI(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)

	// A loopback redirect may come back on another port (RFC 8252 §7.3)...
	p := newPKCE()
	otherPort := "http://127.0.0.1:50123/callback"
	code := e.signIn(t, tn, authorizeQuery(clientID, otherPort, p), tn.key)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID}, "code_verifier": {p.verifier}}
	// ...but the token request must name the same one.
	form.Set("redirect_uri", redirect)
	if status, tr := e.token(t, tn, form); status != 400 || tr.Error != "invalid_grant" {
		t.Fatalf("redirect mismatch: %d %+v", status, tr)
	}
	form.Set("redirect_uri", otherPort)
	if status, tr := e.token(t, tn, form); status != 200 || tr.AccessToken == "" {
		t.Fatalf("exchange: %d %+v", status, tr)
	}
	if status, tr := e.token(t, tn, form); status != 400 || tr.Error != "invalid_grant" {
		t.Fatalf("reused code: %d %+v", status, tr)
	}

	// The code of one client is worthless to another.
	p = newPKCE()
	code = e.signIn(t, tn, authorizeQuery(clientID, redirect, p), tn.key)
	other := e.registerClient(t, tn, redirect)
	status, tr := e.token(t, tn, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {other},
		"redirect_uri": {redirect}, "code_verifier": {p.verifier}})
	if status != 400 || tr.Error != "invalid_grant" {
		t.Fatalf("another client's code: %d %+v", status, tr)
	}

	// An unregistered redirect URI is refused on a page, never redirected to.
	res, _ := getURL(t, tn.url+"/mcp/authorize?"+authorizeQuery(clientID, "https://evil.example/cb", newPKCE()).Encode())
	if res.StatusCode != http.StatusBadRequest || res.Header.Get("Location") != "" {
		t.Fatalf("unregistered redirect: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	// A foreign resource is refused (RFC 8707).
	q := authorizeQuery(clientID, redirect, newPKCE())
	q.Set("resource", "https://other.example/mcp")
	if _, back := e.loginPage(t, tn, q); back == nil || back.Query().Get("error") != "invalid_target" {
		t.Fatalf("foreign resource: %v", back)
	}
}

func TestRefresh_RotatesAndStopsOnceTheKeyIsRevoked(t *testing.T) {
	// Dex answers a refresh repeated within the reuse interval with the same token, without asking
	// the connector; a nanosecond makes each refresh here a new one.
	e := newEnv(t, envOptions{refreshReuse: time.Nanosecond}, "acme")
	tn := e.tenants["acme"]
	clientID, tok := e.fullSignIn(t, tn)
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {tok.RefreshToken}}
	status, next := e.token(t, tn, refresh)
	if status != 200 || next.AccessToken == "" || next.RefreshToken == "" || next.RefreshToken == tok.RefreshToken {
		t.Fatalf("refresh: %d %+v", status, next)
	}
	if status, _ := callMCP(t, tn, next.AccessToken); status != http.StatusOK {
		t.Fatalf("refreshed token: %d", status)
	}

	keys, err := e.db.ForTenant("acme").APIKeys(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := e.db.Admin().RevokeAPIKey(t.Context(), "acme", keys[0].ID); err != nil {
		t.Fatal(err)
	}
	refresh.Set("refresh_token", next.RefreshToken)
	status, tr := e.token(t, tn, refresh)
	if status != 400 || tr.Error != "invalid_grant" || !strings.Contains(tr.Description, "revoked") {
		t.Fatalf("refresh after revocation: %d %+v", status, tr)
	}
}

func TestAPIKeyPage_ThrottlesWrongKeysPerIPAndPerKeyPrefix(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	page, _ := e.loginPage(t, tn, authorizeQuery(clientID, redirect, newPKCE()))

	ip := http.Header{"X-Forwarded-For": {"203.0.113.7"}}
	for i := range 10 {
		if status, _ := e.submitKey(t, page, "tk_guess"+string(rune('a'+i)), ip); status != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", i, status)
		}
	}
	res, body := postForm(t, page, url.Values{"login": {"api-key"}, "password": {tn.key}}, ip)
	if res.StatusCode != http.StatusTooManyRequests || res.Header.Get("Retry-After") == "" {
		t.Fatalf("11th attempt from one IP, with the right key: %d %s", res.StatusCode, body)
	}
	// Issue 13, item 7: strangers guessing through a shared client (21 wrong keys from 3 addresses)
	// do not lock its rightful user out.
	for i := range 21 {
		h := http.Header{"X-Forwarded-For": {"198.51.100." + string(rune('1'+i%3))}}
		if status, _ := e.submitKey(t, page, "tk_"+strings.Repeat(string(rune('a'+i)), 8), h); status != http.StatusUnauthorized {
			t.Fatalf("guess %d through the shared client: %d", i, status)
		}
	}
	if status, _ := e.submitKey(t, page, tn.key, http.Header{"X-Forwarded-For": {"192.0.2.99"}}); status != http.StatusSeeOther {
		t.Fatalf("the rightful user after strangers' guesses through the same client: %d", status)
	}
	// Guesses aimed at one key (its prefix, which `tracekit apikey list` shows) stop after 20, from
	// any address.
	page, _ = e.loginPage(t, tn, authorizeQuery(clientID, redirect, newPKCE()))
	target := tn.key[:9]
	for i := range 20 {
		h := http.Header{"X-Forwarded-For": {"198.51.100." + strconv.Itoa(10+i)}}
		if status, _ := e.submitKey(t, page, target+"wrong"+strconv.Itoa(i), h); status != http.StatusUnauthorized {
			t.Fatalf("guess %d at one key: %d", i, status)
		}
	}
	res, _ = postForm(t, page, url.Values{"login": {"api-key"}, "password": {target + "wrong"}, "tools": pageDefaults}, http.Header{"X-Forwarded-For": {"192.0.2.100"}})
	if res.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("21st guess at one key: %d", res.StatusCode)
	}
}

func TestRegister_RFC7591(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]

	status, out := e.register(t, tn, map[string]any{"redirect_uris": []string{"cursor://anysphere.cursor-retrieval/oauth/callback"},
		"grant_types": []string{"authorization_code"}, "client_name": "Cursor", "token_endpoint_auth_method": "none"})
	if status != http.StatusCreated || out["client_id"] == "" || out["token_endpoint_auth_method"] != "none" || out["client_secret"] != nil ||
		out["client_id_issued_at"] == nil || out["client_name"] != "Cursor" {
		t.Fatalf("public client: %d %v", status, out)
	}
	status, out = e.register(t, tn, map[string]any{"redirect_uris": []string{"https://app.example.com/cb"}, "token_endpoint_auth_method": "client_secret_basic"})
	if status != http.StatusCreated || out["client_secret"] == nil || out["client_secret_expires_at"] != float64(0) {
		t.Fatalf("confidential client: %d %v", status, out)
	}
	for body, code := range map[string]string{
		`{}`: "invalid_redirect_uri",
		`{"redirect_uris":["http://app.example.com/cb"]}`:                                           "invalid_redirect_uri",
		`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"tls_client_auth"}`: "invalid_client_metadata",
		`not json`: "invalid_client_metadata",
	} {
		req, _ := http.NewRequest(http.MethodPost, tn.url+"/mcp/register", strings.NewReader(body))
		res, raw := do(t, req)
		if res.StatusCode != 400 || !strings.Contains(string(raw), `"error":"`+code+`"`) {
			t.Errorf("%s: %d %s", body, res.StatusCode, raw)
		}
	}
	// Registration is throttled per address (20, then one a minute).
	for range 20 {
		status, _ = e.register(t, tn, map[string]any{"redirect_uris": []string{"http://127.0.0.1:1/cb"}})
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("registration flood: %d", status)
	}
}

func TestConfidentialClient_AuthenticatesAtTheTokenEndpoint(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "https://app.example.com/cb"
	status, out := e.register(t, tn, map[string]any{"redirect_uris": []string{redirect}, "token_endpoint_auth_method": "client_secret_basic"})
	if status != http.StatusCreated {
		t.Fatal(out)
	}
	clientID, secret := out["client_id"].(string), out["client_secret"].(string)
	p := newPKCE()
	code := e.signIn(t, tn, authorizeQuery(clientID, redirect, p), tn.key)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}, "code_verifier": {p.verifier}}
	res, body := postForm(t, tn.url+"/mcp/token", form, http.Header{"Authorization": {"Basic " + basic(clientID, "wrong")}})
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "invalid_client") {
		t.Fatalf("wrong secret: %d %s", res.StatusCode, body)
	}
	// A failed client authentication does not spend the code: Dex authenticates the client first.
	res, body = postForm(t, tn.url+"/mcp/token", form, http.Header{"Authorization": {"Basic " + basic(clientID, secret)}})
	if res.StatusCode != http.StatusOK {
		t.Fatalf("right secret: %d %s", res.StatusCode, body)
	}
}

func basic(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}
