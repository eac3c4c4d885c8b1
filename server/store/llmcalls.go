package store

import (
	"context"
	"fmt"
)

// LLM call orders for LLMQuery.Sort; each is descending.
const (
	LLMByStart   = "start"
	LLMByCost    = "cost"
	LLMByLatency = "latency"
	LLMByTokens  = "tokens"
)

// llmSortKeys are the SQL expressions behind the orders. Unknown cost sorts below free calls.
var llmSortKeys = map[string]string{
	LLMByStart:   "start_ns",
	LLMByCost:    "COALESCE(cost_usd, -1)",
	LLMByLatency: "duration_ns",
	LLMByTokens:  "(input_tokens + output_tokens)",
}

// llmErrorCond is what makes an LLM call a failure; LLMCall.Failed is the same rule in Go.
const llmErrorCond = "(status_code = 2 OR error_type <> '')"

// llmModel names a call's model as the application chose it (the requested model), else as the
// provider reported it: providers answer with dated snapshots, and failed calls report none.
const llmModel = "COALESCE(NULLIF(request_model, ''), response_model)"

// LLMQuery selects LLM calls.
type LLMQuery struct {
	From, To   int64
	Service    string
	Model      string // request or response model
	Provider   string
	TraceID    string
	ErrorsOnly bool
	OKOnly     bool
	Sort       string // one of the LLMBy* orders; empty means LLMByStart
	// After is a keyset position: the sort key (a float for cost, an integer otherwise) and the id.
	After *LLMKey
	Limit int
}

// LLMKey is a position in an LLMQuery's order.
type LLMKey struct {
	Key any
	ID  int64
}

func (t *Tenant) llmWhere(q LLMQuery) where {
	var w where
	w.add("tenant_id = ?", t.id)
	w.add("start_ns >= ? AND start_ns < ?", q.From, q.To)
	if q.Service != "" {
		w.add("service = ?", q.Service)
	}
	if q.Model != "" {
		w.add("(request_model = ? OR response_model = ?)", q.Model, q.Model)
	}
	if q.Provider != "" {
		w.add("provider = ?", q.Provider)
	}
	if q.TraceID != "" {
		w.add("trace_id = ?", q.TraceID)
	}
	if q.ErrorsOnly {
		w.add(llmErrorCond)
	}
	if q.OKOnly {
		w.add("NOT " + llmErrorCond)
	}
	return w
}

// SearchLLMCalls returns up to q.Limit calls in q's order, highest first.
func (t *Tenant) SearchLLMCalls(ctx context.Context, q LLMQuery) ([]LLMCall, error) {
	key, ok := llmSortKeys[q.Sort]
	if !ok {
		key = llmSortKeys[LLMByStart]
	}
	w := t.llmWhere(q)
	if q.After != nil {
		w.add("("+key+", id) < (?, ?)", q.After.Key, q.After.ID)
	}
	query := `SELECT id, trace_id, span_id, service, operation, provider, request_model, response_model, input_tokens,
			output_tokens, cached_input_tokens, cost_usd, start_ns, duration_ns, status_code, error_type
		FROM llm_calls` + w.sql() + ` ORDER BY ` + key + ` DESC, id DESC LIMIT ?`
	var out []LLMCall
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(query), append(w.args, q.Limit)...); err != nil {
		return nil, fmt.Errorf("search LLM calls: %w", err)
	}
	return out, nil
}

// CountLLMCalls counts the calls matching q (ignoring After and Limit), stopping at max.
func (t *Tenant) CountLLMCalls(ctx context.Context, q LLMQuery, max int) (int, error) {
	w := t.llmWhere(q)
	var n int
	query := `SELECT COUNT(*) FROM (SELECT 1 FROM llm_calls` + w.sql() + ` LIMIT ?) c`
	if err := t.db.x.GetContext(ctx, &n, t.rebind(query), append(w.args, max)...); err != nil {
		return 0, fmt.Errorf("count LLM calls: %w", err)
	}
	return n, nil
}

// LLM stats groupings for LLMStats.
const (
	LLMByModel    = "model"
	LLMByProvider = "provider"
	LLMByService  = "service"
	LLMByDay      = "day"
	// LLMByModelAndService groups by both: Key is the model, Sub the service. One scan then serves
	// the per-model and per-service figures.
	LLMByModelAndService = "model,service"
)

var llmGroupKeys = map[string]string{
	LLMByModel:    llmModel,
	LLMByProvider: "provider",
	LLMByService:  "service",
	// UTC day start in unix nanoseconds; both engines divide integers exactly.
	LLMByDay:             "((start_ns / 86400000000000) * 86400000000000)",
	LLMByModelAndService: llmModel,
}

// LLMGroup aggregates the calls of one group.
type LLMGroup struct {
	Key               string  `db:"k"`
	Sub               string  `db:"service"` // the second key of LLMByModelAndService
	Calls             int64   `db:"calls"`
	Errors            int64   `db:"errors"`
	InputTokens       int64   `db:"input_tokens"`
	OutputTokens      int64   `db:"output_tokens"`
	CachedInputTokens int64   `db:"cached_input_tokens"`
	CostUSD           float64 `db:"cost_usd"`
	// UnknownCostCalls had no price: their cost is not in CostUSD.
	UnknownCostCalls int64 `db:"unknown_cost_calls"`
	DurationNS       int64 `db:"duration_ns"` // sum
}

// LLMStats aggregates the calls matching q (Sort, After and Limit are ignored) by groupBy, one of
// the LLMBy{Model,Provider,Service,Day} groupings, ordered by key.
func (t *Tenant) LLMStats(ctx context.Context, q LLMQuery, groupBy string) ([]LLMGroup, error) {
	key, ok := llmGroupKeys[groupBy]
	if !ok {
		return nil, fmt.Errorf("LLM stats: unknown grouping %q", groupBy)
	}
	w := t.llmWhere(q)
	groups := "k"
	if groupBy == LLMByModelAndService {
		key, groups = llmModel+" AS k, service", "k, service"
	} else {
		key += " AS k"
	}
	query := `SELECT ` + key + `, COUNT(*) AS calls,
			SUM(CASE WHEN ` + llmErrorCond + ` THEN 1 ELSE 0 END) AS errors,
			SUM(input_tokens) AS input_tokens, SUM(output_tokens) AS output_tokens,
			SUM(cached_input_tokens) AS cached_input_tokens, COALESCE(SUM(cost_usd), 0) AS cost_usd,
			SUM(CASE WHEN cost_usd IS NULL THEN 1 ELSE 0 END) AS unknown_cost_calls, SUM(duration_ns) AS duration_ns
		FROM llm_calls` + w.sql() + ` GROUP BY ` + groups + ` ORDER BY ` + groups
	var out []LLMGroup
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(query), w.args...); err != nil {
		return nil, fmt.Errorf("LLM stats by %s: %w", groupBy, err)
	}
	return out, nil
}
