package oauth_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/tracekit/tracekit/server/oauth"
)

// clientCase is what one MCP client sends while it signs in, as its maintainers publish it or as it
// was observed; the bodies follow the TypeScript SDK (dist/esm/client/auth.js), which these clients
// are built on, unless the case says otherwise.
type clientCase struct {
	name string
	// registration is the client's RFC 7591 body; nil for a client that presents a metadata document.
	registration map[string]any
	// document is the client's metadata document; its client_id is set to where the test serves it.
	document map[string]any
	// redirect is where the client listens when it asks to sign in: for loopback clients, often
	// another port than the one registered.
	redirect string
	// scope is the authorization request's scope ("" for none).
	scope string
	// resource is sent on the authorization and token requests when set.
	resource bool
	// origin is the web page's origin for a client that runs in a browser.
	origin string
	// destination is where the API-key page says the access goes.
	destination string
}

// claudeDocument is Claude's published document (claude.ai/oauth/mcp-oauth-client-metadata).
var claudeDocument = map[string]any{"client_name": "Claude", "client_uri": "https://claude.ai",
	"redirect_uris":  []string{"https://claude.ai/api/mcp/auth_callback"},
	"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
	"response_types": []string{"code"}, "token_endpoint_auth_method": "none"}

// tsRegistration is the TypeScript SDK's registration body: the provider's clientMetadata, with the
// protected resource's scopes_supported as scope.
func tsRegistration(name string, redirects ...string) map[string]any {
	return map[string]any{"client_name": name, "redirect_uris": redirects, "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "token_endpoint_auth_method": "none", "scope": "read"}
}

var clientMatrix = []clientCase{
	{
		// Claude.ai, Desktop and mobile connectors use the hosted document when the server advertises
		// client_id_metadata_document_supported and "none"; scope is the resource's scopes_supported
		// plus offline_access, which the authorization server lists.
		name: "Claude web connector", document: claudeDocument, redirect: "https://claude.ai/api/mcp/auth_callback",
		scope: "read offline_access", resource: true,
		destination: "claude.ai",
	},
	{
		// claude.ai/oauth/claude-code-client-metadata: port-less loopback redirects; Claude Code
		// listens on a free port.
		name: "Claude Code (metadata document)",
		document: map[string]any{"client_name": "Claude Code", "client_uri": "https://claude.ai",
			"redirect_uris": []string{"http://localhost/callback", "http://127.0.0.1/callback"},
			"grant_types":   []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_method": "none"},
		redirect: "http://localhost:54545/callback", scope: "read offline_access", resource: true,
		destination: "this computer",
	},
	{
		// Before metadata documents, Claude Code registered its loopback listener and omitted resource.
		name:         "Claude Code (registration, no resource)",
		registration: tsRegistration("Claude Code (tracekit)", "http://localhost:51234/callback"),
		redirect:     "http://localhost:51234/callback", scope: "read",
		destination: "this computer",
	},
	{
		// vscode.dev/oauth/client-metadata.json, with a device-code grant this server does not offer.
		name: "VS Code (metadata document)",
		document: map[string]any{"client_name": "Visual Studio Code", "application_type": "native", "client_uri": "https://vscode.dev/product",
			"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none",
			"redirect_uris": []string{"http://127.0.0.1:33418/", "https://vscode.dev/redirect"}},
		redirect: "http://127.0.0.1:33418/", scope: "read", resource: true,
		destination: "this computer or vscode.dev",
	},
	{
		// microsoft/vscode#278512: what VS Code registers, and the redirect when port 33418 is taken.
		name: "VS Code (registration, another port)",
		registration: tsRegistration("Visual Studio Code", "https://insiders.vscode.dev/redirect", "https://vscode.dev/redirect",
			"http://127.0.0.1/", "http://127.0.0.1:33418/"),
		redirect: "http://127.0.0.1:59656/", scope: "read", resource: true,
		destination: "insiders.vscode.dev or vscode.dev or this computer",
	},
	{
		// Cursor registers its desktop loopback, its web agents' callback and the older private-use
		// scheme in one request (cursor.com/docs/context/mcp; Cursor staff on its forum).
		name: "Cursor",
		registration: tsRegistration("Cursor", "http://localhost:8787/callback", "https://www.cursor.com/agents/mcp/oauth/callback",
			"cursor://anysphere.cursor-mcp/oauth/callback"),
		redirect: "http://localhost:8787/callback", scope: "read", resource: true,
		destination: "this computer or www.cursor.com or cursor://anysphere.cursor-mcp",
	},
	{
		name:         "Cursor (private-use scheme)",
		registration: tsRegistration("Cursor", "cursor://anysphere.cursor-mcp/oauth/callback"),
		redirect:     "cursor://anysphere.cursor-mcp/oauth/callback", scope: "read", resource: true,
		destination: "cursor://anysphere.cursor-mcp",
	},
	{
		// Windsurf publishes nothing about its sign-in; servers that list it record a loopback
		// listener on localhost.
		name:         "Windsurf",
		registration: tsRegistration("Windsurf", "http://localhost:38921/callback"),
		redirect:     "http://localhost:38921/callback", scope: "read", resource: true,
		destination: "this computer",
	},
	{
		// Cline is a VS Code extension: VS Code's URI handler receives the response, under a path
		// derived from the server's URL.
		name:         "Cline",
		registration: tsRegistration("Cline", "vscode://saoudrizwan.claude-dev/mcp-auth/callback/3f9a1c2b"),
		redirect:     "vscode://saoudrizwan.claude-dev/mcp-auth/callback/3f9a1c2b", scope: "read", resource: true,
		destination: "vscode://saoudrizwan.claude-dev",
	},
	{
		// chatgpt.com/oauth/client.json prefers private_key_jwt and lists none, which is what a
		// server advertising only none gets.
		name: "ChatGPT connector",
		document: map[string]any{"client_name": "ChatGPT", "client_uri": "https://chatgpt.com/",
			"redirect_uris":              []string{"https://chatgpt.com/connector_platform_oauth_redirect"},
			"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt"},
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"token_endpoint_auth_signing_alg": "RS256", "jwks_uri": "https://chatgpt.com/oauth/jwks.json"},
		redirect: "https://chatgpt.com/connector_platform_oauth_redirect", scope: "read", resource: true,
		destination: "chatgpt.com",
	},
	{
		// The MCP Inspector runs in a browser page on localhost:6274: every call is cross-origin.
		name: "MCP Inspector",
		registration: map[string]any{"redirect_uris": []string{"http://localhost:6274/oauth/callback"}, "token_endpoint_auth_method": "none",
			"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
			"client_name": "MCP Inspector", "client_uri": "https://github.com/modelcontextprotocol/inspector", "scope": "read"},
		redirect: "http://localhost:6274/oauth/callback", scope: "read", resource: true, origin: "http://localhost:6274",
		destination: "this computer",
	},
}

// documentHost serves the matrix's metadata documents over TLS, each at its own path.
type documentHost struct {
	srv   *httptest.Server
	mu    sync.Mutex
	docs  map[string]map[string]any
	roots *x509.CertPool
}

func newDocumentHost(t *testing.T) *documentHost {
	h := &documentHost{docs: map[string]map[string]any{}}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		doc, ok := h.docs[r.URL.Path]
		h.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		json.NewEncoder(w).Encode(doc)
	}))
	t.Cleanup(h.srv.Close)
	h.roots = x509.NewCertPool()
	h.roots.AddCert(h.srv.Certificate())
	return h
}

