package anomaly

import (
	"math"
	"sort"
	"time"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// Metrics an anomaly can be about (the anomalies.metric column).
const (
	LatencyP95 = "latency_p95_ms"   // baseline and observed: p95 in milliseconds
	ErrorRate  = "error_rate"       // failed share of requests
	Throughput = "throughput_rpm"   // requests per minute
	LLMCost    = "llm_cost_usd"     // spend in the window; baseline: the same calls at the usual cost per call
	LLMTokens  = "llm_tokens"       // tokens in the window; baseline: the same calls at the usual tokens per call
	QueueLag   = "queue_lag_p95_ms" // how long messages waited before the service consumed them: p95 in ms
)

// Config tunes detection; zero values take the defaults.
type Config struct {
	Window   time.Duration // evaluated window, default 15m
	Step     time.Duration // a window ends every Step, default 5m
	Baseline time.Duration // history baselines are drawn from, default 24h
	// Lag is how long after a window ends it is evaluated, so that spans exported late are in.
	Lag time.Duration // default 2m
	// MaxBackfill bounds how far back the first run reaches.
	MaxBackfill time.Duration // default 48h
	// Significance is the tail probability below which a count deviates: with thousands of tests a
	// day (services × metrics × windows) it must be tiny to keep false alarms under one a day.
	Significance float64 // default 1e-7
}

func (c Config) withDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Window, 15*time.Minute)
	def(&c.Step, 5*time.Minute)
	def(&c.Baseline, 24*time.Hour)
	def(&c.Lag, 2*time.Minute)
	def(&c.MaxBackfill, 48*time.Hour)
	if c.Significance == 0 {
		c.Significance = 1e-7
	}
	return c
}

// Minimum evidence before a baseline or a window is judged.
const (
	minBaselineRequests = 100
	minBaselineHours    = 2
	minBad              = 3 // slow or failed requests in a window
	minLLMCalls         = 5
	minLLMHours         = 4 // hours with at least minLLMCalls calls
)

// finding is one metric of one service deviating in one window.
type finding struct {
	Metric    string  `json:"metric"`
	Operation string  `json:"operation,omitempty"` // the operation (or model) contributing most
	Baseline  float64 `json:"baseline"`
	Observed  float64 `json:"observed"`
	Score     float64 `json:"score"` // -log10 of the tail probability, or a robust z-score
	Severity  int     `json:"severity"`
	// Route says the finding is about Operation alone: one route changed while the service's
	// figures, where it is diluted, did not.
	Route bool `json:"route,omitempty"`
	// ThresholdNS is, for latency, the baseline p95 that "slow" requests exceed; root-cause analysis
	// compares traces on either side of it.
	ThresholdNS int64 `json:"threshold_ns,omitempty"`
	// first and last minute of the window that show the deviation
	onset, last int64
	// count reads a minute's (or window's) bad and all requests, bad meaning slow or failed as
	// the test counts them, and p0 is the baseline's share of bad ones: enough to test any slice
	// of the window again (latency and error findings only).
	count func(metrics.Agg) (bad, total int64)
	p0    float64
}

// deviates says a's requests hold more bad ones than the finding's baseline allows at the lenient
// freshSignificance: too weak to raise an anomaly, enough to say the deviation is there.
func (f finding) deviates(a metrics.Agg) bool {
	bad, total := f.count(a)
	return bad > 0 && binomialUpper(bad, total, f.p0) < freshSignificance
}

// freshSignificance is the level at which a few minutes count as still (or already) deviant.
const freshSignificance = 0.01

// baseline is a service's normal behaviour: whole hours of history outside known anomalies.
type baseline struct {
	req, llm metrics.Agg
	hours    int
	lag      metrics.Agg // queue lags of the messages the service consumed
	lagHours int
	others   int64 // requests of every other service in the same hours
	// per hour with enough LLM calls: cost and tokens per call, and the number of calls
	costPerCall, tokensPerCall, llmCalls []float64
	// per hour: the service's requests and every other service's, for the spread of its share
	hourReq, hourOthers []float64
	ops                 map[string]*metrics.Agg // requests per operation
}

