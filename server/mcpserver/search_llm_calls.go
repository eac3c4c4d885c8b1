package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store"
)

type searchLLMCallsIn struct {
	Service  string `json:"service,omitempty"`
	Model    string `json:"model,omitempty"`
	Provider string `json:"provider,omitempty"`
	TraceID  string `json:"trace_id,omitempty" jsonschema:"calls in this trace, at any time unless start/end"`
	Status   string `json:"status,omitempty"`
	Sort     string `json:"sort,omitempty"`
	Window
	Page
}

type llmCallRow struct {
	ID           string   `json:"id"` // opaque, see tenantKeys.ref
	Start        string   `json:"start"`
	Service      string   `json:"service"`
	Provider     string   `json:"provider,omitempty"`
	Model        string   `json:"model"`
	InputTokens  int64    `json:"input_tokens"`
	OutputTokens int64    `json:"output_tokens"`
	CachedTokens int64    `json:"cached_tokens,omitempty"`
	CostUSD      *float64 `json:"cost_usd"` // null: the model's price is unknown
	DurationMS   float64  `json:"duration_ms"`
	Error        string   `json:"error,omitempty"`
	TraceID      string   `json:"trace_id"`
	SpanID       string   `json:"span_id"`
}

type searchLLMCallsOut struct {
	Calls []llmCallRow `json:"calls"`
	List
}

// llmPos is a cursor position; the key stays a json.Number so that nanosecond timestamps survive.
type llmPos struct {
	K  json.Number `json:"k"`
	ID int64       `json:"id"`
}

func (tl *tools) addSearchLLMCalls(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "search_llm_calls",
		Description: "Individual LLM calls: model, provider, service, tokens, cost (null = unknown price), latency, status, trace link. " +
			"Filter by service, model, provider, status, trace_id; sort by start, cost, latency or tokens.",
	}, func(p map[string]*jsonschema.Schema) {
		enum(p["status"], "error", "ok")
		enum(p["sort"], store.LLMByStart, store.LLMByCost, store.LLMByLatency, store.LLMByTokens)
		def(p["sort"], store.LLMByStart)
		windowSchema(p, "24h")
		pageSchema(p, 20, 100)
	}, tl.searchLLMCalls)
}

func (tl *tools) searchLLMCalls(ctx context.Context, tn *store.Tenant, in searchLLMCallsIn) (searchLLMCallsOut, string, error) {
	var out searchLLMCallsOut
	var pos llmPos
	from, to, paging, err := pageWindow(ctx, in.Window, in.Page, in, &pos, tl.now(), 24*time.Hour)
	if err != nil {
		return out, "", err
	}
	if in.TraceID != "" && in.Start == "" && in.End == "" && !paging {
		from = to.Add(-maxWindow) // the trace index makes this cheap
	}
	sortBy := in.Sort
	if sortBy == "" {
		sortBy = store.LLMByStart
	}
	q := store.LLMQuery{From: from.UnixNano(), To: to.UnixNano(), Service: in.Service, Model: in.Model, Provider: in.Provider,
		TraceID: in.TraceID, ErrorsOnly: in.Status == "error", OKOnly: in.Status == "ok", Sort: sortBy}
	if paging {
		q.After = &store.LLMKey{ID: pos.ID}
		if sortBy == store.LLMByCost {
			q.After.Key, err = pos.K.Float64()
		} else {
			q.After.Key, err = pos.K.Int64()
		}
		if err != nil {
			return out, "", badArg("cursor is not one this server issued: pass next_cursor unchanged")
		}
	}
	limit := clamp(in.Limit, 1, 100, 20)
	q.Limit = limit + 1
	calls, err := tn.SearchLLMCalls(ctx, q)
	if err != nil {
		return out, "", err
	}
	out.Calls = []llmCallRow{}
	b := newBudget(in.MaxTokens)
	var lines strings.Builder
	for i, c := range calls {
		row := newLLMCallRow(ctx, c)
		line := row.line()
		if i == limit || !b.fit(row, line) {
			out.Truncated = true
			out.NextCursor = encodeCursor(ctx, in, from, to, llmPosOf(calls[len(out.Calls)-1], sortBy))
			break
		}
		out.Calls = append(out.Calls, row)
		lines.WriteString(line)
	}
	out.Window, out.Returned = timeRange(from, to), len(out.Calls)
	if out.Total, err = tn.CountLLMCalls(ctx, q, countCap); err != nil {
		return out, "", err
	}
	out.TotalAtLeast = out.Total == countCap
	if len(out.Calls) == 0 {
		out.Note = "no LLM call matched in this window. Widen it (e.g. since=7d) or drop filters; get_llm_stats shows the models and services in use."
		out.Next = []Call{{Tool: "get_llm_stats", Args: map[string]any{"since": "7d"}, Why: "models, services and spend"}}
	} else {
		out.Next = []Call{{Tool: "get_trace_detail", Args: map[string]any{"trace_id": out.Calls[0].TraceID}, Why: "the request that made the first call"},
			{Tool: "get_llm_stats", Args: map[string]any{"group_by": "model", "since": fmtStep(to.Sub(from))}, Why: "totals by model"}}
	}
	order := map[string]string{store.LLMByStart: "newest first", store.LLMByCost: "costliest first",
		store.LLMByLatency: "slowest first", store.LLMByTokens: "most tokens first"}[sortBy]
	text := listHeader("LLM calls, "+order, out.List) + lines.String()
	return out, text + footer(out.Note, out.Next), nil
}