// publish serves doc at path and returns its URL, which is also its client_id.
func (h *documentHost) publish(path string, doc map[string]any) string {
	id := h.srv.URL + path
	out := map[string]any{"client_id": id}
	for k, v := range doc {
		out[k] = v
	}
	h.mu.Lock()
	h.docs[path] = out
	h.mu.Unlock()
	return id
}

// request sends a request as the client would, from its page's origin when it runs in a browser,
// after the CORS preflight a browser sends for it.
func (c clientCase) request(t *testing.T, method, u string, body string, header http.Header) (*http.Response, []byte) {
	t.Helper()
	if c.origin != "" && (method != http.MethodGet || len(header) > 0) {
		var names []string // the headers a browser names in the preflight: not the safelisted ones
		for k := range header {
			if k := strings.ToLower(k); k != "accept" && k != "content-type" {
				names = append(names, k)
			}
		}
		pre, _ := http.NewRequest(http.MethodOptions, u, nil)
		pre.Header.Set("Origin", c.origin)
		pre.Header.Set("Access-Control-Request-Method", method)
		pre.Header.Set("Access-Control-Request-Headers", strings.Join(names, ","))
		res, _ := do(t, pre)
		allowed := strings.ToLower(res.Header.Get("Access-Control-Allow-Headers"))
		if res.StatusCode != http.StatusNoContent || !originAllowed(res, c.origin) {
			t.Fatalf("preflight %s: %d %v", u, res.StatusCode, res.Header)
		}
		for _, n := range names {
			if !strings.Contains(allowed, n) {
				t.Fatalf("preflight %s does not allow header %s: %q", u, n, allowed)
			}
		}
	}
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	if c.origin != "" {
		req.Header.Set("Origin", c.origin)
	}
	res, raw := do(t, req)
	if c.origin != "" && !originAllowed(res, c.origin) {
		t.Fatalf("%s %s: the page cannot read the answer: %v", method, u, res.Header)
	}
	return res, raw
}

