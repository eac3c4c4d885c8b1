// Package anomaly finds deviations of service metrics from their baselines in the metric rollups:
// latency (slow-request counts against the baseline p95), error rate, throughput share and LLM cost
// and tokens per call. Windows of a few minutes are tested against whole hours of history outside
// earlier anomalies; deviations of one service that overlap in time are one anomaly, stored with its
// start, end and severity.
package anomaly

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// Job is the name under which detection ticks are claimed.
const Job = "anomalies"

// Result says what one detection tick did.
type Result struct {
	Ran     bool    // false when another replica had the tick
	Windows int     // windows evaluated
	Changed []int64 // anomalies created or updated
	// Skipped are the services whose windows could not be evaluated this tick; the others were.
	Skipped []store.Skipped
}

// details is what the detector keeps in anomalies.details.
type details struct {
	WindowNS int64                   `json:"window_ns"`
	Metrics  map[string]*metricState `json:"metrics"`
}

type metricState struct {
	finding
	FirstSeenNS int64 `json:"first_seen_ns"`
	LastSeenNS  int64 `json:"last_seen_ns"`
	// DetectedNS is the end of the first window that showed the deviation: the detection delay is
	// DetectedNS (plus Config.Lag) less the onset.
	DetectedNS int64 `json:"detected_ns,omitempty"`
}

// Details are the per-metric figures of an anomaly, as root-cause analysis reads them.
type Details struct {
	Metric      string  `json:"metric"`
	Operation   string  `json:"operation"`
	Baseline    float64 `json:"baseline"`
	Observed    float64 `json:"observed"`
	ThresholdNS int64   `json:"threshold_ns"`
	Route       bool    `json:"route"` // about Operation's requests alone
	FirstSeenNS int64   `json:"first_seen_ns"`
	LastSeenNS  int64   `json:"last_seen_ns"`
	DetectedNS  int64   `json:"detected_ns"`
}

// ParseDetails reads the per-metric figures the detector stored with an anomaly.
func ParseDetails(b []byte) (map[string]Details, error) {
	var d details
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("anomaly details: %w", err)
	}
	out := map[string]Details{}
	for name, m := range d.Metrics {
		out[name] = Details{Metric: name, Operation: m.Operation, Baseline: m.Baseline, Observed: m.Observed,
			ThresholdNS: m.ThresholdNS, Route: m.Route, FirstSeenNS: m.FirstSeenNS, LastSeenNS: m.LastSeenNS, DetectedNS: m.DetectedNS}
	}
	return out, nil
}

type episode struct {
	rec     store.AnomalyRecord
	d       details
	changed bool
}

func (e *episode) open() bool { return e.rec.EndedNS == 0 }

// overlaps reports whether the episode covers part of [from, to); an open one extends to the future.
func (e *episode) overlaps(from, to int64) bool {
	end := e.rec.EndedNS
	if e.open() {
		end = 1<<63 - 1
	}
	return e.rec.StartedNS < to && end > from
}

// detector is one run over a timeline.
type detector struct {
	cfg      Config
	tl       *timeline
	episodes map[string][]*episode // by service, oldest first
	// baselines cached per service for the hour they end at; version counts episode changes that
	// alter which hours are excluded.
	cache   map[string]cachedBaseline
	version map[string]int
}

type cachedBaseline struct {
	end     int64
	version int
	b       *baseline
}

// Detect runs one detection tick for tenant t at now: it claims the tick, evaluates every window
// that ended since the last run (a first run backfills up to MaxBackfill), and commits new and
// changed anomalies only if no later tick was claimed meanwhile.
func Detect(ctx context.Context, t *store.Tenant, now time.Time, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	// Ticks are claimed every minute, so a backlog (a first run, or data loaded from the past) is
	// worked off soon; windows still end every Step.
	tick := now.Add(-cfg.Lag).Truncate(time.Minute).UnixNano()
	claimed, err := t.ClaimTick(ctx, Job, tick)
	if err != nil || !claimed {
		return Result{}, err
	}
	res := Result{Ran: true}
	p, err := cfg.plan(ctx, t, tick)
	if err != nil {
		return res, err
	}
	if p.idle {
		_, err := t.CommitTick(ctx, Job, tick, p.progress, func(*store.TickTx) error { return nil })
		return res, err
	}
	d, err := cfg.load(ctx, t, p)
	if err != nil {
		return res, err
	}
	res.Windows, res.Skipped = d.evaluateAll(p)
	d.endSilent(p.limit)
	current, err := t.CommitTick(ctx, Job, tick, p.limit, func(tx *store.TickTx) error {
		res.Changed, err = d.save(tx)
		return err
	})
	if err != nil || !current {
		return Result{Ran: false}, err
	}
	return res, nil
}