func severityOf(ratio float64, levels [3]float64) int {
	s := 0
	for i, l := range levels {
		if ratio >= l {
			s = i + 1
		}
	}
	return s
}

// detectLatency: are more of the window's requests slower than the baseline p95 than chance allows?
// Counting exceedances of a fixed threshold (a binomial test) stays sound for a handful of requests,
// where a window's own p95 would be noise. When that shows nothing, the same count above the
// baseline p99, at half the significance (Bonferroni for the second test): a quiet hour's few
// requests cannot pass the p95 test at the significance thousands of tests a day need (6 slow of 13:
// p = 1.6·10⁻⁵), but the same six slower than all but 1 % of the baseline can (1.6·10⁻⁹).
func (c Config) detectLatency(s minutes, b *baseline, win metrics.Agg, ops map[string]*metrics.Agg, ws, we int64) (finding, bool, error) {
	if b.req.N < minBaselineRequests || b.hours < minBaselineHours || win.N == 0 {
		return finding{}, false, nil
	}
	if f, ok, err := c.slowerThan(0.95, s, b, win, ops, ws, we); ok || err != nil || b.req.N < minTailRequests {
		return f, ok, err
	}
	c.Significance /= tailPenalty
	return c.slowerThan(0.99, s, b, win, ops, ws, we)
}

// minTailRequests is the baseline the p99 test needs: ten requests above the threshold, or its rate
// is a guess.
const minTailRequests = 1000

// tailPenalty divides the significance of the p99 test (see detectLatency).
const tailPenalty = 2

// slowerThan is detectLatency's test with "slow" meaning above the baseline's q-quantile.
func (c Config) slowerThan(q float64, s minutes, b *baseline, win metrics.Agg, ops map[string]*metrics.Agg, ws, we int64) (finding, bool, error) {
	tau := b.req.QuantileNS(q)
	p0 := math.Max(float64(b.req.Hist.CountAbove(tau))/float64(b.req.N), 0.01)
	k, n := int64(win.Hist.CountAbove(tau)), win.N
	pval := binomialUpper(k, n, p0)
	basP95, obsP95 := float64(b.req.QuantileNS(0.95))/1e6, float64(win.QuantileNS(0.95))/1e6
	if pval >= c.Significance || k < minBad || float64(k) < math.Max(3*p0, 0.15)*float64(n) || obsP95 < 1.5*basP95 {
		return finding{}, false, nil
	}
	f := finding{Metric: LatencyP95, Baseline: basP95, Observed: obsP95, Score: surprise(pval),
		Severity: severityOf(obsP95/basP95, [3]float64{2, 4, 10}), ThresholdNS: tau, p0: p0,
		count: func(a metrics.Agg) (int64, int64) { return int64(a.Hist.CountAbove(tau)), a.N }}
	best := math.Inf(-1)
	for name, a := range ops {
		if excess := float64(a.Hist.CountAbove(tau)) - float64(a.N)*p0; excess > best {
			best, f.Operation = excess, name
		}
	}
	var err error
	f.onset, f.last, err = deviantMinutes(s, ws, we, asFloat(f.count), (p0+float64(k)/float64(n))/2)
	return f, true, err
}

// minQueueLagMS is the p95 queue lag below which a consumer is not falling behind, however much
// its lag grew: milliseconds of waiting are noise of the broker and the poll loop.
const minQueueLagMS = 1000

// detectQueueLag: do more of the window's messages wait on the queue longer than the baseline's
// p95 lag than chance allows? The latency test on the queue-lag series: a consumer falling behind
// shows there first, while the time it spends on each message may not change at all.
func (c Config) detectQueueLag(s minutes, b *baseline, win metrics.Agg, ops map[string]*metrics.Agg, ws, we int64) (finding, bool, error) {
	f, ok, err := c.detectLatency(s, &baseline{req: b.lag, hours: b.lagHours}, win, ops, ws, we)
	if !ok || err != nil || f.Observed < minQueueLagMS {
		return finding{}, false, err
	}
	f.Metric = QueueLag
	return f, true, nil
}

