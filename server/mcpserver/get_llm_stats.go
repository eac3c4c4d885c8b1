package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

type getLLMStatsIn struct {
	GroupBy string `json:"group_by,omitempty"`
	Service string `json:"service,omitempty"`
	Model   string `json:"model,omitempty"`
	Window
	Page
}

type llmTotals struct {
	Calls            int64   `json:"calls"`
	InputTokens      int64   `json:"input_tokens"`
	OutputTokens     int64   `json:"output_tokens"`
	CostUSD          float64 `json:"cost_usd"`
	UnknownCostCalls int64   `json:"unknown_cost_calls"` // calls whose price is unknown: not in cost_usd
	Errors           int64   `json:"errors"`
}

type llmGroupRow struct {
	Key string `json:"key"`
	llmTotals
	CostPct   float64 `json:"cost_pct"`
	TokensPct float64 `json:"tokens_pct"`
	LatencyMS float64 `json:"latency_ms"` // typical (median) latency of a call
}

// llmLeader names who leads a measure along a dimension, e.g. the service using the most tokens.
type llmLeader struct {
	Measure string  `json:"measure"` // "cost by model", "tokens by service", "cost by service"
	Key     string  `json:"key"`
	Value   float64 `json:"value"`
	Pct     float64 `json:"pct"`
}

type getLLMStatsOut struct {
	GroupBy string        `json:"group_by"`
	Totals  llmTotals     `json:"totals"`
	Leaders []llmLeader   `json:"leaders"`
	Groups  []llmGroupRow `json:"groups"`
	List
}

func (tl *tools) addGetLLMStats(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "get_llm_stats",
		Description: "LLM spend over a window: totals, the model and service leading cost and tokens, and a breakdown by model, provider, " +
			"service or day (calls, tokens, cost, share, latency, errors). For \"how much do I spend on LLMs?\".",
	}, func(p map[string]*jsonschema.Schema) {
		enum(p["group_by"], store.LLMByModel, store.LLMByProvider, store.LLMByService, store.LLMByDay)
		def(p["group_by"], store.LLMByModel)
		windowSchema(p, "24h")
		pageSchema(p, 20, 100)
	}, tl.getLLMStats)
}

func (tl *tools) getLLMStats(ctx context.Context, tn *store.Tenant, in getLLMStatsIn) (getLLMStatsOut, string, error) {
	var out getLLMStatsOut
	var offset int
	from, to, _, err := pageWindow(ctx, in.Window, in.Page, in, &offset, tl.now(), 24*time.Hour)
	if err != nil {
		return out, "", err
	}
	groupBy := in.GroupBy
	if groupBy == "" {
		groupBy = store.LLMByModel
	}
	if from, to, err = minuteWindow(from, to); err != nil {
		return out, "", err
	}
	// The per-minute LLM rollups give the breakdowns by model, service and day, and the leaders,
	// from a few hundred rows whatever the traffic; only a breakdown by provider reads the calls.
	rows, err := metrics.Load(ctx, tn, store.RollupQuery{Kind: store.RollupLLM, Service: in.Service, Name: in.Model,
		From: from.UnixNano(), To: to.UnixNano(), Hourly: true})
	if err != nil {
		return out, "", err
	}
	pairs, err := llmGroups(rows, func(r *store.Rollup) string { return r.Name + "\x00" + r.Service })
	if err != nil {
		return out, "", err
	}
	by := map[string][]store.LLMGroup{
		store.LLMByModel:   sumBy(pairs, func(g store.LLMGroup) string { return g.Key }),
		store.LLMByService: sumBy(pairs, func(g store.LLMGroup) string { return g.Sub }),
	}
	switch groupBy {
	case store.LLMByDay:
		by[groupBy], err = llmGroups(rows, func(r *store.Rollup) string {
			return time.Unix(0, r.BucketNS-r.BucketNS%int64(24*time.Hour)).UTC().Format(time.DateOnly)
		})
	case store.LLMByProvider:
		by[groupBy], err = tn.LLMStats(ctx, store.LLMQuery{From: from.UnixNano(), To: to.UnixNano(), Service: in.Service, Model: in.Model}, groupBy)
	}
	if err != nil {
		return out, "", err
	}
	groups := by[groupBy]
	for _, g := range groups {
		out.Totals.add(g)
	}
	out.GroupBy = groupBy
	out.Leaders = []llmLeader{}
	if out.Totals.Calls > 0 {
		out.Leaders = append(out.Leaders, leader("cost by model", by[store.LLMByModel], out.Totals, cost),
			leader("tokens by service", by[store.LLMByService], out.Totals, tokens),
			leader("cost by service", by[store.LLMByService], out.Totals, cost))
	}
	if groupBy != store.LLMByDay {
		sort.SliceStable(groups, func(i, j int) bool {
			if groups[i].CostUSD != groups[j].CostUSD {
				return groups[i].CostUSD > groups[j].CostUSD
			}
			return tokens(groups[i]) > tokens(groups[j])
		})
	}
	out.Window, out.Total = timeRange(from, to), len(groups)
	b := newBudget(in.MaxTokens)
	b.fit(out.Leaders, "")
	var lines string
	var next int
	out.Groups, lines, next = offsetPage(len(groups), offset, clamp(in.Limit, 1, 100, 20), b,
		func(i int) llmGroupRow { return newLLMGroupRow(groups[i], out.Totals) })
	if next >= 0 {
		out.Truncated, out.NextCursor = true, encodeCursor(ctx, in, from, to, next)
	}
	out.Returned = len(out.Groups)
	out.Note, out.Next = llmStatsSuggestions(out, fmtStep(to.Sub(from)))
	return out, out.text(lines), nil
}

