package mcpserver

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store"
)

type searchSnapshotsIn struct {
	BreakpointID string `json:"breakpoint_id,omitempty"`
	Service      string `json:"service,omitempty"`
	TraceID      string `json:"trace_id,omitempty" jsonschema:"captures in this trace, at any time unless start/end"`
	Window
	Page
}

type snapshotRow struct {
	ID           string `json:"id"` // opaque, see tenantKeys.ref
	BreakpointID string `json:"breakpoint_id"`
	Service      string `json:"service"`
	Captured     string `json:"captured"`
	TraceID      string `json:"trace_id,omitempty"`
	SpanID       string `json:"span_id,omitempty"`
	Variables    any    `json:"variables,omitempty"` // captured, capped
	Stack        any    `json:"stack,omitempty"`     // captured, capped
}

type searchSnapshotsOut struct {
	Snapshots []snapshotRow `json:"snapshots"`
	List
}

func (tl *tools) addSearchSnapshots(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name:        "search_snapshots",
		Description: "Live-debugging captures, newest first: local variables and stack at a breakpoint, linked to the trace. Filter by breakpoint_id, service, trace_id, time.",
	}, func(p map[string]*jsonschema.Schema) {
		windowSchema(p, "24h")
		pageSchema(p, 5, 50)
	}, tl.searchSnapshots)
}

func (tl *tools) searchSnapshots(ctx context.Context, tn *store.Tenant, in searchSnapshotsIn) (searchSnapshotsOut, string, error) {
	var out searchSnapshotsOut
	var pos store.SnapshotKey
	from, to, paging, err := pageWindow(ctx, in.Window, in.Page, in, &pos, tl.now(), 24*time.Hour)
	if err != nil {
		return out, "", err
	}
	if in.TraceID != "" && in.Start == "" && in.End == "" && !paging {
		from = to.Add(-maxWindow) // a trace's captures whenever taken: the trace index makes this cheap
	}
	q := store.SnapshotQuery{From: from.UnixNano(), To: to.UnixNano(), BreakpointID: in.BreakpointID, Service: in.Service, TraceID: in.TraceID}
	if paging {
		q.After = &pos
	}
	limit := clamp(in.Limit, 1, 50, 5)
	q.Limit = limit + 1
	snaps, err := tn.SearchSnapshots(ctx, q)
	if err != nil {
		return out, "", err
	}
	out.Snapshots = []snapshotRow{}
	b := newBudget(in.MaxTokens)
	var lines strings.Builder
	for i, s := range snaps {
		row := snapshotRow{ID: keysOf(ctx).ref(kindSnapshot, s.ID), BreakpointID: s.BreakpointID, Service: s.Service, Captured: at(s.CapturedNS),
			TraceID: s.TraceID, SpanID: s.SpanID, Variables: capJSON(s.Variables), Stack: capJSON(s.Stack)}
		line := row.line()
		if i == limit || !b.fit(row, line) {
			out.Truncated = true
			last := snaps[len(out.Snapshots)-1]
			out.NextCursor = encodeCursor(ctx, in, from, to, store.SnapshotKey{CapturedNS: last.CapturedNS, ID: last.ID})
			break
		}
		out.Snapshots = append(out.Snapshots, row)
		lines.WriteString(line)
	}
	out.Window, out.Returned = timeRange(from, to), len(out.Snapshots)
	if out.Total, err = tn.CountSnapshots(ctx, q, countCap); err != nil {
		return out, "", err
	}
	out.TotalAtLeast = out.Total == countCap
	if len(out.Snapshots) == 0 {
		out.Note = "no snapshot captured in this window. Widen it (e.g. since=7d), or check list_breakpoints that a breakpoint is active and being hit."
		out.Next = []Call{{Tool: "list_breakpoints", Args: map[string]any{}, Why: "active breakpoints"}}
	} else if s := out.Snapshots[0]; s.TraceID != "" {
		out.Next = []Call{{Tool: "get_trace_detail", Args: map[string]any{"trace_id": s.TraceID}, Why: "the request this capture belongs to"}}
	}
	text := listHeader("snapshots, newest first", out.List) + lines.String()
	if len(out.Snapshots) > 0 {
		text += capturedLegend + "\n"
	}
	return out, text + footer(out.Note, out.Next), nil
}

func (r snapshotRow) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s %s breakpoint=%s at %s", r.ID, r.Service, r.BreakpointID, r.Captured)
	if r.TraceID != "" {
		fmt.Fprintf(&b, " trace=%s span=%s", r.TraceID, r.SpanID)
	}
	b.WriteString("\n  variables " + quoted(r.Variables) + "\n")
	if r.Stack != nil {
		b.WriteString("  stack " + quoted(r.Stack) + "\n")
	}
	return b.String()
}