// detectErrors: a binomial test of the window's failures against the baseline error rate.
func (c Config) detectErrors(s minutes, b *baseline, win metrics.Agg, ops map[string]*metrics.Agg, ws, we int64) (finding, bool, error) {
	if b.req.N < minBaselineRequests || b.hours < minBaselineHours || win.N == 0 {
		return finding{}, false, nil
	}
	// Smoothed, and floored: a service that never failed must not alarm at its first few errors.
	p0 := math.Max((float64(b.req.Errors)+1)/(float64(b.req.N)+2), 0.002)
	k, n := win.Errors, win.N
	rate := float64(k) / float64(n)
	pval := binomialUpper(k, n, p0)
	if pval >= c.Significance || k < minBad || rate < math.Max(3*p0, p0+0.05) {
		return finding{}, false, nil
	}
	f := finding{Metric: ErrorRate, Baseline: p0, Observed: rate, Score: surprise(pval),
		Severity: severityOf(rate, [3]float64{0.05, 0.2, 0.5}), p0: p0,
		count: func(a metrics.Agg) (int64, int64) { return a.Errors, a.N }}
	best := math.Inf(-1)
	for name, a := range ops {
		if excess := float64(a.Errors) - float64(a.N)*p0; excess > best {
			best, f.Operation = excess, name
		}
	}
	var err error
	f.onset, f.last, err = deviantMinutes(s, ws, we, asFloat(f.count), (p0+rate)/2)
	return f, true, err
}

// detectThroughput: did the service's share of all requests jump or collapse? A share, not a rate,
// so that the daily rhythm of traffic is not an anomaly; a retry storm or a lost caller is.
func (c Config) detectThroughput(b *baseline, win metrics.Agg, others int64, ops map[string]*metrics.Agg, window time.Duration) (finding, bool) {
	if b.req.N < minBaselineRequests || b.hours < minBaselineHours || b.others == 0 {
		return finding{}, false
	}
	share := float64(b.req.N) / float64(b.others)
	// Requests come in clusters (one page load calls a service several times), so counts vary more
	// than Poisson; measure by how much, from the hours of the baseline.
	var disp []float64
	for i, k := range b.hourReq {
		if e := share * b.hourOthers[i]; e >= 5 {
			disp = append(disp, (k-e)*(k-e)/e)
		}
	}
	phi := 1.0
	if len(disp) >= minBaselineHours {
		med, _ := medianMAD(disp)
		phi = math.Max(1, med/0.4549) // the median of chi-square with one degree of freedom
	}
	expected := share * float64(others)
	k := float64(win.N)
	perMin := func(x float64) float64 { return x / window.Minutes() }
	f := finding{Metric: Throughput, Baseline: perMin(expected), Observed: perMin(k)}
	z := (k - expected) / math.Sqrt(phi*math.Max(expected, 1))
	p := 0.5 * math.Erfc(math.Abs(z)/math.Sqrt2)
	switch {
	case p >= c.Significance:
		return finding{}, false
	case k >= 2*expected && k-expected >= 20:
		f.Severity = severityOf(k/math.Max(expected, 1), [3]float64{3, 5, 10})
	case k <= expected/4 && expected >= 20:
		f.Severity = severityOf(expected/math.Max(k, 1), [3]float64{8, 16, 50})
	default:
		return finding{}, false
	}
	f.Score = surprise(p)
	best := int64(-1)
	for name, a := range ops {
		if a.N > best {
			best, f.Operation = a.N, name
		}
	}
	return f, true
}