// llmGroups sums rollup rows by key into groups. Key "model\x00service" fills Key and Sub. A rollup
// knows no unpriced call, only cost; since a model is priced for all its calls or for none, a model
// with tokens but no cost counts as unknown price. Latency is the typical (median) one, weighted by
// calls when groups merge.
func llmGroups(rows []store.Rollup, key func(*store.Rollup) string) ([]store.LLMGroup, error) {
	aggs, err := metrics.Group(rows, key)
	if err != nil {
		return nil, err
	}
	out := make([]store.LLMGroup, 0, len(aggs))
	for k, a := range aggs {
		g := store.LLMGroup{Key: k, Calls: a.N, Errors: a.Errors, InputTokens: a.InputTokens, OutputTokens: a.OutputTokens,
			CostUSD: a.CostUSD, DurationNS: a.QuantileNS(0.5) * a.N}
		if model, service, ok := strings.Cut(k, "\x00"); ok {
			g.Key, g.Sub = model, service
			if g.CostUSD == 0 && g.InputTokens+g.OutputTokens > 0 {
				g.UnknownCostCalls = g.Calls
			}
		}
		out = append(out, g)
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Key < out[j].Key || out[i].Key == out[j].Key && out[i].Sub < out[j].Sub
	})
	return out, nil
}

// sumBy merges groups by key, in key order.
func sumBy(groups []store.LLMGroup, key func(store.LLMGroup) string) []store.LLMGroup {
	by := map[string]*store.LLMGroup{}
	var keys []string
	for _, g := range groups {
		k := key(g)
		s := by[k]
		if s == nil {
			s = &store.LLMGroup{Key: k}
			by[k] = s
			keys = append(keys, k)
		}
		s.Calls += g.Calls
		s.Errors += g.Errors
		s.InputTokens += g.InputTokens
		s.OutputTokens += g.OutputTokens
		s.CachedInputTokens += g.CachedInputTokens
		s.CostUSD += g.CostUSD
		s.UnknownCostCalls += g.UnknownCostCalls
		s.DurationNS += g.DurationNS
	}
	sort.Strings(keys)
	out := make([]store.LLMGroup, 0, len(keys))
	for _, k := range keys {
		out = append(out, *by[k])
	}
	return out
}

func (t *llmTotals) add(g store.LLMGroup) {
	t.Calls += g.Calls
	t.InputTokens += g.InputTokens
	t.OutputTokens += g.OutputTokens
	t.CostUSD += g.CostUSD
	t.UnknownCostCalls += g.UnknownCostCalls
	t.Errors += g.Errors
}

func cost(g store.LLMGroup) float64   { return g.CostUSD }
func tokens(g store.LLMGroup) float64 { return float64(g.InputTokens + g.OutputTokens) }

