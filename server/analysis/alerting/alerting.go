// Package alerting evaluates a tenant's alert rules against the metric rollups once per tick and
// keeps each rule's firing/resolved state in the database. Every replica runs the evaluator; the
// store's tick claim lets exactly one of them evaluate a given tick, and results commit only while
// that tick is current, so replicas never double-fire and a restart resumes from the stored state.
package alerting

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// Metrics a rule may watch.
const (
	ErrorRate  = "error_rate"     // failed share of requests, 0..1
	P50        = "latency_p50_ms" // request latency percentiles, milliseconds
	P90        = "latency_p90_ms"
	P95        = "latency_p95_ms"
	P99        = "latency_p99_ms"
	Throughput = "throughput_rpm" // requests per minute
	LLMCost    = "llm_cost_usd"   // LLM spend over the window, USD
	LLMTokens  = "llm_tokens"     // LLM input plus output tokens over the window
)

var quantiles = map[string]float64{P50: 0.50, P90: 0.90, P95: 0.95, P99: 0.99}

// Job is the name under which evaluation ticks are claimed.
const Job = "alerts"

// Validate checks a rule before it is stored; the errors say how to fix it.
func Validate(r store.AlertRule) error {
	switch {
	case r.ID == "":
		return fmt.Errorf("alert rule needs an id")
	case r.WindowSeconds < 60 || r.WindowSeconds%60 != 0:
		return fmt.Errorf("alert rule %s: window_seconds must be a whole number of minutes (60, 300, …), got %d", r.ID, r.WindowSeconds)
	case r.WindowSeconds > 7*24*3600:
		return fmt.Errorf("alert rule %s: window_seconds is at most a week", r.ID)
	}
	if _, ok := quantiles[r.Metric]; !ok {
		switch r.Metric {
		case ErrorRate, Throughput, LLMCost, LLMTokens:
		default:
			return fmt.Errorf("alert rule %s: unknown metric %q; use one of %s", r.ID, r.Metric,
				strings.Join([]string{ErrorRate, P50, P90, P95, P99, Throughput, LLMCost, LLMTokens}, ", "))
		}
	}
	if _, ok := compare(r.Comparison); !ok {
		return fmt.Errorf("alert rule %s: comparison %q must be one of >, >=, <, <=", r.ID, r.Comparison)
	}
	if !slices.Contains(store.Severities, r.Severity) {
		return fmt.Errorf("alert rule %s: severity %q must be one of %s", r.ID, r.Severity, strings.Join(store.Severities, ", "))
	}
	return nil
}

func compare(op string) (func(v, threshold float64) bool, bool) {
	switch op {
	case ">":
		return func(v, th float64) bool { return v > th }, true
	case ">=":
		return func(v, th float64) bool { return v >= th }, true
	case "<":
		return func(v, th float64) bool { return v < th }, true
	case "<=":
		return func(v, th float64) bool { return v <= th }, true
	}
	return nil, false
}

// Value computes a rule's metric over [end-window, end). ok is false when the window holds no data
// for a metric that needs some (a latency or error rate of no requests).
func Value(ctx context.Context, t *store.Tenant, r store.AlertRule, end int64) (v float64, ok bool, err error) {
	from := end - int64(r.WindowSeconds)*1e9
	kind := store.RollupRequests
	if r.Metric == LLMCost || r.Metric == LLMTokens {
		kind = store.RollupLLM
	}
	a, err := metrics.Window(ctx, t, kind, r.Service, from, end)
	if err != nil {
		return 0, false, err
	}
	switch r.Metric {
	case ErrorRate:
		return a.ErrorRate(), a.N > 0, nil
	case Throughput:
		return float64(a.N) / (float64(r.WindowSeconds) / 60), true, nil
	case LLMCost:
		return a.CostUSD, true, nil
	case LLMTokens:
		return float64(a.InputTokens + a.OutputTokens), true, nil
	}
	return float64(a.QuantileNS(quantiles[r.Metric])) / 1e6, a.N > 0, nil
}