func llmPosOf(c store.LLMCall, sortBy string) llmPos {
	p := llmPos{ID: c.ID}
	switch sortBy {
	case store.LLMByCost:
		v := -1.0 // the store sorts unknown cost as -1
		if c.CostUSD != nil {
			v = *c.CostUSD
		}
		p.K = json.Number(strconv.FormatFloat(v, 'g', -1, 64))
	case store.LLMByLatency:
		p.K = json.Number(strconv.FormatInt(c.DurationNS, 10))
	case store.LLMByTokens:
		p.K = json.Number(strconv.FormatInt(c.InputTokens+c.OutputTokens, 10))
	default:
		p.K = json.Number(strconv.FormatInt(c.StartNS, 10))
	}
	return p
}

func newLLMCallRow(ctx context.Context, c store.LLMCall) llmCallRow {
	r := llmCallRow{ID: keysOf(ctx).ref(kindLLMCall, c.ID), Start: at(c.StartNS), Service: c.Service, Provider: c.Provider, Model: c.RequestModel,
		InputTokens: c.InputTokens, OutputTokens: c.OutputTokens, CachedTokens: c.CachedInputTokens, CostUSD: c.CostUSD,
		DurationMS: msOf(c.DurationNS), TraceID: c.TraceID, SpanID: c.SpanID}
	if r.Model == "" {
		r.Model = c.ResponseModel
	}
	if c.Failed() {
		r.Error = capString(c.ErrorType)
		if r.Error == "" {
			r.Error = "error"
		}
	}
	return r
}

func (r llmCallRow) line() string {
	cost := "cost unknown"
	if r.CostUSD != nil {
		cost = usd(*r.CostUSD)
	}
	s := fmt.Sprintf("- %s %s %s", r.Start, r.Service, r.Model)
	if r.Provider != "" {
		s += " (" + r.Provider + ")"
	}
	s += fmt.Sprintf(" in %d out %d tok, %s, %s trace=%s span=%s", r.InputTokens, r.OutputTokens, cost, ms(r.DurationMS), r.TraceID, r.SpanID)
	if r.Error != "" {
		s += " ERROR " + r.Error
	}
	return s + "\n"
}

// usd renders a cost with enough digits for sub-cent calls.
func usd(v float64) string {
	if v != 0 && v < 0.01 {
		return "$" + strconv.FormatFloat(v, 'f', 5, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}
