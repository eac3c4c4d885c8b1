package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/sdk/go/redact"
	"github.com/tracekit/tracekit/server/store"
)

type listBreakpointsIn struct {
	Service string `json:"service,omitempty"`
	Page
}

type breakpointRow struct {
	ID        string `json:"id"`
	Service   string `json:"service"`
	Location  string `json:"location"` // file:line, or "label <name>"
	Condition string `json:"condition,omitempty"`
	Hits      int    `json:"hits"`
	HitLimit  int    `json:"hit_limit,omitempty"`
	Expires   string `json:"expires,omitempty"`
	Created   string `json:"created"`
}

type listBreakpointsOut struct {
	Breakpoints []breakpointRow `json:"breakpoints"`
	List
}

func (tl *tools) addListBreakpoints(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name:        "list_breakpoints",
		Description: "Active live-debugging breakpoints: service, file:line, condition, hits so far and limit, expiry. Their captures: search_snapshots.",
	}, func(p map[string]*jsonschema.Schema) {
		pageSchema(p, 50, 200)
	}, tl.listBreakpoints)
}

func (tl *tools) listBreakpoints(ctx context.Context, tn *store.Tenant, in listBreakpointsIn) (listBreakpointsOut, string, error) {
	var out listBreakpointsOut
	now := tl.now()
	var offset int
	if _, _, _, err := decodeCursor(ctx, in.Cursor, in, &offset); err != nil {
		return out, "", err
	}
	bps, err := tn.ActiveBreakpoints(ctx, in.Service, now.UnixNano())
	if err != nil {
		return out, "", err
	}
	out.Window, out.Total = timeRange(time.Time{}, now), len(bps)
	page, lines, next := offsetPage(len(bps), offset, clamp(in.Limit, 1, 200, 50), newBudget(in.MaxTokens),
		func(i int) breakpointRow { return newBreakpointRow(bps[i]) })
	out.Breakpoints = page
	if next >= 0 {
		out.Truncated, out.NextCursor = true, encodeCursor(ctx, in, time.Time{}, now, next)
	}
	out.Returned = len(out.Breakpoints)
	if out.Total == 0 {
		out.Note = "no breakpoint is active; create one with: tracekit breakpoint create --service <name> --file <file> --line <n>."
		out.Next = []Call{{Tool: "search_snapshots", Args: map[string]any{"since": "7d"}, Why: "captures of earlier breakpoints"}}
	} else {
		out.Next = []Call{{Tool: "search_snapshots", Args: map[string]any{"breakpoint_id": out.Breakpoints[0].ID}, Why: "what it captured"}}
	}
	text := listHeader("active breakpoints", out.List) + lines
	if strings.Contains(text, "«") {
		text += capturedLegend + "\n"
	}
	return out, text + footer(out.Note, out.Next), nil
}

func newBreakpointRow(b store.Breakpoint) breakpointRow {
	loc := fmt.Sprintf("%s:%d", b.File, b.Line)
	if b.Line == 0 {
		loc = "label " + b.File
	}
	r := breakpointRow{ID: b.ID, Service: b.Service, Location: loc,
		Condition: capString(redact.Condition(b.Condition)), Hits: b.HitCount, HitLimit: b.HitLimit, Created: at(b.CreatedNS)}
	if b.ExpiresNS != 0 {
		r.Expires = at(b.ExpiresNS)
	}
	return r
}

func (r breakpointRow) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s %s %s hits=%d", r.ID, r.Service, r.Location, r.Hits)
	if r.HitLimit > 0 {
		fmt.Fprintf(&b, "/%d", r.HitLimit)
	}
	if r.Condition != "" {
		b.WriteString(" if " + quoted(r.Condition))
	}
	if r.Expires != "" {
		b.WriteString(" expires " + r.Expires)
	}
	b.WriteString("\n")
	return b.String()
}