// plan is the windows a tick evaluates: those ending every Step from firstEnd up to limit.
type plan struct {
	progress        int64 // where the last tick stopped
	firstEnd, limit int64
	idle            bool // no data, or none past the last tick's progress
}

// plan picks the windows the data has moved past since the last tick: loading a day of history
// (the demo) is then analysed as it arrives rather than skipped as empty.
func (c Config) plan(ctx context.Context, t *store.Tenant, tick int64) (plan, error) {
	step, window := int64(c.Step), int64(c.Window)
	st, err := t.JobState(ctx, Job)
	if err != nil {
		return plan{}, err
	}
	first, err := t.FirstRollup(ctx)
	if err != nil {
		return plan{}, err
	}
	newest, err := t.LastRollup(ctx)
	if err != nil {
		return plan{}, err
	}
	p := plan{progress: st.ProgressNS, limit: min(tick, newest-int64(c.Lag))}
	p.limit -= p.limit % step
	last := st.ProgressNS
	if last == 0 && first != 0 {
		start := max(first+window+minBaselineHours*store.Hour, tick-int64(c.MaxBackfill))
		start += (step - start%step) % step
		last = start - step
	}
	last = max(last, tick-int64(c.MaxBackfill))
	p.firstEnd, p.idle = last+step, first == 0 || last >= p.limit
	return p, nil
}

// load reads the timeline the planned windows and their baselines need, and the anomalies already
// recorded over it.
func (c Config) load(ctx context.Context, t *store.Tenant, p plan) (*detector, error) {
	window := int64(c.Window)
	from := p.firstEnd - window - int64(c.Baseline)
	from -= from % store.Hour
	split := p.firstEnd - window
	split -= split % store.Hour
	tl, err := loadTimeline(ctx, t, from, split, p.limit)
	if err != nil {
		return nil, err
	}
	recs, err := t.AnomalyRecords(ctx, from)
	if err != nil {
		return nil, err
	}
	d := &detector{cfg: c, tl: tl, episodes: map[string][]*episode{}, cache: map[string]cachedBaseline{}, version: map[string]int{}}
	for _, r := range recs {
		e := &episode{rec: r}
		if err := json.Unmarshal(r.Details, &e.d); err != nil || e.d.Metrics == nil {
			e.d = details{WindowNS: window, Metrics: map[string]*metricState{}}
		}
		d.episodes[r.Service] = append(d.episodes[r.Service], e)
	}
	return d, nil
}

// evaluateAll evaluates every planned window of every service and returns the number of windows. A
// service whose data cannot be evaluated is passed over for the rest of the tick (and returned), so
// it never holds up the detection of the others.
func (d *detector) evaluateAll(p plan) (int, []store.Skipped) {
	step, window := int64(d.cfg.Step), int64(d.cfg.Window)
	names := make([]string, 0, len(d.tl.services))
	for name := range d.tl.services {
		names = append(names, name)
	}
	sort.Strings(names)
	windows := 0
	var skipped []store.Skipped
	failed := map[string]bool{}
	for end := p.firstEnd; end <= p.limit; end += step {
		for _, name := range names {
			if failed[name] {
				continue
			}
			if err := d.evaluate(d.tl.services[name], end-window, end); err != nil {
				failed[name] = true
				skipped = append(skipped, store.Skipped{Key: fmt.Sprintf("service %q at %s", name, time.Unix(0, end).UTC().Format(time.RFC3339)), Err: err})
			}
		}
		windows++
	}
	return windows, skipped
}

// endSilent ends the open anomaly of a service that stopped sending: it has no windows left to end it.
func (d *detector) endSilent(limit int64) {
	for name, eps := range d.episodes {
		if e := eps[len(eps)-1]; d.tl.services[name] == nil && e.open() && limit-e.rec.LastSeenNS >= 2*int64(d.cfg.Window) {
			e.rec.EndedNS, e.changed = e.rec.LastSeenNS, true
		}
	}
}

