package rca

import (
	"context"
	"fmt"
	"sort"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// llm explains an LLM cost or token anomaly by the models used, from the rollups: which model's
// calls account for the spend (or tokens) above what the same number of calls cost before, and
// whether prompts grew.
func (an *analysis) llm(ctx context.Context, metric string) ([]Cause, error) {
	now, cur, err := an.llmByModel(ctx, an.r.FromNS, an.r.ToNS)
	if err != nil {
		return nil, err
	}
	before, base, err := an.llmByModel(ctx, an.r.BaselineFromNS, an.r.BaselineToNS)
	if err != nil {
		return nil, err
	}
	if cur.N == 0 || base.N == 0 {
		return nil, nil
	}
	m := llmMeasure{metric: metric, cur: cur, base: base}
	// What the window's calls would have cost at the baseline's model mix and prices.
	m.excess = m.value(&cur) - m.value(&base)/float64(base.N)*float64(cur.N)
	if m.excess <= 0 {
		return nil, nil
	}
	causes, err := an.modelCauses(ctx, m, now, before)
	if err != nil {
		return nil, err
	}
	// Larger prompts with an unchanged model mix.
	svc := an.a.Service
	inNow, inBefore := float64(cur.InputTokens)/float64(cur.N), float64(base.InputTokens)/float64(base.N)
	if inBefore > 0 && inNow > 1.3*inBefore {
		c := Cause{Kind: KindPromptSize, Service: svc, Attribute: "gen_ai.usage.input_tokens",
			Confidence: 0.6 * min(1, (inNow-inBefore)/inBefore),
			Figures:    []Figure{{Name: "input tokens per call", Baseline: inBefore, Anomalous: inNow, Unit: "tokens"}}}
		c.Description = fmt.Sprintf("prompts of %s grew from %.0f to %.0f input tokens per call.", svc, inBefore, inNow)
		causes = append(causes, c)
	}
	an.note(int(cur.N), int(base.N))
	return causes, nil
}

// llmByModel loads the service's LLM rollups of [from, to) by model, and their total.
func (an *analysis) llmByModel(ctx context.Context, from, to int64) (map[string]*metrics.Agg, metrics.Agg, error) {
	rows, err := metrics.Load(ctx, an.t, store.RollupQuery{Kind: store.RollupLLM, Service: an.a.Service, From: from, To: to})
	if err != nil {
		return nil, metrics.Agg{}, err
	}
	by, err := metrics.Group(rows, func(r *store.Rollup) string { return r.Name })
	var total metrics.Agg
	for _, a := range by {
		total.Merge(a)
	}
	return by, total, err
}

// llmMeasure is the figure an LLM anomaly is about (spend or tokens), in the window and the baseline.
type llmMeasure struct {
	metric    string
	cur, base metrics.Agg
	excess    float64 // above what the window's calls would have been at the baseline's mix and prices
}

func (m llmMeasure) value(a *metrics.Agg) float64 {
	if m.metric == anomaly.LLMTokens {
		return float64(a.InputTokens + a.OutputTokens)
	}
	return a.CostUSD
}

// modelCauses finds the models whose calls took a larger share and account for part of the excess.
func (an *analysis) modelCauses(ctx context.Context, m llmMeasure, now, before map[string]*metrics.Agg) ([]Cause, error) {
	svc := an.a.Service
	unit, what := "USD", "spend"
	if m.metric == anomaly.LLMTokens {
		unit, what = "tokens", "tokens"
	}
	basePerCall := m.value(&m.base) / float64(m.base.N)
	models := make([]string, 0, len(now))
	for model := range now {
		models = append(models, model)
	}
	sort.Strings(models)
	var causes []Cause
	for _, model := range models {
		a := now[model]
		b := before[model]
		if b == nil {
			b = &metrics.Agg{}
		}
		shareNow, shareBefore := float64(a.N)/float64(m.cur.N), float64(b.N)/float64(m.base.N)
		// The model's part of the excess: its value now minus what its calls would have been at the
		// baseline's average per call.
		part := (m.value(a) - basePerCall*float64(a.N)) / m.excess
		if part <= 0 || shareNow <= shareBefore {
			continue
		}
		c := Cause{Kind: KindLLMModel, Service: svc, Operation: "", Attribute: "gen_ai.request.model", Value: model,
			// A model new to the service (a switch) is a cause; one whose share merely grew, less so.
			Confidence: part * (shareNow - shareBefore) / shareNow,
			Figures: []Figure{
				{Name: "share of LLM calls", Baseline: shareBefore, Anomalous: shareNow},
				{Name: what + " per call", Baseline: basePerCall, Anomalous: m.value(a) / float64(a.N), Unit: unit},
			}}
		c.Description = fmt.Sprintf("%s moved its LLM calls to model %s: %s of calls now use it (%s before), and they account for %s of the extra %s.",
			svc, model, pct(shareNow), pct(shareBefore), pct(min(part, 1)), what)
		var err error
		if c.TraceIDs, err = an.llmExamples(ctx, model); err != nil {
			return nil, err
		}
		causes = append(causes, c)
	}
	return causes, nil
}

func (an *analysis) llmExamples(ctx context.Context, model string) ([]string, error) {
	calls, err := an.t.SearchLLMCalls(ctx, store.LLMQuery{From: an.r.FromNS, To: an.r.ToNS, Service: an.a.Service, Model: model,
		Sort: store.LLMByCost, Limit: 3})
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, c := range calls {
		ids = append(ids, c.TraceID)
	}
	return ids, nil
}
