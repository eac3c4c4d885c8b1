package mcpserver_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store/storetest"
)

// BenchmarkCallTool_Repeated measures a call whose answer is shared from the cache: the cost of the
// protocol path (HTTP, JSON-RPC, schema validation, rendering to the wire) without the database.
func BenchmarkCallTool_Repeated(b *testing.B) {
	e := newEnv(b, storetest.Open(b, storetest.SQLiteDSN(b)))
	seedShop(b, e.acme, time.Now())
	s := e.connect(b, e.keyA)
	params := &mcp.CallToolParams{Name: "list_services", Arguments: map[string]any{}}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.CallTool(context.Background(), params); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkCallTool_RepeatedServerSide is the same call sent as a load generator sends it: one
// prepared JSON-RPC POST, the answer read but not decoded, so the figure is mostly the server's cost.
func BenchmarkCallTool_RepeatedServerSide(b *testing.B) {
	e := newEnv(b, storetest.Open(b, storetest.SQLiteDSN(b)))
	seedShop(b, e.acme, time.Now())
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_services","arguments":{}}}`
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.url+"/mcp", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+e.keyA)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
			req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || n < 100 {
				b.Fatalf("status %d, %d bytes", res.StatusCode, n)
			}
		}
	})
}
