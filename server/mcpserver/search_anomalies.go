package mcpserver

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store"
)

type searchAnomaliesIn struct {
	Service     string `json:"service,omitempty"`
	MinSeverity string `json:"min_severity,omitempty"`
	TraceID     string `json:"trace_id,omitempty" jsonschema:"anomalies of the services this trace touched, while it ran"`
	Window
	Page
}

type anomalyRow struct {
	ID        string  `json:"id"` // opaque and tenant-scoped: see tenantKeys.ids
	Service   string  `json:"service"`
	Operation string  `json:"operation,omitempty"`
	Metric    string  `json:"metric"`
	Severity  string  `json:"severity"`
	Started   string  `json:"started"`
	Ended     string  `json:"ended,omitempty"` // empty while ongoing
	Baseline  float64 `json:"baseline"`
	Observed  float64 `json:"observed"`
	Score     float64 `json:"score"`
	Summary   string  `json:"summary,omitempty"`
	HasRCA    bool    `json:"has_rca"`
}

type searchAnomaliesOut struct {
	Anomalies []anomalyRow `json:"anomalies"`
	List
}

func (tl *tools) addSearchAnomalies(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "search_anomalies",
		Description: "Detected anomalies (latency, error, traffic or cost deviations from baseline), newest first, with severity. " +
			"Filter by service, min_severity, time or trace_id. Then get_rca explains one.",
	}, func(p map[string]*jsonschema.Schema) {
		enum(p["min_severity"], store.Severities...)
		windowSchema(p, "24h")
		pageSchema(p, 20, 100)
	}, tl.searchAnomalies)
}

func (tl *tools) searchAnomalies(ctx context.Context, tn *store.Tenant, in searchAnomaliesIn) (searchAnomaliesOut, string, error) {
	var out searchAnomaliesOut
	var pos store.AnomalyKey
	from, to, paging, err := pageWindow(ctx, in.Window, in.Page, in, &pos, tl.now(), 24*time.Hour)
	if err != nil {
		return out, "", err
	}
	q := store.AnomalyQuery{Service: in.Service}
	if in.MinSeverity != "" {
		i := slices.Index(store.Severities, in.MinSeverity)
		q.Severities = store.Severities[i:]
	}
	if in.TraceID != "" {
		ov, err := tn.TraceOverviews(ctx, []string{in.TraceID})
		if err != nil {
			return out, "", err
		}
		o := ov[in.TraceID]
		if o == nil {
			return out, "", badArg("trace %q has no stored spans: take a trace_id from search_traces", in.TraceID)
		}
		q.Services = o.Services
		if !paging {
			from, to = time.Unix(0, o.StartNS).UTC(), time.Unix(0, o.EndNS+1).UTC()
		}
	}
	q.From, q.To = from.UnixNano(), to.UnixNano()
	if paging {
		q.After = &pos
	}
	limit := clamp(in.Limit, 1, 100, 20)
	q.Limit = limit + 1
	found, err := tn.SearchAnomalies(ctx, q)
	if err != nil {
		return out, "", err
	}
	out.Anomalies = []anomalyRow{}
	b := newBudget(in.MaxTokens)
	var lines strings.Builder
	for i, a := range found {
		row := newAnomalyRow(ctx, a)
		line := row.line()
		if i == limit || !b.fit(row, line) {
			out.Truncated = true
			last := found[len(out.Anomalies)-1]
			out.NextCursor = encodeCursor(ctx, in, from, to, store.AnomalyKey{StartedNS: last.StartedNS, ID: last.ID})
			break
		}
		out.Anomalies = append(out.Anomalies, row)
		lines.WriteString(line)
	}
	out.Window, out.Returned = timeRange(from, to), len(out.Anomalies)
	if out.Total, err = tn.CountAnomalies(ctx, q, countCap); err != nil {
		return out, "", err
	}
	out.TotalAtLeast = out.Total == countCap
	if len(out.Anomalies) == 0 {
		out.Note = "no anomaly in this window. Widen it (e.g. since=7d), lower min_severity, or look at list_services for current health."
		out.Next = []Call{{Tool: "list_services", Args: map[string]any{"since": "1h"}, Why: "current health"},
			{Tool: "search_traces", Args: map[string]any{"status": "error", "since": "24h"}, Why: "recent failed requests"}}
	} else {
		for _, a := range out.Anomalies[:min(2, len(out.Anomalies))] {
			out.Next = append(out.Next, Call{Tool: "get_rca", Args: map[string]any{"anomaly_id": a.ID}, Why: "root cause of " + a.Service + " " + a.Metric})
		}
		a := out.Anomalies[0]
		during := map[string]any{"service": a.Service, "sort": "duration", "start": a.Started}
		if a.Ended != "" {
			during["end"] = a.Ended
		}
		out.Next = append(out.Next, Call{Tool: "search_traces", Args: during, Why: "requests of " + a.Service + " during it"})
	}
	text := listHeader("anomalies, newest first", out.List) + lines.String()
	return out, text + footer(out.Note, out.Next), nil
}

func newAnomalyRow(ctx context.Context, a store.Anomaly) anomalyRow {
	r := anomalyRow{ID: keysOf(ctx).anomalyRef(a.ID), Service: a.Service, Operation: a.Operation, Metric: a.Metric, Severity: a.Severity,
		Started: at(a.StartedNS), Baseline: round(a.Baseline, 3), Observed: round(a.Observed, 3), Score: round(a.Score, 2),
		Summary: a.Summary, HasRCA: a.HasRCA}
	if a.EndedNS != 0 {
		r.Ended = at(a.EndedNS)
	}
	return r
}

func (r anomalyRow) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s [%s] %s", r.ID, strings.ToUpper(r.Severity), r.Service)
	if r.Operation != "" {
		b.WriteString(" " + r.Operation)
	}
	fmt.Fprintf(&b, " %s %g → %g (baseline → observed, score %g) from %s", r.Metric, r.Baseline, r.Observed, r.Score, r.Started)
	if r.Ended != "" {
		b.WriteString(" to " + r.Ended)
	} else {
		b.WriteString(", ongoing")
	}
	if r.Summary != "" {
		b.WriteString(": " + r.Summary)
	}
	if r.HasRCA {
		b.WriteString(" [RCA ready]")
	}
	b.WriteString("\n")
	return b.String()
}
