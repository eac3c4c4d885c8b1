package mcpserver_test

import (
	"strings"
	"testing"
	"time"
)

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
				ID      string   `json:"id"`
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