// save stores the new and changed anomalies and returns their ids.
func (d *detector) save(tx *store.TickTx) ([]int64, error) {
	var ids []int64
	for _, eps := range d.episodes {
		for _, e := range eps {
			if !e.changed {
				continue
			}
			e.rec.Details, _ = json.Marshal(e.d)
			id, err := tx.SaveAnomaly(e.rec)
			if err != nil {
				return nil, err
			}
			e.rec.ID = id
			ids = append(ids, id)
		}
	}
	return ids, nil
}

// baseline sums the whole hours of the Baseline before ws that overlap no anomaly of the service.
func (d *detector) baseline(s *serviceData, ws int64) *baseline {
	end := ws - ws%store.Hour
	if c, ok := d.cache[s.name]; ok && c.end == end && c.version == d.version[s.name] {
		return c.b
	}
	b := &baseline{}
	for h := end - store.Hour; h >= ws-int64(d.cfg.Baseline); h -= store.Hour {
		hd := s.hours[h]
		if hd == nil || hd.req.N+hd.llm.N == 0 || d.anomalous(s.name, h, h+store.Hour) {
			continue
		}
		b.req.Merge(&hd.req)
		b.llm.Merge(&hd.llm)
		if hd.lag.N > 0 {
			b.lag.Merge(&hd.lag)
			b.lagHours++
		}
		for name, a := range hd.ops {
			if b.ops == nil {
				b.ops = map[string]*metrics.Agg{}
			}
			if b.ops[name] == nil {
				b.ops[name] = &metrics.Agg{}
			}
			b.ops[name].Merge(a)
		}
		b.others += d.tl.hourTotals[h] - hd.req.N
		if hd.req.N > 0 {
			b.hours++
		}
		if hd.llm.N >= minLLMCalls {
			n := float64(hd.llm.N)
			b.costPerCall = append(b.costPerCall, hd.llm.CostUSD/n)
			b.tokensPerCall = append(b.tokensPerCall, float64(hd.llm.InputTokens+hd.llm.OutputTokens)/n)
			b.llmCalls = append(b.llmCalls, n)
		}
		b.hourReq = append(b.hourReq, float64(hd.req.N))
		b.hourOthers = append(b.hourOthers, float64(d.tl.hourTotals[h]-hd.req.N))
	}
	d.cache[s.name] = cachedBaseline{end: end, version: d.version[s.name], b: b}
	return b
}

func (d *detector) anomalous(service string, from, to int64) bool {
	for _, e := range d.episodes[service] {
		if e.overlaps(from, to) {
			return true
		}
	}
	return false
}

// evaluate tests one service's window [ws, we) and folds what it finds into the service's episodes.
func (d *detector) evaluate(s *serviceData, ws, we int64) error {
	found, err := d.findings(s, ws, we)
	if err != nil {
		return err
	}
	d.fold(s.name, we, found)
	return nil
}

// recentPenalty divides the significance of the tests on a window's last Step alone: they double
// the tests per metric and window end (Bonferroni), keeping quiet days free of false anomalies.
const recentPenalty = 2

// windowTest is a test of one series over [ws, we) against a baseline.
type windowTest func(c Config, s minutes, b *baseline, win metrics.Agg, ops map[string]*metrics.Agg, ws, we int64) (finding, bool, error)

// shortOrLong runs a test on the window [ws, we) and, when that shows nothing, on its last Step
// alone (from recentFrom) at a stricter significance: the first window ending after an onset holds
// only Step minutes of the change, diluted by the window's earlier, normal minutes.
func (d *detector) shortOrLong(test windowTest, s *serviceData, kind int16, b *baseline, ws, recentFrom, we int64) (finding, bool, error) {
	series := s.series(kind, "")
	win, ops, err := s.window(ws, we, kind)
	if err != nil {
		return finding{}, false, err
	}
	if f, ok, err := test(d.cfg, series, b, win, ops, ws, we); err != nil || ok || recentFrom <= ws {
		return f, ok, err
	}
	if win, ops, err = s.window(recentFrom, we, kind); err != nil {
		return finding{}, false, err
	}
	c := d.cfg
	c.Significance /= recentPenalty
	return test(c, series, b, win, ops, recentFrom, we)
}