// Evaluate runs one tick of rule evaluation for tenant t at tick (the end of every rule's window).
// It returns false without evaluating when another replica has claimed this tick or a later one.
// A rule whose value cannot be computed is skipped (and returned in skipped); the others are evaluated.
func Evaluate(ctx context.Context, t *store.Tenant, tick int64) (ran bool, skipped []store.Skipped, err error) {
	claimed, err := t.ClaimTick(ctx, Job, tick)
	if err != nil || !claimed {
		return false, nil, err
	}
	rules, err := t.AlertRules(ctx)
	if err != nil {
		return false, nil, err
	}
	firing, err := t.ActiveAlerts(ctx, "", "")
	if err != nil {
		return false, nil, err
	}
	open := map[string]store.ActiveAlert{}
	for _, a := range firing {
		open[a.RuleID] = a
	}
	type result struct {
		rule  store.AlertRule
		value float64
		ok    bool
	}
	var results []result
	for _, r := range rules {
		if !r.Enabled || Validate(r) != nil {
			continue
		}
		v, ok, err := Value(ctx, t, r, tick)
		if err != nil {
			if ctx.Err() != nil {
				return false, nil, err
			}
			skipped = append(skipped, store.Skipped{Key: fmt.Sprintf("alert rule %q", r.ID), Err: err})
			continue
		}
		results = append(results, result{r, v, ok})
	}
	current, err := t.CommitTick(ctx, Job, tick, tick, func(tx *store.TickTx) error {
		for _, res := range results {
			r := res.rule
			var recorded *float64
			if res.ok {
				recorded = &res.value
			}
			if err := tx.RecordEvaluation(r.ID, tick, recorded); err != nil {
				return err
			}
			cmp, _ := compare(r.Comparison)
			breach := res.ok && cmp(res.value, r.Threshold)
			a, isFiring := open[r.ID]
			msg := Message(r, res.value, res.ok)
			switch {
			case breach && !isFiring:
				err = tx.FireAlert(store.Alert{RuleID: r.ID, StartedNS: tick, Value: res.value, Threshold: r.Threshold, LastEvalNS: tick, Message: msg})
			case breach:
				err = tx.UpdateAlert(a.ID, res.value, r.Threshold, tick, msg)
			case isFiring:
				err = tx.ResolveAlert(a.ID, tick, msg)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
	return current, skipped, err
}

// Message describes a rule's current value for a person reading the alert.
func Message(r store.AlertRule, v float64, ok bool) string {
	var what string
	switch r.Metric {
	case ErrorRate:
		what = "error rate"
	case Throughput:
		what = "throughput"
	case LLMCost:
		what = "LLM spend"
	case LLMTokens:
		what = "LLM tokens"
	default:
		what = strings.TrimSuffix(strings.TrimPrefix(r.Metric, "latency_"), "_ms") + " latency"
	}
	scope := "all services"
	if r.Service != "" {
		scope = r.Service
	}
	window := metrics.Human(time.Duration(r.WindowSeconds) * time.Second)
	if !ok {
		return fmt.Sprintf("%s of %s: no requests in the last %s", what, scope, window)
	}
	return fmt.Sprintf("%s of %s is %s over the last %s (threshold %s %s)", what, scope, format(r.Metric, v), window,
		r.Comparison, format(r.Metric, r.Threshold))
}

func format(metric string, v float64) string {
	switch {
	case metric == ErrorRate:
		return strconv.FormatFloat(100*v, 'f', 1, 64) + "%"
	case metric == Throughput:
		return strconv.FormatFloat(v, 'f', 1, 64) + "/min"
	case metric == LLMCost:
		return "$" + strconv.FormatFloat(v, 'f', 2, 64)
	case metric == LLMTokens:
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64) + " ms"
}

// LoadRules reads the rules file the operator writes (tenantconfig.AlertRulesPath), already in the
// server's terms, and validates every rule.
func LoadRules(path string) ([]store.AlertRule, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read alert rules: %w", err)
	}
	specs, err := tenantconfig.DecodeAlertRules(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rules := make([]store.AlertRule, len(specs))
	for i, s := range specs {
		rules[i] = store.AlertRule{ID: s.ID, Service: s.Service, Metric: s.Metric, Comparison: s.Comparison,
			Threshold: s.Threshold, WindowSeconds: s.WindowSeconds, Severity: s.Severity, Enabled: s.Enabled == nil || *s.Enabled}
		if err := Validate(rules[i]); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return rules, nil
}

// DemoRules watch the demo shop. Thresholds sit well above what its normal traffic reaches in a
// window (medians rather than tails for services with few requests), so they fire during incidents.
func DemoRules() []store.AlertRule {
	return []store.AlertRule{
		{ID: "checkout-errors", Service: "checkout-service", Metric: ErrorRate, Comparison: ">", Threshold: 0.2, WindowSeconds: 600, Severity: "critical", Enabled: true},
		{ID: "payment-latency", Service: "payment-service", Metric: P50, Comparison: ">", Threshold: 1000, WindowSeconds: 600, Severity: "high", Enabled: true},
		{ID: "assistant-latency", Service: "support-assistant", Metric: P50, Comparison: ">", Threshold: 20000, WindowSeconds: 900, Severity: "medium", Enabled: true},
		{ID: "recommendation-llm-spend", Service: "recommendation-service", Metric: LLMCost, Comparison: ">", Threshold: 0.2, WindowSeconds: 3600, Severity: "medium", Enabled: true},
	}
}
