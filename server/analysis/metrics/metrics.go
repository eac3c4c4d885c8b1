// Package metrics answers request and LLM statistics of services over any window from the metric
// rollups (server/store), never from raw spans: a week of a busy service is a few thousand rows.
package metrics

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/tracekit/tracekit/server/sketch"
	"github.com/tracekit/tracekit/server/store"
)

// Agg is the sum of rollup rows.
type Agg struct {
	N, Errors                 int64
	CostUSD                   float64
	InputTokens, OutputTokens int64
	Hist                      sketch.Histogram // durations in nanoseconds
}

// Add sums one row into a.
func (a *Agg) Add(r *store.Rollup) error {
	a.N += r.N
	a.Errors += r.Errors
	a.CostUSD += r.CostUSD
	a.InputTokens += r.InputTokens
	a.OutputTokens += r.OutputTokens
	if err := a.Hist.AddEncoded(r.Hist); err != nil {
		return fmt.Errorf("rollup of %s %s at %d: %w", r.Service, r.Name, r.BucketNS, err)
	}
	return nil
}

// addTo sums r into each of aggs, decoding its histogram once into scratch.
func addTo(r *store.Rollup, scratch *sketch.Histogram, aggs ...*Agg) error {
	scratch.Reset()
	if err := scratch.AddEncoded(r.Hist); err != nil {
		return fmt.Errorf("rollup of %s %s at %d: %w", r.Service, r.Name, r.BucketNS, err)
	}
	for _, a := range aggs {
		a.N += r.N
		a.Errors += r.Errors
		a.CostUSD += r.CostUSD
		a.InputTokens += r.InputTokens
		a.OutputTokens += r.OutputTokens
		a.Hist.Merge(scratch)
	}
	return nil
}

// Merge sums o into a.
func (a *Agg) Merge(o *Agg) {
	a.N += o.N
	a.Errors += o.Errors
	a.CostUSD += o.CostUSD
	a.InputTokens += o.InputTokens
	a.OutputTokens += o.OutputTokens
	a.Hist.Merge(&o.Hist)
}

// ErrorRate is Errors/N, or NaN without data.
func (a *Agg) ErrorRate() float64 {
	if a.N == 0 {
		return math.NaN()
	}
	return float64(a.Errors) / float64(a.N)
}

// QuantileNS is the q-quantile of durations in nanoseconds (0 without data).
func (a *Agg) QuantileNS(q float64) int64 { return int64(math.Round(a.Hist.Quantile(q))) }

// Stats converts a to the shape the store's exact queries return.
func (a *Agg) Stats(key string) store.RequestStats {
	return store.RequestStats{Key: key, Requests: a.N, Errors: a.Errors, Percentiles: store.Percentiles{
		P50NS: a.QuantileNS(0.50), P90NS: a.QuantileNS(0.90), P95NS: a.QuantileNS(0.95), P99NS: a.QuantileNS(0.99)}}
}