// findings runs every test on one service's window [ws, we).
func (d *detector) findings(s *serviceData, ws, we int64) ([]finding, error) {
	s.sums = map[windowKey]windowSum{}
	defer func() { s.sums = nil }()
	b := d.baseline(s, ws)
	_, ops, err := s.window(ws, we, store.RollupRequests)
	if err != nil {
		return nil, err
	}
	recentFrom := max(ws, we-int64(d.cfg.Step))
	var found []finding
	for _, t := range []struct {
		test windowTest
		kind int16
	}{{Config.detectLatency, store.RollupRequests}, {Config.detectErrors, store.RollupRequests}} {
		if f, ok, err := d.shortOrLong(t.test, s, t.kind, b, ws, recentFrom, we); err != nil {
			return nil, err
		} else if ok {
			found = append(found, f)
		}
	}
	skip := map[string]bool{}
	for _, f := range found {
		skip[f.Metric] = true
	}
	routes, err := d.cfg.detectRoutes(s, b, ops, ws, we, skip)
	if err != nil {
		return nil, err
	}
	found = append(found, routes...)
	if f, ok, err := d.throughput(d.cfg, s, b, ws, we); err != nil {
		return nil, err
	} else if ok {
		found = append(found, f)
	} else if recentFrom > ws {
		c := d.cfg
		c.Significance /= recentPenalty
		if f, ok, err := d.throughput(c, s, b, recentFrom, we); err != nil {
			return nil, err
		} else if ok {
			found = append(found, f)
		}
	}
	if f, ok, err := d.shortOrLong(Config.detectQueueLag, s, store.RollupQueueLag, b, ws, recentFrom, we); err != nil {
		return nil, err
	} else if ok {
		found = append(found, f)
	}
	llm, models, err := s.window(ws, we, store.RollupLLM)
	if err != nil {
		return nil, err
	}
	fs, err := d.cfg.detectLLM(s.series(store.RollupLLM, ""), b, llm, models, ws, we)
	return append(found, fs...), err
}

// throughput tests the service's share of all requests in [ws, we) at c's significance and places
// the change in it.
func (d *detector) throughput(c Config, s *serviceData, b *baseline, ws, we int64) (finding, bool, error) {
	req, ops, err := s.window(ws, we, store.RollupRequests)
	if err != nil {
		return finding{}, false, err
	}
	var others int64
	for m := ws; m < we; m += store.Minute {
		others += d.tl.totals[m]
	}
	length := time.Duration(we - ws)
	f, ok := c.detectThroughput(b, req, others-req.N, ops, length)
	if !ok {
		return f, false, nil
	}
	// Where in the window the share changed: minutes whose count exceeds the midpoint between
	// the expected and the observed share of the other services' requests.
	share := (f.Baseline + f.Observed) / 2 / (float64(others-req.N) / length.Minutes())
	var excess []float64
	for m := ws; m < we; m += store.Minute {
		a, err := s.minute(m)
		if err != nil {
			return f, false, err
		}
		excess = append(excess, float64(a.N)-share*float64(d.tl.totals[m]-a.N))
	}
	if f.Observed < f.Baseline {
		for i := range excess {
			excess[i] = -excess[i]
		}
	}
	first, last := changeSpan(excess)
	f.onset, f.last = ws+int64(first)*store.Minute, ws+int64(last)*store.Minute
	return f, true, nil
}