func leader(measure string, groups []store.LLMGroup, totals llmTotals, value func(store.LLMGroup) float64) llmLeader {
	var best store.LLMGroup
	for _, g := range groups {
		if value(g) > value(best) {
			best = g
		}
	}
	total := totals.CostUSD
	if strings.HasPrefix(measure, "tokens") {
		total = float64(totals.InputTokens + totals.OutputTokens)
	}
	l := llmLeader{Measure: measure, Key: best.Key, Value: round(value(best), 4)}
	if total > 0 {
		l.Pct = round(100*value(best)/total, 1)
	}
	return l
}

func newLLMGroupRow(g store.LLMGroup, t llmTotals) llmGroupRow {
	r := llmGroupRow{Key: g.Key, llmTotals: llmTotals{Calls: g.Calls, InputTokens: g.InputTokens, OutputTokens: g.OutputTokens,
		CostUSD: round(g.CostUSD, 4), UnknownCostCalls: g.UnknownCostCalls, Errors: g.Errors}}
	if t.CostUSD > 0 {
		r.CostPct = round(100*g.CostUSD/t.CostUSD, 1)
	}
	if tt := t.InputTokens + t.OutputTokens; tt > 0 {
		r.TokensPct = round(100*tokens(g)/float64(tt), 1)
	}
	if g.Calls > 0 {
		r.LatencyMS = msOf(g.DurationNS / g.Calls)
	}
	return r
}

func (r llmGroupRow) line() string {
	s := fmt.Sprintf("- %s: %s (%.1f%%), calls %d, tokens %d in + %d out (%.1f%%), latency ~%s", r.Key, usd(r.CostUSD), r.CostPct,
		r.Calls, r.InputTokens, r.OutputTokens, r.TokensPct, ms(r.LatencyMS))
	if r.Errors > 0 {
		s += fmt.Sprintf(", failed %d", r.Errors)
	}
	if r.UnknownCostCalls > 0 {
		s += fmt.Sprintf(", of unknown price %d", r.UnknownCostCalls)
	}
	return s + "\n"
}

func llmStatsSuggestions(out getLLMStatsOut, since string) (string, []Call) {
	if out.Totals.Calls == 0 {
		return "no LLM call in this window. Widen it (e.g. since=7d); LLM calls come from GenAI spans (gen_ai.* attributes).",
			[]Call{{Tool: "get_llm_stats", Args: map[string]any{"since": "30d"}}}
	}
	note := ""
	if out.Totals.UnknownCostCalls > 0 {
		note = fmt.Sprintf("calls of models without a known price: %d; their cost is not in cost_usd (unknown is not free).", out.Totals.UnknownCostCalls)
	}
	var next []Call
	if out.GroupBy != store.LLMByService {
		next = append(next, Call{Tool: "get_llm_stats", Args: map[string]any{"group_by": "service", "since": since}, Why: "spend per service"})
	}
	if out.GroupBy != store.LLMByDay {
		next = append(next, Call{Tool: "get_llm_stats", Args: map[string]any{"group_by": "day", "since": "7d"}, Why: "the trend"})
	}
	next = append(next, Call{Tool: "search_llm_calls", Args: map[string]any{"sort": "cost", "since": since}, Why: "the costliest calls"})
	return note, next
}

func (o getLLMStatsOut) text(lines string) string {
	var b strings.Builder
	t := o.Totals
	fmt.Fprintf(&b, "LLM usage %s: %s; calls %d (failed %d); tokens %d input + %d output\n", o.Window, usd(t.CostUSD), t.Calls,
		t.Errors, t.InputTokens, t.OutputTokens)
	for _, l := range o.Leaders {
		v := usd(l.Value)
		if strings.HasPrefix(l.Measure, "tokens") {
			v = strconv.FormatFloat(l.Value, 'f', 0, 64) + " tokens"
		}
		fmt.Fprintf(&b, "Most %s: %s, %s (%.1f%%)\n", l.Measure, l.Key, v, l.Pct)
	}
	b.WriteString(listHeader("groups by "+o.GroupBy, o.List))
	b.WriteString(lines)
	return b.String() + footer(o.Note, o.Next)
}
