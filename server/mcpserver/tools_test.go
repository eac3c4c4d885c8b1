package mcpserver_test

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
			{"search_traces", map[string]any{"servce": "x"}, "Accepted arguments: attributes, count_by, cursor, end"},
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
			{"get_rca", map[string]any{"anomaly_id": "999999"}, "search_anomalies"},
			{"get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, 999999)}, "no longer exists"},
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
			"get_rca":             {"anomaly_id": anomalyRef(t, e.acme, sh.paymentAnomaly)},
			"get_service_metrics": {"service": "payment-service"},
		} {
			if res := call(t, s, tool, args, nil); !res.IsError || strings.Contains(text(res), "1.5.0") {
				t.Errorf("globex reads acme's data through %s: %s", tool, text(res))
			}
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

// A NUL byte is the caller's mistake, not the database's unavailability: the answer says which
// argument holds it and what to do, under both dialects (PostgreSQL's text cannot hold one).
func TestTools_NULInAnArgumentIsTheCallersMistake(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		s := e.connect(t, e.keyA)
		for _, tc := range []struct {
			tool string
			args map[string]any
			want string
		}{
			{"search_traces", map[string]any{"service": "pay\x00ment"}, "service"},
			{"search_traces", map[string]any{"attributes": map[string]any{"http.route": "/pay\x00"}}, "attributes"},
			{"search_traces", map[string]any{"attributes": map[string]any{"user\x00id": "1"}}, "attributes"},
			{"get_trace_detail", map[string]any{"trace_id": strings.Repeat("a", 31) + "\x00"}, "trace_id"},
			{"search_llm_calls", map[string]any{"model": "gpt\x00"}, "model"},
			{"get_service_metrics", map[string]any{"service": "\x00"}, "service"},
		} {
			res := call(t, s, tc.tool, tc.args, nil)
			msg := text(res)
			if !res.IsError || !strings.Contains(msg, "NUL") || !strings.Contains(msg, tc.want) || strings.Contains(msg, "try again") {
				t.Errorf("%s(%q): isError=%v %q, want an error naming %s and the NUL character", tc.tool, tc.args, res.IsError, msg, tc.want)
			}
		}
	})
}

// A cursor pins the first page's window; one forged with a longer window (as anyone could forge the
// readable cursors of before), altered in any byte, or carried over to another tenant is refused.
func TestCursors_AreSealedPerTenant(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		seedShop(t, e.globex, time.Now())
		var first page
		mustOK(t, "search_traces", call(t, e.connect(t, e.keyA), "search_traces", map[string]any{"limit": 1, "since": "3h"}, &first))
		if first.NextCursor == "" {
			t.Fatal("no cursor")
		}
		raw, _ := base64.RawURLEncoding.DecodeString(first.NextCursor)
		forged := append([]byte(nil), raw...)
		forged[len(forged)-1] ^= 1
		var readable map[string]any
		if json.Unmarshal(raw, &readable) == nil {
			// The window moved 1,000 days back, beyond the 400-day cap.
			readable["f"] = readable["t"].(float64) - 1000*86400
			forged, _ = json.Marshal(readable)
		}
		const refused = "cursor is not one this server issued"
		for name, tc := range map[string]struct {
			key, cursor string
		}{
			"forged":         {e.keyA, base64.RawURLEncoding.EncodeToString(forged)},
			"other tenant":   {e.keyB, first.NextCursor},
			"not base64":     {e.keyA, "%%%"},
			"empty envelope": {e.keyA, base64.RawURLEncoding.EncodeToString([]byte("{}"))},
		} {
			res := call(t, e.connect(t, tc.key), "search_traces", map[string]any{"limit": 1, "since": "3h", "cursor": tc.cursor}, nil)
			if !res.IsError || !strings.Contains(text(res), refused) {
				t.Errorf("%s cursor: isError=%v %q, want %q", name, res.IsError, text(res), refused)
			}
		}
	})
}

// Anomaly, snapshot, LLM call and alert ids come from sequences shared by all tenants: shown as they
// are, they would tell a tenant how much the others record. The tools show opaque ids that mean
// nothing to another tenant.
func TestRowIDs_AreOpaqueAndTenantScoped(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		shA := seedShop(t, e.acme, time.Now())
		seedShop(t, e.globex, time.Now())
		for tenant, key := range map[string]string{"acme": e.keyA, "globex": e.keyB} {
			s := e.connect(t, key)
			for tool, field := range map[string]string{"search_anomalies": "anomalies", "search_snapshots": "snapshots",
				"search_llm_calls": "calls", "get_active_alerts": "alerts"} {
				var out map[string][]struct {
					ID json.RawMessage `json:"id"`
				}
				args := map[string]any{"since": "7d"}
				if tool == "get_active_alerts" {
					args = nil // alerts firing now: no window
				}
				res := call(t, s, tool, args, nil)
				b, _ := json.Marshal(res.StructuredContent)
				_ = json.Unmarshal(b, &out)
				if len(out[field]) == 0 {
					t.Fatalf("%s %s: no rows: %s", tenant, tool, b)
				}
				for _, row := range out[field] {
					var id string
					if err := json.Unmarshal(row.ID, &id); err != nil {
						t.Fatalf("%s %s: id %s is not an opaque string", tenant, tool, row.ID)
					}
					if _, err := strconv.ParseInt(id, 10, 64); err == nil || len(id) < 16 {
						t.Errorf("%s %s: id %q looks like a sequence number", tenant, tool, id)
					}
				}
			}
		}
		// acme's ids name nothing for globex, not even "does not exist" of an id that does.
		res := call(t, e.connect(t, e.keyB), "get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, shA.paymentAnomaly)}, nil)
		if !res.IsError || !strings.Contains(text(res), "not an id of this tenant's anomalies") {
			t.Errorf("globex with acme's anomaly id: %q", text(res))
		}
	})
}
