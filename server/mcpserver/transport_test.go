package mcpserver_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/jsonrpc"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

const listTools = `{"jsonrpc":"2.0","id":7,"method":"tools/list","params":{}}`

func TestMCP_WithoutValidKeyAnswers401PointingAtResourceMetadata(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		for name, key := range map[string]string{"no key": "", "unknown key": "tk_" + strings.Repeat("a", 43)} {
			resp, body := e.post(t, key, listTools, nil)
			auth := resp.Header.Get("WWW-Authenticate")
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(auth, `resource_metadata="`+publicURL+`/.well-known/oauth-protected-resource"`) {
				t.Errorf("%s: %d, WWW-Authenticate %q, body %s", name, resp.StatusCode, auth, body)
			}
			if key != "" && !strings.Contains(auth, `error="invalid_token"`) {
				t.Errorf("%s: WWW-Authenticate %q lacks error=invalid_token", name, auth)
			}
		}
		client := mcp.NewClient(&mcp.Implementation{Name: "anonymous"}, nil)
		if _, err := client.Connect(context.Background(), &mcp.StreamableClientTransport{Endpoint: e.url + "/mcp", MaxRetries: -1}, nil); err == nil {
			t.Error("the SDK client connected without a key")
		}
	})
}

func TestMCP_KeyWithoutReadScopeIsForbidden(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	key, _, err := e.db.Admin().CreateAPIKey(context.Background(), "acme", "exporter", []string{store.ScopeIngest})
	if err != nil {
		t.Fatal(err)
	}
	resp, body := e.post(t, key, listTools, nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("ingest-only key: %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
	}
}

func TestMCP_ChecksOriginAndAnswersCORSBeforeAuthentication(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, origin := range []string{"https://evil.example", "http://tracekit.example", "null"} {
		resp, body := e.post(t, e.keyA, listTools, map[string]string{"Origin": origin})
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("POST from origin %s: %d %s, want 403", origin, resp.StatusCode, body)
		}
	}
	for _, origin := range []string{publicURL, "http://localhost:6274", "http://127.0.0.1:5173"} {
		resp, body := e.post(t, e.keyA, listTools, map[string]string{"Origin": origin})
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Access-Control-Allow-Origin") != origin ||
			!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
			t.Errorf("POST from origin %s: %d %v %s", origin, resp.StatusCode, resp.Header, body)
		}
	}
	// A browser's failed sign-in must be able to read WWW-Authenticate.
	resp, _ := e.post(t, "", listTools, map[string]string{"Origin": "http://localhost:6274"})
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Access-Control-Allow-Origin") == "" {
		t.Errorf("401 to an allowed origin lacks CORS headers: %d %v", resp.StatusCode, resp.Header)
	}

	req, _ := http.NewRequest(http.MethodOptions, e.url+"/mcp", nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version")
	pre, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	pre.Body.Close()
	allow := strings.ToLower(pre.Header.Get("Access-Control-Allow-Headers"))
	if pre.StatusCode != http.StatusNoContent || !strings.Contains(allow, "authorization") || !strings.Contains(allow, "mcp-protocol-version") ||
		!strings.Contains(pre.Header.Get("Access-Control-Allow-Methods"), "POST") {
		t.Errorf("preflight without credentials: %d %v", pre.StatusCode, pre.Header)
	}
}