// detectLLM: cost and tokens per call against the hourly values of the baseline (median and MAD:
// robust to the odd expensive hour). Per call, so that the daily rhythm of traffic does not matter.
func (c Config) detectLLM(s minutes, b *baseline, win metrics.Agg, models map[string]*metrics.Agg, ws, we int64) ([]finding, error) {
	if win.N < minLLMCalls || len(b.costPerCall) < minLLMHours {
		return nil, nil
	}
	var out []finding
	for _, m := range []struct {
		metric string
		values []float64
		total  func(a metrics.Agg) float64
		levels [3]float64
		ratio  float64
	}{
		{LLMCost, b.costPerCall, func(a metrics.Agg) float64 { return a.CostUSD }, [3]float64{2, 4, 10}, 2},
		{LLMTokens, b.tokensPerCall, func(a metrics.Agg) float64 { return float64(a.InputTokens + a.OutputTokens) }, [3]float64{2, 4, 10}, 1.5},
	} {
		// Hourly means of n calls vary as sigma/sqrt(n); recover the per-call sigma from them so a
		// window of a few calls is judged by its own (larger) uncertainty.
		med, _ := medianMAD(m.values)
		if !(med > 0) {
			continue
		}
		scaled := make([]float64, len(m.values))
		for i, v := range m.values {
			scaled[i] = (v - med) * math.Sqrt(b.llmCalls[i])
		}
		_, mad := medianMAD(scaled)
		// Per-call usage is never steady: prompts vary, and one request mixes small calls (routing,
		// embeddings) with large ones, heavy-tailed in a way the hourly spread understates. A
		// per-call spread of at least the median keeps a quiet window of a few big calls from passing
		// for a change.
		sigma := math.Max(1.4826*mad, med)
		perCall := m.total(win) / float64(win.N)
		z := (perCall - med) * math.Sqrt(float64(win.N)) / sigma
		if z < 8 || perCall < m.ratio*med {
			continue
		}
		f := finding{Metric: m.metric, Baseline: med * float64(win.N), Observed: m.total(win), Score: z,
			Severity: severityOf(perCall/med, m.levels)}
		best := math.Inf(-1)
		for name, a := range models {
			if excess := m.total(*a) - med*float64(a.N); excess > best {
				best, f.Operation = excess, name
			}
		}
		var err error
		f.onset, f.last, err = deviantMinutes(s, ws, we, func(a metrics.Agg) (float64, float64) {
			return m.total(a), float64(a.N)
		}, (med+perCall)/2)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// deviantMinutes locates the change inside [ws, we): the start that maximises the excess of bad
// over expected in the rest of the window, and the end that maximises it before (a CUSUM estimate,
// robust to a single unlucky minute). bad and total count one minute; rate separates normal from
// deviant minutes.
func deviantMinutes(s minutes, ws, we int64, count func(metrics.Agg) (bad, total float64), rate float64) (int64, int64, error) {
	var excess []float64
	for m := ws; m < we; m += store.Minute {
		a, err := s(m)
		if err != nil {
			return 0, 0, err
		}
		bad, total := count(a)
		excess = append(excess, bad-rate*total)
	}
	first, last := changeSpan(excess)
	return ws + int64(first)*store.Minute, ws + int64(last)*store.Minute, nil
}

func asFloat(count func(metrics.Agg) (int64, int64)) func(metrics.Agg) (float64, float64) {
	return func(a metrics.Agg) (float64, float64) {
		bad, total := count(a)
		return float64(bad), float64(total)
	}
}

// changeSpan returns the start and end (exclusive) indexes that maximise the summed excess after
// the start and before the end.
func changeSpan(excess []float64) (int, int) {
	onset, best, sum := 0, math.Inf(-1), 0.0
	for i := len(excess) - 1; i >= 0; i-- {
		sum += excess[i]
		if sum > best {
			best, onset = sum, i
		}
	}
	end, best, sum := len(excess), math.Inf(-1), 0.0
	for i := range excess {
		sum += excess[i]
		if sum > best {
			best, end = sum, i+1
		}
	}
	return onset, end
}

// confirmRecent checks a finding of the route test's long window against the recent minutes and
// places its onset. The hour sees an incident for an hour after it ended, and a sparse route's stray
// slow request after it (or before it) stretches the change span over the empty minutes between:
// the finding stands only while the window's own minutes (recent, the route's [ws, we) sums) still
// deviate, and its onset moves to the first slice of step minutes that deviates on its own, starting
// with a bad minute, so that one stray request before the onset does not date the anomaly.
func confirmRecent(f *finding, series minutes, recent *metrics.Agg, step int64) (bool, error) {
	if recent == nil || !f.deviates(*recent) {
		return false, nil
	}
	for m := f.onset; m < f.last; m += store.Minute {
		first, err := series(m)
		if err != nil {
			return false, err
		}
		if bad, _ := f.count(first); bad == 0 {
			continue
		}
		var slice metrics.Agg
		for i := m; i < m+step; i += store.Minute {
			a, err := series(i)
			if err != nil {
				return false, err
			}
			slice.Merge(&a)
		}
		if f.deviates(slice) {
			f.onset = m
			break
		}
	}
	return true, nil
}

// stale says a finding's last deviant minute is two windows before we: the deviation is over. The
// route test's long window still sees it, but it must neither open an episode nor keep one open.
func (c Config) stale(f finding, we int64) bool { return we-f.last >= 2*int64(c.Window) }

// routeLongWindow is the longest window a route is tested over.
const routeLongWindow = int64(time.Hour)

// minRouteShare is the share of a service's baseline requests a route needs to be tested alone.
const minRouteShare = 0.05

// detectRoutes runs the latency and error tests on each route (entry operation) carrying at least
// minRouteShare of the service's requests, for the metrics the whole service did not deviate in
// (skip): a fault slowing or failing one route of ten is diluted in the service's figures. Each
// route is tested over the window; over its last Step alone, where a change that began minutes ago
// is not yet diluted by the window's earlier, normal minutes; and over the last routeLongWindow,
// where a route of a few requests an hour has enough of them to judge, as long as the window's own
// minutes still deviate (confirmRecent). The significance is divided by the number of tests
// (Bonferroni), so testing every route adds no false alarms. Of each metric it returns the most
// significant route.
func (c Config) detectRoutes(s *serviceData, b *baseline, ops map[string]*metrics.Agg, ws, we int64, skip map[string]bool) ([]finding, error) {
	var tested []string
	for name, base := range b.ops {
		if ops[name] != nil && base.N >= minBaselineRequests && float64(base.N) >= minRouteShare*float64(b.req.N) {
			tested = append(tested, name)
		}
	}
	if len(tested) < 2 {
		return nil, nil // one route is the whole service, already tested
	}
	sort.Strings(tested)
	recentFrom, longFrom := max(ws, we-int64(c.Step)), min(ws, we-routeLongWindow)
	_, recent, err := s.window(recentFrom, we, store.RollupRequests)
	if err != nil {
		return nil, err
	}
	_, long, err := s.window(longFrom, we, store.RollupRequests)
	if err != nil {
		return nil, err
	}
	rc := c
	rc.Significance = c.Significance / float64(3*len(tested))
	tests := map[string]func(minutes, *baseline, metrics.Agg, map[string]*metrics.Agg, int64, int64) (finding, bool, error){
		LatencyP95: rc.detectLatency, ErrorRate: rc.detectErrors,
	}
	best := map[string]finding{}
	for _, name := range tested {
		rb := &baseline{req: *b.ops[name], hours: b.hours}
		for _, w := range []struct {
			from int64
			win  *metrics.Agg
		}{{ws, ops[name]}, {recentFrom, recent[name]}, {longFrom, long[name]}} {
			if w.win == nil {
				continue
			}
			for metric, test := range tests {
				if skip[metric] {
					continue
				}
				series := s.series(store.RollupRequests, name)
				f, ok, err := test(series, rb, *w.win, map[string]*metrics.Agg{name: w.win}, w.from, we)
				if err != nil {
					return nil, err
				}
				if ok && w.from < ws {
					if ok, err = confirmRecent(&f, series, ops[name], int64(c.Step)); err != nil {
						return nil, err
					}
				}
				prev, seen := best[metric]
				// A stale finding of the long window must not hide a fresh one of another route.
				if ok && !c.stale(f, we) && (!seen || f.Score > prev.Score || f.Score == prev.Score && name < prev.Operation) {
					f.Route = true
					best[metric] = f
				}
			}
		}
	}
	var out []finding
	for _, m := range []string{LatencyP95, ErrorRate} {
		if f, ok := best[m]; ok {
			out = append(out, f)
		}
	}
	return out, nil
}
