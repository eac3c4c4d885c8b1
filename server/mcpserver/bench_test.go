package mcpserver_test

import (
	"context"
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