func TestMCP_MalformedAndUnknownRequestsGetJSONRPCErrors(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	type rpcError struct {
		ID    any `json:"id"`
		Error struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	for _, tc := range []struct {
		body   string
		status int
		code   int
		id     any
	}{
		{`{"jsonrpc":"2.0","id":1,"method":"tools/list"`, http.StatusBadRequest, -32700, nil},
		{`{"jsonrpc":"2.0","id":2,"method":"tools/destroy","params":{}}`, http.StatusBadRequest, -32601, 2.0},
		{`{"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"drop_tables","arguments":{}}}`, http.StatusOK, -32602, "x"},
	} {
		resp, body := e.post(t, e.keyA, tc.body, nil)
		var got rpcError
		if err := json.Unmarshal(body, &got); err != nil || resp.StatusCode != tc.status || got.Error.Code != tc.code || got.ID != tc.id || got.Error.Message == "" {
			t.Errorf("%s: %d %s, want status %d and JSON-RPC error %d with id %v", tc.body, resp.StatusCode, body, tc.status, tc.code, tc.id)
		}
	}
	resp, body := e.post(t, e.keyA, listTools, map[string]string{"Content-Type": "text/plain"})
	if resp.StatusCode != http.StatusUnsupportedMediaType || !strings.Contains(string(body), `"code":-32600`) {
		t.Errorf("text/plain body: %d %s", resp.StatusCode, body)
	}
}

func TestMCP_ProtocolVersionHeaderIsValidated(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, v := range []string{"2025-06-18", "2025-11-25", "2025-03-26"} {
		if resp, body := e.post(t, e.keyA, listTools, map[string]string{"MCP-Protocol-Version": v}); resp.StatusCode != http.StatusOK {
			t.Errorf("version %s: %d %s", v, resp.StatusCode, body)
		}
	}
	resp, body := e.post(t, e.keyA, listTools, map[string]string{"MCP-Protocol-Version": "1999-01-01"})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "2025-06-18") {
		t.Errorf("unsupported version: %d %s, want 400 listing the supported ones", resp.StatusCode, body)
	}
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	resp, body = e.post(t, e.keyA, init, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"protocolVersion":"2025-06-18"`) || resp.Header.Get("Mcp-Session-Id") != "" {
		t.Errorf("initialize 2025-06-18: %d session %q %s", resp.StatusCode, resp.Header.Get("Mcp-Session-Id"), body)
	}
}

func TestMCP_StatelessServerAnswersGETAndDELETEWith405(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		req, _ := http.NewRequest(m, e.url+"/mcp", nil)
		req.Header.Set("Authorization", "Bearer "+e.keyA)
		req.Header.Set("Accept", "text/event-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
			t.Errorf("%s /mcp: %d Allow=%q", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

// TestMCP_AnyReplicaServesAnyRequestOfASession alternates every HTTP request of one client session
// between two servers on the same database, as a Service in front of two pods may, under each
// protocol revision the SDK negotiates.
func TestMCP_AnyReplicaServesAnyRequestOfASession(t *testing.T) {
	db := storetest.Open(t, storetest.PostgresDSN(t))
	e := newEnv(t, db)
	sh := seedShop(t, e.acme, time.Now())
	other := httptest.NewServer(app.New(app.Config{DB: db, PublicURL: publicURL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}))
	t.Cleanup(other.Close)
	for _, version := range []string{"2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			var n atomic.Int64
			backends := []string{e.url, other.URL}
			rr := roundTripFunc(func(r *http.Request) (*http.Response, error) {
				u, _ := url.Parse(backends[n.Add(1)%2])
				r = r.Clone(r.Context())
				r.URL.Scheme, r.URL.Host, r.Host = u.Scheme, u.Host, u.Host
				r.Header.Set("Authorization", "Bearer "+e.keyA)
				return http.DefaultTransport.RoundTrip(r)
			})
			s := e.connectVersion(t, "", version, rr)
			if got := s.InitializeResult().ProtocolVersion; got != version {
				t.Errorf("negotiated %s, want %s", got, version)
			}
			for i := 0; i < 4; i++ {
				var out page
				mustOK(t, "list_services", call(t, s, "list_services", nil, &out))
				if out.Total != 4 {
					t.Errorf("call %d: %d services", i, out.Total)
				}
			}
			// Each page's cursor is opened by the other replica: both derive its key from the tenant's
			// secret in the database.
			if ids := pageAll(t, s, "search_traces", map[string]any{"limit": 40, "since": "3h"}, "traces", "trace_id"); len(ids) != sh.traces {
				t.Errorf("paged %d requests across replicas, want %d", len(ids), sh.traces)
			}
			if n.Load() < 5 {
				t.Errorf("only %d HTTP requests: the session did not alternate between replicas", n.Load())
			}
		})
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestMCP_NullArgumentsAreNoArgumentsAndDoNotCrashTheServer(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, params := range []string{`"arguments":null`, `"arguments":{}`, `"_meta":{}`} {
		body := `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_services",` + params + `}}`
		resp, b := e.post(t, e.keyA, body, nil)
		if resp.StatusCode != http.StatusOK || strings.Contains(string(b), `"isError":true`) || !strings.Contains(string(b), "0 of 0 services") {
			t.Errorf("%s: %d %s", params, resp.StatusCode, b)
		}
	}
}