// fold adds a window's findings to the service's open episode (opening one, or reopening the last
// when they are about its minutes), or ends the open episode after a long enough run of clean
// windows.
func (d *detector) fold(service string, we int64, found []finding) {
	// A stale deviation is over (see Config.stale).
	fresh := found[:0:0]
	for _, f := range found {
		if !d.cfg.stale(f, we) {
			fresh = append(fresh, f)
		}
	}
	found = fresh
	var cur, prev *episode
	if eps := d.episodes[service]; len(eps) > 0 {
		prev = eps[len(eps)-1]
		if prev.open() {
			cur, prev = prev, nil
		}
	}
	if len(found) == 0 {
		// Two clean windows after the last deviant minute end the episode there; a shorter lull (a
		// few unlucky quiet minutes of a sparse service) keeps one incident one anomaly.
		if cur != nil && we-cur.rec.LastSeenNS >= 2*int64(d.cfg.Window) {
			cur.rec.EndedNS = cur.rec.LastSeenNS
			cur.changed = true
			d.version[service]++
		}
		return
	}
	if cur == nil {
		// Findings whose deviation began while the last episode was open are about its minutes.
		var prevEnd int64
		if prev != nil {
			prevEnd = prev.rec.EndedNS
		}
		onset := int64(math.MaxInt64)
		for _, f := range found {
			if f.onset >= prevEnd {
				onset = min(onset, f.onset)
			}
		}
		if onset == math.MaxInt64 {
			// Every one is (the route test's hour still sees that episode, or a sparse route's
			// deviation went unseen for two windows): the same incident goes on, so its anomaly
			// reopens rather than a second one starting inside it.
			cur = prev
			cur.rec.EndedNS = 0
		} else {
			// The anomaly starts where its first detection places the onset; later windows, the
			// route test's hour among them, do not move it back into earlier minutes.
			cur = &episode{rec: store.AnomalyRecord{Anomaly: store.Anomaly{Service: service, StartedNS: onset}},
				d: details{WindowNS: int64(d.cfg.Window), Metrics: map[string]*metricState{}}}
			d.episodes[service] = append(d.episodes[service], cur)
		}
		d.version[service]++
	}
	for _, f := range found {
		cur.rec.LastSeenNS = max(cur.rec.LastSeenNS, f.last)
		m := cur.d.Metrics[f.Metric]
		if m == nil {
			cur.d.Metrics[f.Metric] = &metricState{finding: f, FirstSeenNS: f.onset, LastSeenNS: f.last, DetectedNS: we}
			continue
		}
		// Report the peak: the most severe window's figures; the whole service's over one route's.
		m.LastSeenNS = max(m.LastSeenNS, f.last)
		switch {
		case m.Route && !f.Route:
			m.finding = f
		case f.Route && !m.Route:
		case f.Route && (f.Severity > m.Severity || f.Severity == m.Severity && f.Score > m.Score):
			m.finding = f // another route's threshold comes with it
		case f.Severity > m.Severity || f.Severity == m.Severity && f.Score > m.Score:
			m.Severity, m.Score, m.Baseline, m.Observed, m.Operation = f.Severity, f.Score, f.Baseline, f.Observed, f.Operation
		}
	}
	cur.summarise()
	cur.changed = true
}

// summarise sets the row's headline fields from its most severe metric and writes the summary.
func (e *episode) summarise() {
	names := make([]string, 0, len(e.d.Metrics))
	for n := range e.d.Metrics {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool {
		a, b := e.d.Metrics[names[i]], e.d.Metrics[names[j]]
		if a.Severity != b.Severity {
			return a.Severity > b.Severity
		}
		return a.Score > b.Score
	})
	top := e.d.Metrics[names[0]]
	e.rec.Metric, e.rec.Operation = names[0], top.Operation
	e.rec.Baseline, e.rec.Observed, e.rec.Score = top.Baseline, top.Observed, top.Score
	e.rec.Severity = store.Severities[top.Severity]
	var parts []string
	for i, n := range names {
		s := describe(n, e.d.Metrics[n], metrics.Human(time.Duration(e.d.WindowNS)))
		if i > 0 {
			s = "also " + s
		}
		parts = append(parts, s)
	}
	e.rec.Summary = e.rec.Service + ": " + strings.Join(parts, "; ") + "."
}

func describe(metric string, m *metricState, window string) string {
	ratio := func(a, b float64) string {
		if b <= 0 {
			return ""
		}
		return fmt.Sprintf(" (%.1f×)", a/b)
	}
	where := ""
	if m.Operation != "" {
		where = ", mostly " + m.Operation
	}
	if m.Route {
		where = " on " + m.Operation + " (that route alone)"
	}
	switch metric {
	case LatencyP95:
		return fmt.Sprintf("p95 latency %s against %s normally%s%s", ms(m.Observed), ms(m.Baseline), ratio(m.Observed, m.Baseline), where)
	case ErrorRate:
		return fmt.Sprintf("error rate %.1f%% against %.1f%% normally%s", 100*m.Observed, 100*m.Baseline, where)
	case Throughput:
		return fmt.Sprintf("throughput %.1f/min where %.1f/min is usual%s", m.Observed, m.Baseline, where)
	case LLMCost:
		return fmt.Sprintf("LLM spend $%.2f per %s where $%.2f is usual for as many calls%s%s", m.Observed,
			window, m.Baseline, ratio(m.Observed, m.Baseline), where)
	case LLMTokens:
		return fmt.Sprintf("LLM tokens %.0f per %s where %.0f are usual for as many calls%s%s", m.Observed, window,
			m.Baseline, ratio(m.Observed, m.Baseline), where)
	case QueueLag:
		return fmt.Sprintf("p95 queue lag %s against %s normally%s%s: messages wait that long before it consumes them",
			ms(m.Observed), ms(m.Baseline), ratio(m.Observed, m.Baseline), where)
	}
	return metric
}

func ms(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.0f ms", v)
}
