package oauth_test

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	mcpauth "github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/oauth"
)

// A person signs in in Chromium, through a client that presents a metadata document (the Go SDK's),
// and lets the assistant read traces only: the token says so, tools/list shows only the traces tools,
// and another tool answers an isError result that says how to get it.
func TestConsentPage_ToolGroupsTickedInChromiumLimitTheAssistant(t *testing.T) {
	b := browsertest.New(t)
	docs := newDocumentHost(t)
	e := newEnv(t, envOptions{documents: oauth.NewTestDocumentFetcher(docs.roots)}, "acme")
	tn := e.tenants["acme"]
	cb := browsertest.NewCallback(t)
	docURL := docs.publish("/oauth/go-sdk-client.json", map[string]any{"client_name": "Go SDK e2e",
		"redirect_uris": []string{"http://127.0.0.1/callback"}, "grant_types": []string{"authorization_code", "refresh_token"},
		"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})

	var offered []string
	h, err := mcpauth.NewAuthorizationCodeHandler(&mcpauth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &mcpauth.ClientIDMetadataDocumentConfig{URL: docURL},
		RedirectURL:                    cb.URL,
		RequestRefreshToken:            true,
		AuthorizationCodeFetcher: func(ctx context.Context, args *mcpauth.AuthorizationArgs) (*mcpauth.AuthorizationResult, error) {
			if u, _ := url.Parse(args.URL); u.Query().Get("client_id") != docURL {
				t.Errorf("the client did not present its document: %s", args.URL)
			}
			var err error
			if offered, err = b.SignInChoosingTools(args.URL, tn.key, []string{"traces"}); err != nil {
				return nil, err
			}
			return awaitAuthorization(ctx, cb)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tn.url + "/mcp", OAuthHandler: h}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()

	var groups []string
	for _, g := range auth.ToolGroups {
		groups = append(groups, g.ID)
	}
	if !slices.Equal(offered, groups) {
		t.Fatalf("the page offers %v, want every tool group %v", offered, groups)
	}
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	if slices.Sort(names); !slices.Equal(names, slices.Sorted(slices.Values(auth.ToolGroups[0].Tools))) {
		t.Fatalf("tools/list after granting traces only: %v", names)
	}
	if res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "search_traces", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("a granted tool: %v %+v", err, res)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "get_llm_stats", Arguments: map[string]any{}})
	if err != nil || !res.IsError || len(res.Content) != 1 || !strings.Contains(res.Content[0].(*mcp.TextContent).Text, `tick "LLM usage and cost"`) {
		t.Fatalf("a tool outside the grant: %v %+v", err, res)
	}
}

// Every tool the MCP server offers belongs to a tool group the page offers; an API key sees them all.
func TestToolGroups_CoverEveryToolOfTheMCPServer(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	ctx := t.Context()
	withKey := &http.Client{Transport: bearerTransport(tn.key)}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: tn.url + "/mcp", HTTPClient: withKey}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	list, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var grouped []string
	for _, g := range auth.ToolGroups {
		grouped = append(grouped, g.Tools...)
	}
	var names []string
	for _, tool := range list.Tools {
		names = append(names, tool.Name)
	}
	slices.Sort(names)
	if slices.Sort(grouped); !slices.Equal(names, grouped) {
		t.Fatalf("tools %v, tool groups cover %v", names, grouped)
	}
}

// A sign-in that grants no tool group is refused before the key is checked.
func TestConsentPage_RefusesASignInWithoutToolGroups(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	page, _ := e.loginPage(t, tn, authorizeQuery(e.registerClient(t, tn, redirect), redirect, newPKCE()))
	res, body := postForm(t, page, url.Values{"login": {"api-key"}, "password": {tn.key}}, nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "Choose at least one group of tools") {
		t.Fatalf("no tool group: %d %s", res.StatusCode, body)
	}
}

type bearerTransport string

func (b bearerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+string(b))
	return http.DefaultTransport.RoundTrip(r)
}
