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
	svc := an.a.Service
	load := func(from, to int64) (map[string]*metrics.Agg, metrics.Agg, error) {
		rows, err := metrics.Load(ctx, an.t, store.RollupQuery{Kind: store.RollupLLM, Service: svc, From: from, To: to})
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
	now, cur, err := load(an.r.FromNS, an.r.ToNS)
	if err != nil {
		return nil, err
	}
	before, base, err := load(an.r.BaselineFromNS, an.r.BaselineToNS)
	if err != nil {
		return nil, err
	}
	if cur.N == 0 || base.N == 0 {
		return nil, nil
	}
	value := func(a *metrics.Agg) float64 {
		if metric == anomaly.LLMTokens {
			return float64(a.InputTokens + a.OutputTokens)
		}
		return a.CostUSD
	}
	unit, what := "USD", "spend"
	if metric == anomaly.LLMTokens {
		unit, what = "tokens", "tokens"
	}
	// What the window's calls would have cost at the baseline's model mix and prices.
	expected := value(&base) / float64(base.N) * float64(cur.N)
	excess := value(&cur) - expected
	if excess <= 0 {
		return nil, nil
	}
	models := make([]string, 0, len(now))
	for m := range now {
		models = append(models, m)
	}
	sort.Strings(models)
	var causes []Cause
	for _, m := range models {
		a := now[m]
		b := before[m]
		if b == nil {
			b = &metrics.Agg{}
		}
		shareNow, shareBefore := float64(a.N)/float64(cur.N), float64(b.N)/float64(base.N)
		// The model's part of the excess: its value now minus what its calls would have been at the
		// baseline's average per call.
		part := (value(a) - value(&base)/float64(base.N)*float64(a.N)) / excess
		if part <= 0 || shareNow <= shareBefore {
			continue
		}
		c := Cause{Kind: KindLLMModel, Service: svc, Operation: "", Attribute: "gen_ai.request.model", Value: m,
			// A model new to the service (a switch) is a cause; one whose share merely grew, less so.
			Confidence: part * (shareNow - shareBefore) / shareNow,
			Figures: []Figure{
				{Name: "share of LLM calls", Baseline: shareBefore, Anomalous: shareNow},
				{Name: what + " per call", Baseline: value(&base) / float64(base.N), Anomalous: value(a) / float64(a.N), Unit: unit},
			}}
		c.Description = fmt.Sprintf("%s moved its LLM calls to model %s: %s of calls now use it (%s before), and they account for %s of the extra %s.",
			svc, m, pct(shareNow), pct(shareBefore), pct(min(part, 1)), what)
		c.TraceIDs, err = an.llmExamples(ctx, m)
		if err != nil {
			return nil, err
		}
		causes = append(causes, c)
	}
	// Larger prompts with an unchanged model mix.
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
