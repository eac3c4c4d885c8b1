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

type getActiveAlertsIn struct {
	Service  string `json:"service,omitempty"`
	Severity string `json:"severity,omitempty"`
	Page
}

type alertRow struct {
	ID        string  `json:"id"` // opaque, see tenantKeys.ref
	Rule      string  `json:"rule"`
	Service   string  `json:"service,omitempty"`
	Severity  string  `json:"severity"`
	Condition string  `json:"condition"` // e.g. "p95_ms > 500 over 5m"
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
	Since     string  `json:"since"`
	LastEval  string  `json:"last_evaluated"`
	Message   string  `json:"message,omitempty"`
}

type getActiveAlertsOut struct {
	Alerts []alertRow `json:"alerts"`
	List
}

func (tl *tools) addGetActiveAlerts(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name:        "get_active_alerts",
		Description: "Alerts firing now: rule, service, severity, current value vs threshold, and since when.",
	}, func(p map[string]*jsonschema.Schema) {
		enum(p["severity"], store.Severities...)
		pageSchema(p, 20, 100)
	}, tl.getActiveAlerts)
}

func (tl *tools) getActiveAlerts(ctx context.Context, tn *store.Tenant, in getActiveAlertsIn) (getActiveAlertsOut, string, error) {
	var out getActiveAlertsOut
	now := tl.now()
	var offset int
	if _, _, _, err := decodeCursor(ctx, in.Cursor, in, &offset); err != nil {
		return out, "", err
	}
	alerts, err := tn.ActiveAlerts(ctx, in.Service, in.Severity)
	if err != nil {
		return out, "", err
	}
	out.Window, out.Total = timeRange(time.Time{}, now), len(alerts)
	page, lines, next := offsetPage(len(alerts), offset, clamp(in.Limit, 1, 100, 20), newBudget(in.MaxTokens),
		func(i int) alertRow { return newAlertRow(ctx, alerts[i]) })
	out.Alerts = page
	if next >= 0 {
		out.Truncated, out.NextCursor = true, encodeCursor(ctx, in, time.Time{}, now, next)
	}
	out.Returned = len(out.Alerts)
	if out.Total == 0 {
		out.Note = "no alert is firing."
		if in.Service != "" || in.Severity != "" {
			out.Note = "no alert matching these filters is firing; drop service or severity to see all."
		}
		out.Next = []Call{{Tool: "search_anomalies", Args: map[string]any{"since": "24h"}, Why: "deviations that no rule covers"}}
	} else {
		a := out.Alerts[0]
		if a.Service != "" {
			out.Next = []Call{{Tool: "get_service_metrics", Args: map[string]any{"service": a.Service, "since": "6h"}, Why: "when it started"},
				{Tool: "search_anomalies", Args: map[string]any{"service": a.Service, "since": "24h"}, Why: "anomalies and root cause"}}
		}
	}
	text := listHeader("firing alerts", out.List) + lines
	return out, text + footer(out.Note, out.Next), nil
}

func newAlertRow(ctx context.Context, a store.ActiveAlert) alertRow {
	cond := strings.TrimSpace(fmt.Sprintf("%s %s %g", a.Metric, a.Comparison, a.Threshold))
	if a.WindowSeconds > 0 {
		cond += " over " + fmtStep(time.Duration(a.WindowSeconds)*time.Second)
	}
	return alertRow{ID: keysOf(ctx).ref(kindAlert, a.ID), Rule: a.RuleID, Service: a.Service, Severity: a.Severity, Condition: cond, Value: round(a.Value, 3),
		Threshold: a.Threshold, Since: at(a.StartedNS), LastEval: at(a.LastEvalNS), Message: a.Message}
}

func (r alertRow) line() string {
	s := fmt.Sprintf("- [%s] %s %s: value %g, rule %s, firing since %s", strings.ToUpper(r.Severity), r.Service, r.Condition, r.Value, r.Rule, r.Since)
	if r.Message != "" {
		s += " — " + r.Message
	}
	return s + "\n"
}
