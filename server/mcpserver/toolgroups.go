package mcpserver

import (
	"context"
	"slices"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/auth"
)

// toolGroups keeps a caller to the tool groups its sign-in granted (auth.ToolGroups): tools/list
// shows only those, and calling another tool answers an isError result that says how to get it.
// Callers with an API key, or a token without tool groups, see every tool.
func toolGroups(next mcp.MethodHandler) mcp.MethodHandler {
	return func(ctx context.Context, method string, req mcp.Request) (mcp.Result, error) {
		p, _ := auth.FromContext(ctx)
		if p.ToolGroups == nil {
			return next(ctx, method, req)
		}
		switch r := req.(type) {
		case *mcp.CallToolRequest:
			if r.Params != nil {
				if msg := p.ToolRefusal(r.Params.Name); msg != "" {
					return &mcp.CallToolResult{IsError: true, Content: []mcp.Content{&mcp.TextContent{Text: msg}}}, nil
				}
			}
		case *mcp.ListToolsRequest:
			res, err := next(ctx, method, req)
			l, ok := res.(*mcp.ListToolsResult)
			if err != nil || !ok {
				return res, err
			}
			out := *l
			out.Tools = slices.DeleteFunc(slices.Clone(l.Tools), func(t *mcp.Tool) bool { return !p.MayUseTool(t.Name) })
			out.CacheScope = "private" // the list depends on who asks
			return &out, nil
		}
		return next(ctx, method, req)
	}
}
