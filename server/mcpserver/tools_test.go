package mcpserver_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// page is the paging part of every list answer.
type page struct {
	Window struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"window"`
	Returned   int    `json:"returned"`
	Total      int    `json:"total"`
	Truncated  bool   `json:"truncated"`
	NextCursor string `json:"next_cursor"`
	Note       string `json:"note"`
	Next       []struct {
		Tool string         `json:"tool"`
		Args map[string]any `json:"args"`
	} `json:"next"`
}

// pageAll pages through a list tool and returns the values of idField of every row of field, failing
// on a row seen twice, a wrong returned count, an answer over its budget or a page that should carry
// a cursor and does not.
func pageAll(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, field, idField string) []string {
	t.Helper()
	var ids []string
	seen := map[string]bool{}
	budget := 4000
	if v, ok := args["max_tokens"].(int); ok {
		budget = v
	}
	for pages := 0; ; pages++ {
		if pages > 200 {
			t.Fatalf("%s: more than 200 pages", tool)
		}
		var raw map[string]json.RawMessage
		res := call(t, s, tool, args, &raw)
		mustOK(t, tool, res)
		if n := answerTokens(res); n > budget {
			t.Errorf("%s page %d: answer of %d tokens exceeds max_tokens %d", tool, pages, n, budget)
		}
		var p page
		var rows []map[string]any
		b, _ := json.Marshal(raw)
		_ = json.Unmarshal(b, &p)
		if err := json.Unmarshal(raw[field], &rows); err != nil {
			t.Fatalf("%s: field %s: %v", tool, field, err)
		}
		if p.Returned != len(rows) {
			t.Errorf("%s: returned %d but %d rows", tool, p.Returned, len(rows))
		}
		for _, r := range rows {
			id := fmt.Sprint(r[idField])
			if seen[id] {
				t.Fatalf("%s: row %s returned twice", tool, id)
			}
			seen[id] = true
			ids = append(ids, id)
		}
		if p.Truncated != (p.NextCursor != "") {
			t.Fatalf("%s: truncated=%v but next_cursor=%q", tool, p.Truncated, p.NextCursor)
		}
		if p.NextCursor == "" {
			return ids
		}
		next := map[string]any{}
		for k, v := range args {
			next[k] = v
		}
		next["cursor"] = p.NextCursor
		args = next
	}
}

func TestSearchTraces_SlowestFirstAndPagesVisitEachRequestOnce(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out struct {
			Traces []struct {
				TraceID    string   `json:"trace_id"`
				Service    string   `json:"service"`
				Version    string   `json:"version"`
				DurationMS float64  `json:"duration_ms"`
				Services   []string `json:"services"`
				Spans      int      `json:"spans"`
			} `json:"traces"`
			page
		}
		res := call(t, s, "search_traces", map[string]any{"service": "payment-service", "sort": "duration", "since": "24h", "limit": 5}, &out)
		txt := mustOK(t, "search_traces", res)
		if len(out.Traces) != 5 || out.Traces[0].TraceID != sh.slowestPayment || out.Total != shopTraces || !out.Truncated {
			t.Fatalf("slowest payment requests: %+v", out)
		}
		for i := 1; i < len(out.Traces); i++ {
			if out.Traces[i].DurationMS > out.Traces[i-1].DurationMS {
				t.Errorf("not slowest first: %v after %v", out.Traces[i].DurationMS, out.Traces[i-1].DurationMS)
			}
		}
		if tr := out.Traces[0]; tr.Version != "1.5.0" || tr.Spans != 5+stockQueries || len(tr.Services) != 4 {
			t.Errorf("row lacks version, span count or services: %+v", tr)
		}
		if !strings.Contains(txt, sh.slowestPayment) || !strings.Contains(txt, "cursor=") || out.Next[0].Tool != "get_trace_detail" {
			t.Errorf("text or suggestions incomplete:\n%s", txt)
		}
		ids := pageAll(t, s, "search_traces", map[string]any{"service": "payment-service", "sort": "duration", "since": "24h", "limit": 7}, "traces", "trace_id")
		if len(ids) != shopTraces {
			t.Errorf("paging by duration returned %d requests, want %d", len(ids), shopTraces)
		}
		ids = pageAll(t, s, "search_traces", map[string]any{"since": "3h", "max_tokens": 1000, "limit": 100}, "traces", "trace_id")
		if len(ids) != shopTraces {
			t.Errorf("paging root requests by budget returned %d, want %d", len(ids), shopTraces)
		}
	})
}

func TestSearchTraces_FiltersByStatusDurationAndAttributes(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		for _, tc := range []struct {
			args map[string]any
			want int
		}{
			{map[string]any{"service": "inventory-service", "status": "error", "since": "3h"}, sh.failedInventory},
			{map[string]any{"service": "inventory-service", "attributes": map[string]any{"http.response.status_code": 503}, "since": "3h"}, sh.failedInventory},
			{map[string]any{"attributes": map[string]any{"user.id": "u3"}, "since": "3h"}, shopTraces / 5},
			{map[string]any{"service": "payment-service", "min_duration_ms": 400, "since": "3h"}, shopTraces / 2},
			{map[string]any{"service": "payment-service", "max_duration_ms": 100, "since": "3h"}, shopTraces / 2},
		} {
			var out page
			mustOK(t, "search_traces", call(t, s, "search_traces", tc.args, &out))
			if out.Total != tc.want {
				t.Errorf("search_traces %v: %d requests, want %d", tc.args, out.Total, tc.want)
			}
		}
	})
}

func TestTools_BadArgumentsGetErrorsThatSayWhatToFix(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var first page
		call(t, s, "search_traces", map[string]any{"limit": 1, "since": "3h"}, &first)
		for _, tc := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"search_traces", map[string]any{"since": "yesterday"}, "e.g. 15m"},
			{"search_traces", map[string]any{"start": "last tuesday"}, "RFC 3339"},
			{"search_traces", map[string]any{"start": "2030-01-02T00:00:00Z", "end": "2030-01-01T00:00:00Z"}, "not before end"},
			{"search_traces", map[string]any{"status": "broken"}, "status"},
			{"search_traces", map[string]any{"servce": "x"}, "Accepted arguments: attributes, cursor, end"},
			{"search_traces", map[string]any{"limit": 5000}, "maximum"},
			{"search_traces", map[string]any{"attributes": map[string]any{"http.response.status_code": "five hundred"}}, "whole numbers"},
			{"search_traces", map[string]any{"cursor": "garbage"}, "cursor is not one this server issued"},
			{"search_traces", map[string]any{"cursor": first.NextCursor, "service": "frontend"}, "other filters"},
			{"get_trace_detail", map[string]any{"trace_id": "nope"}, "search_traces"},
			{"get_trace_detail", map[string]any{"trace_id": traceID(3), "focus_span_id": "zz"}, "not in trace"},
			{"get_trace_detail", map[string]any{}, "trace_id"},
			{"get_service_metrics", map[string]any{"service": "paymnt-service"}, "payment-service"},
			{"get_service_metrics", map[string]any{"service": "payment-service", "step": "often"}, "step"},
			{"get_rca", map[string]any{}, "anomaly_id"},
			{"get_rca", map[string]any{"anomaly_id": 999999}, "search_anomalies"},
			{"get_llm_stats", map[string]any{"group_by": "color"}, "group_by"},
			{"search_anomalies", map[string]any{"min_severity": "meh"}, "min_severity"},
		} {
			res := call(t, s, tc.tool, tc.args, nil)
			if !res.IsError || !strings.Contains(text(res), tc.want) {
				t.Errorf("%s(%v): isError=%v %q, want an error mentioning %q", tc.tool, tc.args, res.IsError, text(res), tc.want)
			}
		}
	})
}

func TestTools_EmptyDataSaysSoAndSuggestsAWiderWindow(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		s := e.connect(t, e.keyA)
		for _, tool := range []string{"search_traces", "list_services", "get_active_alerts", "search_anomalies", "list_breakpoints",
			"search_snapshots", "search_llm_calls", "get_llm_stats"} {
			var out page
			txt := mustOK(t, tool, call(t, s, tool, nil, &out))
			if out.Returned != 0 || out.Total != 0 || out.Truncated || out.Note == "" || len(out.Next) == 0 || out.Window.To == "" {
				t.Errorf("%s on no data: %+v", tool, out)
			}
			if !strings.Contains(txt, "0 of 0") || !strings.Contains(txt, "Note: no ") {
				t.Errorf("%s text on no data:\n%s", tool, txt)
			}
			if tool != "get_active_alerts" && tool != "list_breakpoints" && !strings.Contains(out.Note, "Widen") {
				t.Errorf("%s: the note does not suggest a wider window: %q", tool, out.Note)
			}
		}
	})
}

func TestTools_TenantSeesNothingOfAnother(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyB)
		for _, tool := range []string{"search_traces", "list_services", "get_active_alerts", "search_anomalies", "list_breakpoints",
			"search_snapshots", "search_llm_calls", "get_llm_stats"} {
			args := map[string]any{"since": "7d"}
			if tool == "get_active_alerts" || tool == "list_breakpoints" {
				args = nil // current state: no window
			}
			var out page
			txt := mustOK(t, tool, call(t, s, tool, args, &out))
			if out.Total != 0 || strings.Contains(txt, "payment") {
				t.Errorf("globex sees acme's data through %s: %s", tool, txt)
			}
		}
		for tool, args := range map[string]map[string]any{
			"get_trace_detail":    {"trace_id": sh.slowestPayment},
			"get_rca":             {"anomaly_id": sh.paymentAnomaly},
			"get_service_metrics": {"service": "payment-service"},
		} {
			if res := call(t, s, tool, args, nil); !res.IsError || strings.Contains(text(res), "1.5.0") {
				t.Errorf("globex reads acme's data through %s: %s", tool, text(res))
			}
		}
	})
}

func TestGetTraceDetail_ShowsCriticalPathErrorsAndCollapsedNPlusOne(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		type step struct {
			SpanID    string `json:"span_id"`
			Service   string `json:"service"`
			Operation string `json:"operation"`
			Statement string `json:"statement"`
		}
		var out struct {
			Root          string `json:"root"`
			Spans         int    `json:"spans"`
			CriticalPath  []step `json:"critical_path"`
			CriticalSteps int    `json:"critical_steps"`
			SelfTime      []step `json:"top_self_time"`
			Errors        []struct {
				Service    string `json:"service"`
				Message    string `json:"message"`
				Exceptions []any  `json:"exceptions"`
			} `json:"errors"`
			Waterfall []struct {
				SpanID    string `json:"span_id"`
				Operation string `json:"operation"`
				Count     int    `json:"count"`
				NPlusOne  bool   `json:"n_plus_one"`
			} `json:"waterfall"`
			Truncated bool `json:"truncated"`
			Omitted   int  `json:"omitted"`
			Window    struct{ From, To string }
		}
		txt := mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": sh.slowestPayment}, &out))
		if out.Root != "frontend GET /checkout" || out.Spans != 5+stockQueries || out.Truncated || out.Omitted != 0 || out.Window.From == "" {
			t.Fatalf("trace summary: %+v", out)
		}
		var path []string
		for _, st := range out.CriticalPath {
			path = append(path, st.Operation)
		}
		// Inventory is called after payment, so the request waited for both, and for each of the
		// sequential stock queries: every span is on the path. The time went to the payments query
		// and the stock queries.
		if got := strings.Join(path, ","); got != "SELECT payments,SELECT stock" || out.CriticalSteps != 5+stockQueries {
			t.Errorf("critical path %s over %d steps, want SELECT payments,SELECT stock over %d", got, out.CriticalSteps, 5+stockQueries)
		}
		if top := out.SelfTime[0]; top.Operation != "SELECT payments" || top.Statement != slowSQL {
			t.Errorf("top self time is not the slow statement: %+v", top)
		}
		var collapsed bool
		for _, r := range out.Waterfall {
			if r.Operation == "SELECT stock" {
				collapsed = r.Count == stockQueries && r.NPlusOne
			}
		}
		if !collapsed || len(out.Waterfall) != 6 || !strings.Contains(txt, "×6 inventory-service SELECT stock") || !strings.Contains(txt, "N+1?") {
			t.Errorf("stock queries not collapsed into one N+1 row: %+v\n%s", out.Waterfall, txt)
		}
		if !strings.Contains(txt, "«") || !strings.Contains(txt, "never instructions") {
			t.Errorf("captured statement not delimited:\n%s", txt)
		}

		var failed struct {
			Errors []struct {
				Service    string `json:"service"`
				Message    string `json:"message"`
				Exceptions []map[string]any
			} `json:"errors"`
		}
		mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": traceID(shopTraces - 10)}, &failed))
		if len(failed.Errors) != 2 || failed.Errors[1].Message != "stock database unavailable" || failed.Errors[1].Exceptions[0]["type"] != "StockUnavailable" {
			t.Errorf("errors of a failed trace: %+v", failed.Errors)
		}

		var focus struct {
			Root      string `json:"root"`
			Waterfall []any  `json:"waterfall"`
		}
		inventory := fmt.Sprintf("%016x", (shopTraces-10)*100+5)
		mustOK(t, "get_trace_detail", call(t, s, "get_trace_detail", map[string]any{"trace_id": traceID(shopTraces - 10), "focus_span_id": inventory}, &focus))
		if focus.Root != "inventory-service GET /stock" || len(focus.Waterfall) != 2 {
			t.Errorf("focus on the inventory span: %+v", focus)
		}
	})
}

func TestListServices_JudgesHealthAgainstThePreviousWindow(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out struct {
			Services []struct {
				Name     string  `json:"name"`
				Version  string  `json:"version"`
				Health   string  `json:"health"`
				Reason   string  `json:"reason"`
				Requests int64   `json:"requests"`
				ErrorPct float64 `json:"error_pct"`
				P95MS    float64 `json:"p95_ms"`
				Change   struct {
					P95Pct float64 `json:"p95_pct"`
				} `json:"change"`
			} `json:"services"`
			page
		}
		txt := mustOK(t, "list_services", call(t, s, "list_services", map[string]any{"since": "1h"}, &out))
		health := map[string]string{}
		for _, svc := range out.Services {
			health[svc.Name] = svc.Health
		}
		if len(out.Services) != 4 || out.Services[0].Health != "critical" || health["frontend"] != "critical" && health["frontend"] != "degraded" {
			t.Errorf("verdicts: %v\n%s", health, txt)
		}
		for _, svc := range out.Services {
			switch svc.Name {
			case "payment-service":
				if svc.Health != "critical" || !strings.Contains(svc.Reason, "p95") || svc.Change.P95Pct < 100 || svc.Version != "1.5.0" {
					t.Errorf("payment-service: %+v", svc)
				}
			case "inventory-service":
				if svc.Health != "critical" || !strings.Contains(svc.Reason, "errors") || svc.ErrorPct < 9 || svc.ErrorPct > 11 {
					t.Errorf("inventory-service: %+v", svc)
				}
			}
		}
		if out.Window.From == "" || len(out.Next) == 0 {
			t.Errorf("window or suggestions missing: %+v", out.page)
		}
		ids := pageAll(t, s, "list_services", map[string]any{"since": "1h", "limit": 1}, "services", "name")
		if len(ids) != 4 {
			t.Errorf("paging services one by one: %v", ids)
		}
	})
}

func TestGetServiceMetrics_ReturnsASeriesAndPerOperationStats(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out struct {
			Step   string                   `json:"step"`
			Total  struct{ Requests int64 } `json:"total"`
			Series []struct {
				T        string  `json:"t"`
				Requests int64   `json:"requests"`
				P95MS    float64 `json:"p95_ms"`
			} `json:"series"`
			Operations []struct{ Operation string } `json:"operations"`
		}
		txt := mustOK(t, "get_service_metrics", call(t, s, "get_service_metrics",
			map[string]any{"service": "inventory-service", "since": "3h", "step": "30m", "by_operation": true}, &out))
		// The window starts on a multiple of the step: 6 or 7 buckets cover 3 hours.
		if out.Step != "30m" || len(out.Series) < 6 || len(out.Series) > 7 || out.Total.Requests != shopTraces || len(out.Operations) != 1 {
			t.Fatalf("metrics: %+v\n%s", out, txt)
		}
		var sum int64
		for _, p := range out.Series {
			sum += p.Requests
		}
		if sum != shopTraces {
			t.Errorf("series sums to %d requests, want %d", sum, shopTraces)
		}
		mustOK(t, "get_service_metrics", call(t, s, "get_service_metrics", map[string]any{"service": "payment-service", "since": "24h", "step": "1m"}, &out))
		if len(out.Series) > 100 || out.Step == "1m" {
			t.Errorf("a too fine step was not coarsened to the budget: step %s, %d points", out.Step, len(out.Series))
		}
	})
}

func TestAlertsAnomaliesAndRCA_LinkFromAnomalyToCause(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var alerts struct {
			Alerts []struct {
				Service   string  `json:"service"`
				Condition string  `json:"condition"`
				Value     float64 `json:"value"`
			} `json:"alerts"`
		}
		mustOK(t, "get_active_alerts", call(t, s, "get_active_alerts", nil, &alerts))
		if len(alerts.Alerts) != 1 || alerts.Alerts[0].Condition != "p95_latency_ms > 500 over 5m" || alerts.Alerts[0].Value != 850 {
			t.Errorf("alerts: %+v", alerts)
		}
		var anomalies struct {
			Anomalies []struct {
				ID     int64 `json:"id"`
				HasRCA bool  `json:"has_rca"`
			} `json:"anomalies"`
			page
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"min_severity": "high"}, &anomalies))
		if len(anomalies.Anomalies) != 2 || anomalies.Anomalies[0].ID != sh.errorAnomaly || anomalies.Next[0].Tool != "get_rca" {
			t.Fatalf("anomalies: %+v", anomalies)
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"min_severity": "critical"}, &anomalies))
		if len(anomalies.Anomalies) != 1 {
			t.Errorf("min_severity critical: %+v", anomalies.Anomalies)
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"trace_id": sh.slowestPayment}, &anomalies))
		if len(anomalies.Anomalies) != 2 {
			t.Errorf("anomalies of a trace touching payment and inventory: %+v", anomalies.Anomalies)
		}

		var rca struct {
			Status  string           `json:"status"`
			Summary string           `json:"summary"`
			Causes  []map[string]any `json:"causes"`
			Next    []struct {
				Tool string         `json:"tool"`
				Args map[string]any `json:"args"`
			} `json:"next"`
		}
		txt := mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": sh.paymentAnomaly}, &rca))
		if rca.Status != "ready" || len(rca.Causes) != 2 || rca.Next[0].Tool != "get_trace_detail" || rca.Next[0].Args["trace_id"] != sh.slowestPayment {
			t.Errorf("rca: %+v\n%s", rca, txt)
		}
		if !strings.Contains(txt, "1. slow DB statement after deploy service=payment-service") || !strings.Contains(txt, "evidence «") {
			t.Errorf("rca text:\n%s", txt)
		}
		// No report stored: the server's analysis engine computes one on demand.
		var computed struct {
			Status string           `json:"status"`
			Causes []map[string]any `json:"causes"`
			page
		}
		txt = mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": sh.errorAnomaly}, &computed))
		if computed.Status != "computed" || len(computed.Causes) == 0 || computed.Causes[0]["service"] != "inventory-service" || computed.Next[0].Tool != "get_trace_detail" {
			t.Errorf("rca computed on demand: %+v\n%s", computed, txt)
		}
		var again struct{ Status string }
		mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": sh.errorAnomaly}, &again))
		if again.Status != "ready" {
			t.Errorf("a computed analysis was not stored: status %s", again.Status)
		}
	})
}

func TestGetRCA_WithoutAnEngineSaysNotComputedAndSuggestsTheEvidence(t *testing.T) {
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	e := newEnv(t, db)
	sh := seedShop(t, e.acme, time.Now())
	e.url = serve(t, mcpserver.Config{DB: db, Auth: &auth.APIKeys{DB: db}, PublicURL: publicURL})
	var rca struct {
		Status string `json:"status"`
		Causes []any  `json:"causes"`
		page
	}
	mustOK(t, "get_rca", call(t, e.connect(t, e.keyA), "get_rca", map[string]any{"anomaly_id": sh.errorAnomaly}, &rca))
	if rca.Status != "not_computed" || len(rca.Causes) != 0 || rca.Next[0].Tool != "search_traces" || rca.Next[0].Args["status"] != "error" ||
		rca.Next[0].Args["start"] == nil {
		t.Errorf("rca without a report nor an engine: %+v", rca)
	}
}

func TestDebugTools_ListActiveBreakpointsAndCapCapturedData(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var bps struct {
			Breakpoints []struct{ ID, Location string } `json:"breakpoints"`
		}
		mustOK(t, "list_breakpoints", call(t, s, "list_breakpoints", nil, &bps))
		if len(bps.Breakpoints) != 1 || bps.Breakpoints[0].Location != "charge.go:88" {
			t.Errorf("active breakpoints: %+v", bps)
		}
		var snaps struct {
			Snapshots []struct {
				Variables map[string]any `json:"variables"`
				TraceID   string         `json:"trace_id"`
			} `json:"snapshots"`
			page
		}
		res := call(t, s, "search_snapshots", map[string]any{"breakpoint_id": "bp-charge", "limit": 50}, &snaps)
		txt := mustOK(t, "search_snapshots", res)
		if snaps.Total != 8 || len(snaps.Snapshots) != 8 {
			t.Fatalf("snapshots: %d of %d", len(snaps.Snapshots), snaps.Total)
		}
		if blob := snaps.Snapshots[0].Variables["blob"].(string); len(blob) > 250 || !strings.Contains(blob, "bytes)") {
			t.Errorf("a 5000-byte variable was not capped: %d bytes", len(blob))
		}
		if strings.Contains(txt, "» and call") || !strings.Contains(txt, `\u00bb and call`) || !strings.Contains(txt, "never instructions") {
			t.Errorf("captured text can close its delimiter or lacks the legend:\n%s", txt)
		}
		ids := pageAll(t, s, "search_snapshots", map[string]any{"limit": 3}, "snapshots", "id")
		if len(ids) != 8 {
			t.Errorf("paging snapshots: %v", ids)
		}
		mustOK(t, "search_snapshots", call(t, s, "search_snapshots", map[string]any{"trace_id": traceID(72)}, &snaps))
		if len(snaps.Snapshots) != 1 || snaps.Snapshots[0].TraceID != traceID(72) {
			t.Errorf("snapshots of a trace: %+v", snaps.Snapshots)
		}
	})
}

func TestLLMTools_NameTheCostliestModelAndServiceAndPageByCost(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var stats struct {
			Totals struct {
				Calls            int64   `json:"calls"`
				CostUSD          float64 `json:"cost_usd"`
				UnknownCostCalls int64   `json:"unknown_cost_calls"`
			} `json:"totals"`
			Leaders []struct{ Measure, Key string } `json:"leaders"`
			Groups  []struct {
				Key     string  `json:"key"`
				CostPct float64 `json:"cost_pct"`
			} `json:"groups"`
			page
		}
		txt := mustOK(t, "get_llm_stats", call(t, s, "get_llm_stats", nil, &stats))
		if stats.Totals.Calls != int64(sh.llmCalls) || stats.Totals.UnknownCostCalls != 1 || stats.Groups[0].Key != "gpt-4o" || len(stats.Groups) != 3 {
			t.Fatalf("llm stats: %+v\n%s", stats, txt)
		}
		leaders := map[string]string{}
		for _, l := range stats.Leaders {
			leaders[l.Measure] = l.Key
		}
		if leaders["cost by model"] != "gpt-4o" || leaders["tokens by service"] != "recommendation-service" {
			t.Errorf("leaders: %v", leaders)
		}
		if !strings.Contains(txt, "Most tokens by service: recommendation-service") || !strings.Contains(stats.Note, "unknown is not free") {
			t.Errorf("text:\n%s", txt)
		}
		mustOK(t, "get_llm_stats", call(t, s, "get_llm_stats", map[string]any{"group_by": "day"}, &stats))
		if len(stats.Groups) == 0 || len(stats.Groups[0].Key) != len("2006-01-02") {
			t.Errorf("by day: %+v", stats.Groups)
		}

		var calls struct {
			Calls []struct {
				ID      int64    `json:"id"`
				CostUSD *float64 `json:"cost_usd"`
			} `json:"calls"`
		}
		mustOK(t, "search_llm_calls", call(t, s, "search_llm_calls", map[string]any{"sort": "cost", "limit": 3}, &calls))
		if len(calls.Calls) != 3 || *calls.Calls[0].CostUSD < *calls.Calls[1].CostUSD {
			t.Errorf("by cost: %+v", calls.Calls)
		}
		for _, sortBy := range []string{"cost", "start", "latency", "tokens"} {
			ids := pageAll(t, s, "search_llm_calls", map[string]any{"sort": sortBy, "limit": 4}, "calls", "id")
			if len(ids) != sh.llmCalls {
				t.Errorf("paging LLM calls by %s: %d, want %d", sortBy, len(ids), sh.llmCalls)
			}
		}
		mustOK(t, "search_llm_calls", call(t, s, "search_llm_calls", map[string]any{"status": "error"}, &calls))
		if len(calls.Calls) != 1 || calls.Calls[0].CostUSD != nil {
			t.Errorf("failed calls: %+v", calls.Calls)
		}
	})
}

func TestListTools_PageThroughEveryRowExactlyOnce(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		for _, tc := range []struct {
			tool, field, id string
			args            map[string]any
			want            int
		}{
			{"search_traces", "traces", "trace_id", map[string]any{"since": "3h"}, shopTraces},
			{"list_services", "services", "name", nil, 4},
			{"get_active_alerts", "alerts", "id", nil, 1},
			{"search_anomalies", "anomalies", "id", nil, 2},
			{"list_breakpoints", "breakpoints", "id", nil, 1},
			{"search_snapshots", "snapshots", "id", nil, 8},
			{"search_llm_calls", "calls", "id", nil, sh.llmCalls},
			{"get_llm_stats", "groups", "key", nil, 3},
		} {
			for _, paging := range []map[string]any{{"limit": 1}, {"limit": 7}, {"limit": 50, "max_tokens": 1000}} {
				args := map[string]any{}
				for k, v := range paging {
					args[k] = v
				}
				for k, v := range tc.args {
					args[k] = v
				}
				if ids := pageAll(t, s, tc.tool, args, tc.field, tc.id); len(ids) != tc.want {
					t.Errorf("%s %v: %d rows, want %d", tc.tool, paging, len(ids), tc.want)
				}
			}
		}
	})
}

func TestGetTraceDetail_SummarisesAHugeTraceWithinTheBudget(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		// One request fanning out to 50 workers, each running 999 queries one after another: 50,001 spans.
		const workers, queries = 50, 999
		start := time.Now().Add(-time.Minute).UnixNano()
		id := traceID(9999)
		spans := []store.Span{{TraceID: id, SpanID: "root", Service: "batch", Operation: "POST /import", Kind: store.KindServer,
			IsEntry: true, StartNS: start, DurationNS: int64(30 * time.Second)}}
		for w := 0; w < workers; w++ {
			ws := fmt.Sprintf("w%03d", w)
			spans = append(spans, store.Span{TraceID: id, SpanID: ws, ParentSpanID: "root", Service: "batch", Operation: fmt.Sprintf("worker %d", w),
				StartNS: start + int64(w)*int64(time.Millisecond), DurationNS: int64(20 * time.Second)})
			for q := 0; q < queries; q++ {
				spans = append(spans, store.Span{TraceID: id, SpanID: fmt.Sprintf("%s-%04d", ws, q), ParentSpanID: ws, Service: "batch",
					Operation: "INSERT rows", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: "INSERT INTO rows VALUES ($1)",
					StartNS: start + int64(w)*int64(time.Millisecond) + int64(q)*int64(20*time.Millisecond), DurationNS: int64(15 * time.Millisecond)})
			}
		}
		if err := e.acme.InsertBatch(context.Background(), store.Batch{Spans: spans}); err != nil {
			t.Fatal(err)
		}
		s := e.connect(t, e.keyA)
		for _, budget := range []int{1000, 4000} {
			var out struct {
				Spans     int  `json:"spans"`
				Truncated bool `json:"truncated"`
				Omitted   int  `json:"omitted"`
				Waterfall []struct {
					Count    int  `json:"count"`
					NPlusOne bool `json:"n_plus_one"`
				} `json:"waterfall"`
				Next []struct {
					Args map[string]any `json:"args"`
				} `json:"next"`
			}
			res := call(t, s, "get_trace_detail", map[string]any{"trace_id": id, "max_tokens": budget}, &out)
			mustOK(t, "get_trace_detail", res)
			if n := answerTokens(res); n > budget {
				t.Errorf("max_tokens %d: answer of %d tokens", budget, n)
			}
			if out.Spans != len(spans) || len(out.Waterfall) < 3 || out.Waterfall[2].Count != queries || !out.Waterfall[2].NPlusOne {
				t.Errorf("max_tokens %d: %d spans, waterfall %+v", budget, out.Spans, out.Waterfall[:min(3, len(out.Waterfall))])
			}
			if budget == 1000 && (!out.Truncated || out.Omitted == 0 || out.Next[0].Args["focus_span_id"] == nil) {
				t.Errorf("a cut waterfall does not say so or suggest where to look: truncated=%v omitted=%d next=%+v", out.Truncated, out.Omitted, out.Next)
			}
		}
	})
}

// Issue 12 item 8: a condition compares a variable with the literal it expects, which may be the
// secret itself; list_breakpoints must not hand it to the model.
func TestListBreakpoints_RedactsSecretsInConditions(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		if err := e.acme.CreateBreakpoint(context.Background(), store.Breakpoint{ID: "bp-login", Service: "auth-service", File: "login.go",
			Line: 30, Condition: `password == 'hunter2' && user.email != "alice@example.com" && attempts > 3`, HitLimit: 5,
			CreatedNS: time.Now().UnixNano()}); err != nil {
			t.Fatal(err)
		}
		s := e.connect(t, e.keyA)
		var bps struct {
			Breakpoints []struct{ Condition string } `json:"breakpoints"`
		}
		txt := mustOK(t, "list_breakpoints", call(t, s, "list_breakpoints", nil, &bps))
		for _, secret := range []string{"hunter2", "alice@example.com"} {
			if strings.Contains(txt, secret) || len(bps.Breakpoints) != 1 || strings.Contains(bps.Breakpoints[0].Condition, secret) {
				t.Errorf("list_breakpoints shows %s: %+v\n%s", secret, bps, txt)
			}
		}
		if len(bps.Breakpoints) != 1 || !strings.Contains(bps.Breakpoints[0].Condition, "attempts > 3") {
			t.Errorf("the condition's harmless part was lost: %+v", bps)
		}
	})
}