// Browser clients on 2026-07-28 send Mcp-Method and Mcp-Name on every request; a preflight that
// does not allow them blocks the request.
func TestMCP_PreflightAllowsThe20260728RequestHeaders(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	req, _ := http.NewRequest(http.MethodOptions, e.url+"/mcp", nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	req.Header.Set("Access-Control-Request-Headers", "authorization, content-type, mcp-protocol-version, mcp-method, mcp-name")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	allow := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, h := range []string{"mcp-method", "mcp-name"} {
		if !strings.Contains(allow, h) {
			t.Errorf("preflight allows %q, not %s", allow, h)
		}
	}
}

// A stateless JSON-only server never sends log messages nor list-changed notifications, and serves
// no prompts or resources: it declares only tools, and the methods of what it does not declare are
// unknown to it, under every revision.
func TestMCP_DeclaresOnlyWhatItServes(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, version := range []string{"2025-06-18", "2025-11-25", "2026-07-28"} {
		t.Run(version, func(t *testing.T) {
			s := e.connectVersion(t, e.keyA, version, nil)
			caps := s.InitializeResult().Capabilities
			//lint:ignore SA1019 older protocol versions still have logging: it must not be declared
			if caps.Logging != nil || caps.Prompts != nil || caps.Resources != nil || caps.Completions != nil {
				t.Errorf("declares more than tools: %+v", caps)
			}
			if caps.Tools == nil || caps.Tools.ListChanged {
				t.Errorf("tools capability %+v, want declared without listChanged", caps.Tools)
			}
			ctx := context.Background()
			for name, call := range map[string]func() error{
				"prompts/list":             func() error { _, err := s.ListPrompts(ctx, nil); return err },
				"resources/list":           func() error { _, err := s.ListResources(ctx, nil); return err },
				"resources/templates/list": func() error { _, err := s.ListResourceTemplates(ctx, nil); return err },
				"resources/read":           func() error { _, err := s.ReadResource(ctx, &mcp.ReadResourceParams{URI: "file:///x"}); return err },
				"prompts/get":              func() error { _, err := s.GetPrompt(ctx, &mcp.GetPromptParams{Name: "x"}); return err },
			} {
				err := call()
				var werr *jsonrpc.Error
				if !errors.As(err, &werr) || werr.Code != jsonrpc.CodeMethodNotFound {
					t.Errorf("%s: %v, want JSON-RPC error -32601", name, err)
				}
			}
		})
	}
	// The same over plain HTTP under 2025-06-18, where no initialize is needed in stateless mode.
	resp, body := e.post(t, e.keyA, `{"jsonrpc":"2.0","id":4,"method":"prompts/list","params":{}}`, nil)
	if !strings.Contains(string(body), `"code":-32601`) {
		t.Errorf("prompts/list: %d %s", resp.StatusCode, body)
	}
}

// An unsupported version is answered with the supported ones whatever the request, including
// versions later than the newest this server knows (which the SDK takes for the sessionless kind).
func TestMCP_UnsupportedVersionListsTheSupportedOnes(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	init := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01","capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}`
	for _, tc := range []struct{ version, body string }{
		{"1999-01-01", listTools},
		{"2099-01-01", listTools},
		{"2099-01-01", init},
		{"2026-13-45", listTools},
	} {
		resp, body := e.post(t, e.keyA, tc.body, map[string]string{"MCP-Protocol-Version": tc.version})
		var got struct {
			ID    any
			Error struct {
				Code    int
				Message string
				Data    struct{ Supported []string }
			}
		}
		_ = json.Unmarshal(body, &got)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(got.Error.Message, "2025-06-18") ||
			!slices.Contains(got.Error.Data.Supported, "2026-07-28") || got.Error.Code != mcp.CodeUnsupportedProtocolVersion || got.ID == nil {
			t.Errorf("version %s: %d %s, want 400 with error %d listing the supported versions, with the request's id", tc.version, resp.StatusCode, body, mcp.CodeUnsupportedProtocolVersion)
		}
	}
}

// Bodies that are JSON but not a JSON-RPC request are invalid requests, answered without the
// server's internals; a message with neither method nor result is not a notification to accept.
func TestMCP_JSONThatIsNotARequestIsAnInvalidRequest(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	for _, body := range []string{`42`, `"tools/list"`, `null`, `true`, `{"jsonrpc":"2.0","id":1}`, `{"jsonrpc":"2.0","id":1,"method":""}`, `{"jsonrpc":"2.0","id":1,"method":42}`} {
		resp, b := e.post(t, e.keyA, body, nil)
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), `"code":-32600`) ||
			strings.Contains(string(b), "Go value") || strings.Contains(string(b), "json.RawMessage") {
			t.Errorf("body %s: %d %s, want 400 with JSON-RPC error -32600 and no Go type names", body, resp.StatusCode, b)
		}
	}
}
