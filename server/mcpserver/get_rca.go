package mcpserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store"
)

type getRCAIn struct {
	AnomalyID string `json:"anomaly_id,omitempty" jsonschema:"from search_anomalies"`
	TraceID   string `json:"trace_id,omitempty" jsonschema:"instead of anomaly_id: the most severe anomaly this trace ran into"`
	MaxTokens int    `json:"max_tokens,omitempty"`
}

type getRCAOut struct {
	Anomaly anomalyRow `json:"anomaly"`
	Window  TimeRange  `json:"window"`
	// Status is ready (stored), computed (just now), not_computed (no analysis engine) or failed.
	Status    string `json:"status"`
	Summary   string `json:"summary,omitempty"`
	Causes    []any  `json:"causes"` // ranked, as the analysis engine wrote them, capped
	Created   string `json:"created,omitempty"`
	Truncated bool   `json:"truncated"`
	Note      string `json:"note,omitempty"`
	Next      []Call `json:"next,omitempty"`
}

func (tl *tools) addGetRCA(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "get_rca",
		Description: "Root-cause analysis of an anomaly: summary and ranked causes with evidence and example traces. " +
			"Computed on demand if missing. Give anomaly_id from search_anomalies, or a trace_id.",
	}, func(p map[string]*jsonschema.Schema) {
		def(p["max_tokens"], defaultMaxTokens)
		bounds(p["max_tokens"], minMaxTokens, hardMaxTokens)
	}, tl.getRCA)
}

func (tl *tools) getRCA(ctx context.Context, tn *store.Tenant, in getRCAIn) (getRCAOut, string, error) {
	var out getRCAOut
	a, err := tl.anomalyFor(ctx, tn, in)
	if err != nil {
		return out, "", err
	}
	out.Anomaly = newAnomalyRow(ctx, a)
	end := tl.now()
	if a.EndedNS != 0 {
		end = time.Unix(0, a.EndedNS)
	}
	out.Window = timeRange(time.Unix(0, a.StartedNS), end)
	out.Causes = []any{}

	report, err := tn.RCAReport(ctx, a.ID)
	switch {
	case err == nil:
		out.Status = "ready"
	case !errors.Is(err, store.ErrNotFound):
		return out, "", err
	case tl.rca == nil:
		out.Status = "not_computed"
		out.Note = fmt.Sprintf("no root-cause analysis of anomaly %s yet: the analysis engine is not enabled on this server. The calls below gather the evidence.", out.Anomaly.ID)
	default:
		if report, err = tl.rca.ComputeRCA(ctx, tn, a.ID); err != nil {
			tl.log.Error("root-cause analysis failed", "tenant", tn.ID(), "anomaly", a.ID, "err", err)
			out.Status = "failed"
			out.Note = fmt.Sprintf("the root-cause analysis of anomaly %s failed; the calls below gather the evidence.", out.Anomaly.ID)
			break
		}
		out.Status = "computed"
	}
	var lines strings.Builder
	if out.Status == "ready" || out.Status == "computed" {
		out.Summary, out.Created = report.Summary, at(report.CreatedNS)
		var causes []any
		if len(report.Causes) > 0 {
			if err := json.Unmarshal(report.Causes, &causes); err != nil {
				return out, "", fmt.Errorf("read causes of anomaly %d: %w", a.ID, err)
			}
		}
		b := newBudget(in.MaxTokens)
		b.fit(out.Anomaly, out.Summary)
		for i, c := range causes {
			c = capValue(c, 0)
			line := causeLine(i+1, c)
			if !b.fit(c, line) {
				out.Truncated = true
				out.Note = fmt.Sprintf("%d lower-ranked causes left out; raise max_tokens to see them.", len(causes)-i)
				break
			}
			out.Causes = append(out.Causes, c)
			lines.WriteString(line)
		}
	}
	out.Next = rcaSuggestions(a, out.Causes)
	return out, out.text(lines.String()), nil
}

// anomalyFor finds the anomaly to explain: by id, or the most severe one a trace ran into.
func (tl *tools) anomalyFor(ctx context.Context, tn *store.Tenant, in getRCAIn) (store.Anomaly, error) {
	switch {
	case in.AnomalyID != "":
		id, ok := keysOf(ctx).parseAnomalyRef(in.AnomalyID)
		if !ok {
			return store.Anomaly{}, badArg("anomaly_id %q is not an id of this tenant's anomalies: pass an id from search_anomalies unchanged", in.AnomalyID)
		}
		a, err := tn.Anomaly(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return a, badArg("anomaly %s no longer exists (retention may have removed it): take an id from search_anomalies", in.AnomalyID)
		}
		return a, err
	case in.TraceID != "":
		ov, err := tn.TraceOverviews(ctx, []string{in.TraceID})
		if err != nil {
			return store.Anomaly{}, err
		}
		o := ov[in.TraceID]
		if o == nil {
			return store.Anomaly{}, badArg("trace %q has no stored spans: take a trace_id from search_traces", in.TraceID)
		}
		found, err := tn.SearchAnomalies(ctx, store.AnomalyQuery{From: o.StartNS, To: o.EndNS + 1, Services: o.Services, Limit: 100})
		if err != nil {
			return store.Anomaly{}, err
		}
		if len(found) == 0 {
			return store.Anomaly{}, badArg("no anomaly overlaps trace %s; explain the trace itself with get_trace_detail", in.TraceID)
		}
		best := found[0]
		for _, a := range found[1:] {
			if severityRank(a.Severity) > severityRank(best.Severity) || (a.Severity == best.Severity && a.Score > best.Score) {
				best = a
			}
		}
		return best, nil
	}
	return store.Anomaly{}, badArg("give anomaly_id (from search_anomalies) or trace_id")
}

