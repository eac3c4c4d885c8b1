package mcpserver_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gin-gonic/gin"
	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// publicURL is the base URL the test server is configured with; browser origins are checked against it.
const publicURL = "https://tracekit.example"

// env is a server over real HTTP with two tenants, acme and globex, each with an API key.
type env struct {
	url          string
	db           *store.DB
	acme, globex *store.Tenant
	keyA, keyB   string
}

func newEnv(t testing.TB, db *store.DB) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{db: db, acme: db.ForTenant("acme"), globex: db.ForTenant("globex")}
	for _, id := range []string{"acme", "globex"} {
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if e.keyA, _, err = db.Admin().CreateAPIKey(ctx, "acme", "test", nil); err != nil {
		t.Fatal(err)
	}
	if e.keyB, _, err = db.Admin().CreateAPIKey(ctx, "globex", "test", nil); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app.New(app.Config{DB: db, PublicURL: publicURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

// serve runs an MCP endpoint configured by cfg alone (no other routes) and returns its URL.
func serve(t *testing.T, cfg mcpserver.Config) string {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := gin.New()
	mcpserver.Register(r, cfg)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return srv.URL
}

// dialects runs fn against PostgreSQL and SQLite, each behind its own server.
func dialects(t *testing.T, fn func(t *testing.T, e *env)) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) { fn(t, newEnv(t, db)) })
}

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// protocol is the revision the tests speak unless they say otherwise: the one issue 3 names. The
// SDK client would otherwise use its latest (2026-07-28, sessionless discovery).
const protocol = "2025-06-18"

// connect opens an MCP session with the SDK's own client, authenticated with key.
func (e *env) connect(t testing.TB, key string) *mcp.ClientSession {
	t.Helper()
	return e.connectVersion(t, key, protocol, nil)
}

func (e *env) connectVersion(t testing.TB, key, version string, rt http.RoundTripper) *mcp.ClientSession {
	t.Helper()
	if rt == nil {
		rt = bearer{key}
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "tracekit-test", Version: "1"}, nil)
	s, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{
		Endpoint: e.url + "/mcp", HTTPClient: &http.Client{Transport: rt}, MaxRetries: -1,
	}, &mcp.ClientSessionOptions{ProtocolVersion: version})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// call invokes a tool and decodes its structured content into out (when not nil). It fails the test
// on a protocol error; tool errors are returned in the result.
func call(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, out any) *mcp.CallToolResult {
	t.Helper()
	if args == nil {
		args = map[string]any{}
	}
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s(%v): %v", tool, args, err)
	}
	if res.IsError {
		return res
	}
	b, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	// The server does not check its answers against the output schemas at run time; every answer
	// a test sees is checked here instead.
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	if err := outputSchema(t, s, tool).Validate(v); err != nil {
		t.Errorf("%s: structured content does not match the output schema: %v\n%s", tool, err, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: decode structured content: %v\n%s", tool, err, b)
		}
	}
	return res
}

var (
	schemasMu sync.Mutex
	schemas   = map[string]*jsonschema.Resolved{} // output schemas by tool name, the same for every server
)

// outputSchema returns the resolved output schema the server lists for tool.
func outputSchema(t *testing.T, s *mcp.ClientSession, tool string) *jsonschema.Resolved {
	t.Helper()
	schemasMu.Lock()
	defer schemasMu.Unlock()
	if r, ok := schemas[tool]; ok {
		return r
	}
	for listed, err := range s.Tools(context.Background(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		b, err := json.Marshal(listed.OutputSchema)
		if err != nil {
			t.Fatal(err)
		}
		var sc jsonschema.Schema
		if err := json.Unmarshal(b, &sc); err != nil {
			t.Fatal(err)
		}
		r, err := sc.Resolve(nil)
		if err != nil {
			t.Fatalf("%s: output schema: %v", listed.Name, err)
		}
		schemas[listed.Name] = r
	}
	if schemas[tool] == nil {
		t.Fatalf("%s is not listed", tool)
	}
	return schemas[tool]
}

// text returns the text content of a result.
func text(res *mcp.CallToolResult) string {
	var b strings.Builder
	for _, c := range res.Content {
		if tc, ok := c.(*mcp.TextContent); ok {
			b.WriteString(tc.Text)
		}
	}
	return b.String()
}

// mustOK fails unless the result is a success, and returns its text.
func mustOK(t *testing.T, tool string, res *mcp.CallToolResult) string {
	t.Helper()
	if res.IsError {
		t.Fatalf("%s: unexpected tool error: %s", tool, text(res))
	}
	return text(res)
}

// answerTokens is the size of a result as an assistant pays for it: text plus structured content,
// in characters/4.
func answerTokens(res *mcp.CallToolResult) int {
	b, _ := json.Marshal(res.StructuredContent)
	return (len(text(res)) + len(b)) / 4
}

// anomalyRef is the id under which the tools show tenant tn's anomaly id.
func anomalyRef(t testing.TB, tn *store.Tenant, id int64) string {
	t.Helper()
	ref, err := mcpserver.AnomalyRef(context.Background(), tn, id)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}