// Align widens [from, to) to whole minutes, the rollups' resolution.
func Align(from, to int64) (int64, int64) {
	from -= mod(from, store.Minute)
	if r := mod(to, store.Minute); r != 0 {
		to += store.Minute - r
	}
	return from, to
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// Load reads the rollups q selects, its window widened to whole minutes.
func Load(ctx context.Context, t *store.Tenant, q store.RollupQuery) ([]store.Rollup, error) {
	q.From, q.To = Align(q.From, q.To)
	return t.Rollups(ctx, q)
}

// Group sums rows by key.
func Group[K comparable](rows []store.Rollup, key func(*store.Rollup) K) (map[K]*Agg, error) {
	out := map[K]*Agg{}
	for i := range rows {
		r := &rows[i]
		k := key(r)
		a := out[k]
		if a == nil {
			a = &Agg{}
			out[k] = a
		}
		if err := a.Add(r); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Window sums one series kind over [from, to): every service when service is empty.
func Window(ctx context.Context, t *store.Tenant, kind int16, service string, from, to int64) (Agg, error) {
	var a Agg
	rows, err := Load(ctx, t, store.RollupQuery{Kind: kind, Service: service, From: from, To: to, Hourly: true, ServiceTotals: true})
	if err != nil {
		return a, err
	}
	for i := range rows {
		if err := a.Add(&rows[i]); err != nil {
			return a, err
		}
	}
	return a, nil
}

// Count is how many requests (or LLM calls, by kind) of service, every service when empty, [from,
// to) holds, without reading their durations.
func Count(ctx context.Context, t *store.Tenant, kind int16, service string, from, to int64) (int64, error) {
	from, to = Align(from, to)
	return t.RollupCount(ctx, store.RollupQuery{Kind: kind, Service: service, From: from, To: to, Hourly: true, ServiceTotals: true})
}

// ServiceStats returns request statistics per service over [from, to), keyed by service name and
// sorted by it: the rollup-backed equivalent of store.Tenant.ServiceStats.
func ServiceStats(ctx context.Context, t *store.Tenant, from, to int64) ([]store.RequestStats, error) {
	rows, err := Load(ctx, t, store.RollupQuery{Kind: store.RollupRequests, From: from, To: to, Hourly: true, ServiceTotals: true})
	if err != nil {
		return nil, fmt.Errorf("service statistics: %w", err)
	}
	by, err := Group(rows, func(r *store.Rollup) string { return r.Service })
	if err != nil {
		return nil, err
	}
	return sorted(by, func(a, b string) bool { return a < b }, func(k string) string { return k }), nil
}

// ServiceMetrics returns one service's totals, a time series of q.StepNS (rounded up to a minute;
// buckets are aligned to multiples of the step since the epoch, so hourly rollups serve steps of whole
// hours) and, with q.ByOperation, per-operation statistics: the rollup-backed equivalent of
// store.Tenant.ServiceMetrics.
func ServiceMetrics(ctx context.Context, t *store.Tenant, q store.MetricsQuery) (store.ServiceMetrics, error) {
	var m store.ServiceMetrics
	step := max(q.StepNS, store.Minute)
	if r := step % store.Minute; r != 0 {
		step += store.Minute - r
	}
	rows, err := Load(ctx, t, store.RollupQuery{Kind: store.RollupRequests, Service: q.Service, Name: q.Operation, From: q.From, To: q.To,
		Hourly: step%store.Hour == 0, ServiceTotals: !q.ByOperation})
	if err != nil {
		return m, fmt.Errorf("metrics of %s: %w", q.Service, err)
	}
	if len(rows) == 0 {
		return m, nil
	}
	var total Agg
	var scratch sketch.Histogram
	series := map[int64]*Agg{}
	ops := map[string]*Agg{}
	for i := range rows {
		r := &rows[i]
		b := r.BucketNS - mod(r.BucketNS, step)
		if series[b] == nil {
			series[b] = &Agg{}
		}
		aggs := []*Agg{&total, series[b]}
		if q.ByOperation {
			if ops[r.Name] == nil {
				ops[r.Name] = &Agg{}
			}
			aggs = append(aggs, ops[r.Name])
		}
		if err := addTo(r, &scratch, aggs...); err != nil {
			return m, err
		}
	}
	m.Total = total.Stats("all")
	m.Series = sorted(series, func(a, b int64) bool { return a < b }, func(k int64) string { return strconv.FormatInt(k, 10) })
	if q.ByOperation {
		m.Operations = sorted(ops, func(a, b string) bool { return a < b }, func(k string) string { return k })
	}
	return m, nil
}

// QueueLag returns how long the messages q.Service consumed waited on their queue (consumer start
// less producer end) over q's window: per consumer operation (Key; Requests counts messages) and
// per step (Key: the bucket start, as in ServiceMetrics). Both are empty for a service that consumes
// no messages.
func QueueLag(ctx context.Context, t *store.Tenant, q store.MetricsQuery) (ops, series []store.RequestStats, err error) {
	step := max(q.StepNS, store.Minute)
	if r := step % store.Minute; r != 0 {
		step += store.Minute - r
	}
	rows, err := Load(ctx, t, store.RollupQuery{Kind: store.RollupQueueLag, Service: q.Service, Name: q.Operation,
		From: q.From, To: q.To, Hourly: step%store.Hour == 0})
	if err != nil {
		return nil, nil, fmt.Errorf("queue lag of %s: %w", q.Service, err)
	}
	byOp, byBucket := map[string]*Agg{}, map[int64]*Agg{}
	var scratch sketch.Histogram
	for i := range rows {
		r := &rows[i]
		b := r.BucketNS - mod(r.BucketNS, step)
		if byOp[r.Name] == nil {
			byOp[r.Name] = &Agg{}
		}
		if byBucket[b] == nil {
			byBucket[b] = &Agg{}
		}
		if err := addTo(r, &scratch, byOp[r.Name], byBucket[b]); err != nil {
			return nil, nil, err
		}
	}
	ops = sorted(byOp, func(a, b string) bool { return a < b }, func(k string) string { return k })
	series = sorted(byBucket, func(a, b int64) bool { return a < b }, func(k int64) string { return strconv.FormatInt(k, 10) })
	return ops, series, nil
}

func sorted[K comparable](by map[K]*Agg, less func(a, b K) bool, str func(K) string) []store.RequestStats {
	keys := make([]K, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return less(keys[i], keys[j]) })
	out := make([]store.RequestStats, 0, len(keys))
	for _, k := range keys {
		if by[k].N > 0 {
			out = append(out, by[k].Stats(str(k)))
		}
	}
	return out
}

// Human writes a duration of whole minutes as people do: 10m, 1h, 1h30m.
func Human(d time.Duration) string {
	h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
	switch {
	case d%time.Minute != 0:
		return d.String()
	case m == 0:
		return strconv.Itoa(h) + "h"
	case h == 0:
		return strconv.Itoa(m) + "m"
	}
	return strconv.Itoa(h) + "h" + strconv.Itoa(m) + "m"
}
