package mcpserver_test

import (
	"strings"
	"testing"
	"time"
)

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

func TestSearchTraces_CountByTellsWhichUsersTheFailuresHit(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out struct {
			Counts struct {
				Sampled int  `json:"sampled"`
				Exact   bool `json:"exact"`
				Missing bool `json:"missing"`
				Keys    []struct {
					Key    string `json:"key"`
					Values []struct {
						Value    string `json:"value"`
						Requests int    `json:"requests"`
					} `json:"values"`
				} `json:"keys"`
			} `json:"counts"`
		}
		// The user id is on the frontend's span; the failures are the inventory service's.
		txt := mustOK(t, "search_traces", call(t, s, "search_traces", map[string]any{"service": "inventory-service", "status": "error",
			"since": "3h", "count_by": "user.id"}, &out))
		c := out.Counts
		if !c.Exact || c.Sampled != sh.failedInventory || len(c.Keys) != 1 || len(c.Keys[0].Values) != 1 ||
			c.Keys[0].Values[0].Value != "u0" || c.Keys[0].Values[0].Requests != sh.failedInventory {
			t.Errorf("count of failed inventory requests by user.id: %+v", c)
		}
		if !strings.Contains(txt, "u0 ×") {
			t.Errorf("text lacks the count by user:\n%s", txt)
		}
		mustOK(t, "search_traces", call(t, s, "search_traces", map[string]any{"since": "3h", "count_by": "*"}, &out))
		if len(out.Counts.Keys) == 0 || out.Counts.Keys[0].Key != "user.id" || len(out.Counts.Keys[0].Values) != 3 {
			t.Errorf("keys of the requests' spans: %+v", out.Counts)
		}
		txt = mustOK(t, "search_traces", call(t, s, "search_traces", map[string]any{"since": "3h", "count_by": "customer"}, &out))
		if !out.Counts.Missing || !strings.Contains(txt, "user.id") {
			t.Errorf("a key no span carries should list the keys there are: %+v\n%s", out.Counts, txt)
		}
	})
}