func severityRank(s string) int {
	for i, v := range store.Severities {
		if v == s {
			return i
		}
	}
	return -1
}

// causeLine renders a cause: the fields the engine is expected to write in plain text, and the
// rest, which may quote application data, as captured JSON.
func causeLine(rank int, c any) string {
	m, ok := c.(map[string]any)
	if !ok {
		return fmt.Sprintf("%d. %s\n", rank, quoted(c))
	}
	rest := map[string]any{}
	for k, v := range m {
		rest[k] = v
	}
	take := func(keys ...string) string {
		for _, k := range keys {
			if v, ok := rest[k]; ok {
				delete(rest, k)
				if f, ok := v.(float64); ok {
					return strconv.FormatFloat(round(f, 2), 'f', -1, 64)
				}
				return fmt.Sprint(v)
			}
		}
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d.", rank)
	delete(rest, "rank") // the list is numbered
	for _, part := range []struct{ label, val string }{
		{"", take("description", "summary", "title")},
		{"service", take("service")},
		{"operation", take("operation")},
		{"kind", take("kind", "type")},
		{"confidence", take("confidence", "score")},
		{"trace", take("trace_id", "example_trace_id")},
		{"traces", strings.Trim(take("trace_ids"), "[]")},
		{"span", take("span_id")},
	} {
		switch {
		case part.val == "":
		case part.label == "":
			b.WriteString(" " + part.val)
		default:
			fmt.Fprintf(&b, " %s=%s", part.label, part.val)
		}
	}
	if len(rest) > 0 {
		b.WriteString(" evidence " + quoted(rest))
	}
	b.WriteString("\n")
	return b.String()
}

func rcaSuggestions(a store.Anomaly, causes []any) []Call {
	var next []Call
	for _, c := range causes {
		if id := exampleTrace(c); id != "" {
			next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": id}, Why: "example trace of the top cause"})
			break
		}
	}
	start := stamp(time.Unix(0, a.StartedNS).Add(-time.Hour))
	during := map[string]any{"service": a.Service, "start": stamp(time.Unix(0, a.StartedNS))}
	if a.EndedNS != 0 {
		during["end"] = stamp(time.Unix(0, a.EndedNS))
	}
	traces := Call{Tool: "search_traces", Args: during, Why: "slowest requests during the anomaly"}
	during["sort"] = "duration"
	if strings.Contains(a.Metric, "error") {
		delete(during, "sort")
		during["status"] = "error"
		traces.Why = "failed requests during the anomaly"
	}
	if strings.Contains(a.Metric, "cost") || strings.Contains(a.Metric, "token") {
		traces = Call{Tool: "get_llm_stats", Args: map[string]any{"service": a.Service, "group_by": "model", "start": start}, Why: "which model drives the cost"}
	}
	next = append(next, traces,
		Call{Tool: "get_service_metrics", Args: map[string]any{"service": a.Service, "start": start}, Why: "before and after it started"})
	return next[:min(len(next), 3)]
}

// exampleTrace returns a trace id a cause gives as evidence, if any.
func exampleTrace(c any) string {
	m, _ := c.(map[string]any)
	for _, k := range []string{"trace_id", "example_trace_id"} {
		if id, ok := m[k].(string); ok && id != "" {
			return id
		}
	}
	if ids, ok := m["trace_ids"].([]any); ok && len(ids) > 0 {
		id, _ := ids[0].(string)
		return id
	}
	return ""
}

func (o getRCAOut) text(causes string) string {
	var b strings.Builder
	a := o.Anomaly
	fmt.Fprintf(&b, "Anomaly %s [%s] %s %s: %g → %g, %s\n", a.ID, strings.ToUpper(a.Severity), a.Service, a.Metric, a.Baseline, a.Observed, o.Window)
	fmt.Fprintf(&b, "Root-cause analysis: %s", o.Status)
	if o.Created != "" {
		b.WriteString(" (" + o.Created + ")")
	}
	b.WriteString("\n")
	if o.Summary != "" {
		b.WriteString("Summary: " + o.Summary + "\n")
	}
	if causes != "" {
		b.WriteString("Causes, most likely first:\n" + causes)
		if strings.Contains(causes, "«") {
			b.WriteString(capturedLegend + "\n")
		}
	}
	return b.String() + footer(o.Note, o.Next)
}