func originAllowed(res *http.Response, origin string) bool {
	o := res.Header.Get("Access-Control-Allow-Origin")
	return o == "*" || o == origin
}

// Each client in the matrix goes from a bare 401 to a tool call and a refreshed token, sending what it
// really sends.
func TestClientMatrix_EveryClientSignsInAndCallsTheMCPEndpoint(t *testing.T) {
	docs := newDocumentHost(t)
	e := newEnv(t, envOptions{documents: oauth.NewTestDocumentFetcher(docs.roots)}, "acme")
	tn := e.tenants["acme"]
	mcpURL := tn.url + "/mcp"
	const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"matrix","version":"1"}}}`
	mcpHeader := func(token string) http.Header {
		h := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}, "Mcp-Protocol-Version": {"2025-06-18"}}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		return h
	}

	for i, cc := range clientMatrix {
		t.Run(cc.name, func(t *testing.T) {
			// Discovery: the 401, the protected resource, the authorization server.
			res, _ := cc.request(t, http.MethodPost, mcpURL, initialize, mcpHeader(""))
			ch, err := oauthex.ParseWWWAuthenticate([]string{res.Header.Get("WWW-Authenticate")})
			if res.StatusCode != http.StatusUnauthorized || err != nil || ch[0].Params["resource_metadata"] == "" {
				t.Fatalf("bare request: %d %q", res.StatusCode, res.Header.Get("WWW-Authenticate"))
			}
			if cc.origin != "" && !strings.Contains(res.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
				t.Fatalf("the page cannot read WWW-Authenticate: %v", res.Header)
			}
			versionHeader := http.Header{"Mcp-Protocol-Version": {"2025-06-18"}}
			res, body := cc.request(t, http.MethodGet, ch[0].Params["resource_metadata"], "", versionHeader)
			var prm oauthex.ProtectedResourceMetadata
			if res.StatusCode != http.StatusOK || json.Unmarshal(body, &prm) != nil || prm.Resource != mcpURL {
				t.Fatalf("protected resource: %d %s", res.StatusCode, body)
			}
			res, body = cc.request(t, http.MethodGet, prm.AuthorizationServers[0]+"/.well-known/oauth-authorization-server", "", versionHeader)
			var asm oauthex.AuthServerMeta
			if res.StatusCode != http.StatusOK || json.Unmarshal(body, &asm) != nil {
				t.Fatalf("authorization server: %d %s", res.StatusCode, body)
			}
			// What makes Claude and VS Code pick their metadata document.
			if !asm.ClientIDMetadataDocumentSupported || !slices.Contains(asm.TokenEndpointAuthMethodsSupported, "none") {
				t.Fatalf("metadata documents not advertised: %s", body)
			}

			// The client id: a metadata document's URL, or a registration.
			var clientID string
			if cc.document != nil {
				clientID = docs.publish("/client/"+string(rune('a'+i))+"/metadata.json", cc.document)
			} else {
				raw, _ := json.Marshal(cc.registration)
				res, body := cc.request(t, http.MethodPost, asm.RegistrationEndpoint, string(raw), http.Header{"Content-Type": {"application/json"}})
				var reg map[string]any
				if res.StatusCode != http.StatusCreated || json.Unmarshal(body, &reg) != nil || reg["token_endpoint_auth_method"] != "none" {
					t.Fatalf("registration: %d %s", res.StatusCode, body)
				}
				clientID = reg["client_id"].(string)
			}

			// Authorization in the person's browser, the page's defaults ticked.
			p := newPKCE()
			q := authorizeQuery(clientID, cc.redirect, p)
			if cc.scope != "" {
				q.Set("scope", cc.scope)
			}
			if cc.resource {
				q.Set("resource", prm.Resource)
			}
			if asm.AuthorizationEndpoint != tn.url+"/mcp/authorize" {
				t.Fatalf("authorization endpoint %q", asm.AuthorizationEndpoint)
			}
			page, refused := e.loginPage(t, tn, q)
			if refused != nil {
				t.Fatalf("authorization refused: %s", refused)
			}
			if _, body := getURL(t, page); !strings.Contains(string(body), "receives the access at <strong>"+cc.destination+"</strong>") {
				t.Fatalf("the API-key page does not say the access goes to %s:\n%s", cc.destination, body)
			}
			status, back := e.submitKey(t, page, tn.key, nil)
			if status != http.StatusSeeOther || !strings.HasPrefix(back.String(), cc.redirect) ||
				back.Query().Get("state") != q.Get("state") || back.Query().Get("iss") != asm.Issuer {
				t.Fatalf("back to the client: %d %v", status, back)
			}

			// The token, as a public client: client_id in the body.
			form := url.Values{"grant_type": {"authorization_code"}, "code": {back.Query().Get("code")}, "code_verifier": {p.verifier},
				"redirect_uri": {cc.redirect}, "client_id": {clientID}}
			if cc.resource {
				form.Set("resource", prm.Resource)
			}
			tok := cc.token(t, asm.TokenEndpoint, form)
			if tok.Scope != "read tools:traces tools:metrics tools:llm" || tok.RefreshToken == "" {
				t.Fatalf("token response %+v", tok)
			}
			if res, body := cc.request(t, http.MethodPost, mcpURL, initialize, mcpHeader(tok.AccessToken)); res.StatusCode != http.StatusOK {
				t.Fatalf("MCP with the token: %d %s", res.StatusCode, body)
			}

			refresh := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientID}}
			if cc.resource {
				refresh.Set("resource", prm.Resource)
			}
			tok = cc.token(t, asm.TokenEndpoint, refresh)
			if res, body := cc.request(t, http.MethodPost, mcpURL, initialize, mcpHeader(tok.AccessToken)); res.StatusCode != http.StatusOK {
				t.Fatalf("MCP with the refreshed token: %d %s", res.StatusCode, body)
			}
		})
	}
}

type matrixToken struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

func (c clientCase) token(t *testing.T, endpoint string, form url.Values) matrixToken {
	t.Helper()
	res, body := c.request(t, http.MethodPost, endpoint, form.Encode(), http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Accept": {"application/json"}})
	var tok matrixToken
	if res.StatusCode != http.StatusOK || json.Unmarshal(body, &tok) != nil || tok.AccessToken == "" {
		t.Fatalf("%s %s: %d %s", form.Get("grant_type"), endpoint, res.StatusCode, body)
	}
	return tok
}
