package mcpserver_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/google/jsonschema-go/jsonschema"

	"github.com/tracekit/tracekit/server/store/storetest"
)

var update = flag.Bool("update", false, "rewrite testdata/catalog.json from the server's tools/list")

// Catalog budget: an assistant pays for the whole catalog on every turn.
const (
	catalogTokens  = 3000 // all definitions, characters/4
	descriptionMax = 1024 // bytes per description
	// Clients prefix tool names with the server's alias (Claude Code: "mcp__<alias>__"); with an alias
	// of up to 30 characters the whole must fit 60.
	nameMax = 60 - len("mcp__") - 30 - len("__")
)

// post sends one JSON-RPC message to /mcp and returns the decoded response.
func (e *env) post(t *testing.T, key string, body string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+"/mcp", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("MCP-Protocol-Version", "2025-06-18")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// TestCatalog_FitsTheTokenBudgetAndMatchesTheGoldenFile checks the tool definitions exactly as
// tools/list sends them. Run with -update after an intended change, and review the diff.
func TestCatalog_FitsTheTokenBudgetAndMatchesTheGoldenFile(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	resp, body := e.post(t, e.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("tools/list: %d %s", resp.StatusCode, body)
	}
	var msg struct {
		Result struct {
			Tools []json.RawMessage `json:"tools"`
		} `json:"result"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		t.Fatal(err)
	}
	tools := msg.Result.Tools
	if len(tools) != 11 {
		t.Fatalf("%d tools, want 11", len(tools))
	}
	total := 0
	for _, raw := range tools {
		var compact bytes.Buffer
		if err := json.Compact(&compact, raw); err != nil {
			t.Fatal(err)
		}
		total += compact.Len()
		var tool struct {
			Name         string `json:"name"`
			Description  string `json:"description"`
			InputSchema  *jsonschema.Schema
			OutputSchema *jsonschema.Schema
			Annotations  struct {
				ReadOnlyHint bool `json:"readOnlyHint"`
			} `json:"annotations"`
		}
		if err := json.Unmarshal(raw, &tool); err != nil {
			t.Fatal(err)
		}
		if len(tool.Name) > nameMax || len(tool.Description) > descriptionMax || tool.Description == "" {
			t.Errorf("%s: name of %d bytes (max %d), description of %d bytes (max %d)", tool.Name, len(tool.Name), nameMax, len(tool.Description), descriptionMax)
		}
		if !tool.Annotations.ReadOnlyHint {
			t.Errorf("%s is not annotated readOnlyHint", tool.Name)
		}
		for what, s := range map[string]*jsonschema.Schema{"input": tool.InputSchema, "output": tool.OutputSchema} {
			if s == nil || s.Type != "object" {
				t.Errorf("%s: %s schema is not an object schema", tool.Name, what)
				continue
			}
			if _, err := s.Resolve(nil); err != nil {
				t.Errorf("%s: %s schema does not resolve: %v", tool.Name, what, err)
			}
		}
	}
	t.Logf("catalog: %d characters, %d tokens (budget %d)", total, total/4, catalogTokens)
	if total/4 > catalogTokens {
		t.Errorf("the catalog is %d tokens, over the budget of %d: shorten descriptions or schemas", total/4, catalogTokens)
	}

	var pretty bytes.Buffer
	if err := json.Indent(&pretty, mustJSON(t, tools), "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteString("\n")
	const golden = "testdata/catalog.json"
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (create it with: go test ./server/mcpserver -run TestCatalog -update)", err)
	}
	if !bytes.Equal(want, pretty.Bytes()) {
		t.Errorf("tools/list differs from %s; if intended, rerun with -update and review the diff", golden)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Clients that map schemas onto a one-type dialect (Gemini's function declarations, for one) refuse
// type unions such as ["null","array"]: every schema in the catalog names at most one type.
func TestCatalog_SchemasNameOneTypeEach(t *testing.T) {
	e := newEnv(t, storetest.Open(t, storetest.SQLiteDSN(t)))
	_, body := e.post(t, e.keyA, `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{}}`, nil)
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			if _, ok := x["type"].([]any); ok {
				t.Errorf("%s: type union %v", path, x["type"])
			}
			for k, c := range x {
				walk(path+"."+k, c)
			}
		case []any:
			for i, c := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), c)
			}
		}
	}
	var msg struct {
		Result struct{ Tools []map[string]any }
	}
	if err := json.Unmarshal(body, &msg); err != nil || len(msg.Result.Tools) == 0 {
		t.Fatalf("tools/list: %v %s", err, body)
	}
	for _, tool := range msg.Result.Tools {
		walk(tool["name"].(string), tool)
	}
}
