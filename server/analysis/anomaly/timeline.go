package anomaly

import (
	"context"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// timeline holds a tenant's rollups for one detection run: per service, whole-hour aggregates for
// baselines and the minute rows of the recent part where windows are evaluated. Series are requests,
// LLM calls and queue lags (store.Rollup* kinds).
type timeline struct {
	services map[string]*serviceData
	// requests of all services per minute and per hour, for throughput shares
	totals, hourTotals map[int64]int64
}

type serviceData struct {
	name  string
	hours map[int64]*hourData
	mins  map[int64]*minuteData
	// sums of the windows one evaluation has read: its tests share windows (the whole window, its
	// last Step); reset by each evaluation
	sums map[windowKey]windowSum
}

type windowKey struct {
	from, to int64
	kind     int16
}

type windowSum struct {
	total metrics.Agg
	by    map[string]*metrics.Agg
}

type hourData struct {
	req, llm, lag metrics.Agg
	ops           map[string]*metrics.Agg // requests per operation, for route-level baselines
}

type minuteData struct{ req, llm, lag []*store.Rollup }

// rows are the minute's rows of one kind of series.
func (d *minuteData) rows(kind int16) []*store.Rollup {
	switch kind {
	case store.RollupLLM:
		return d.llm
	case store.RollupQueueLag:
		return d.lag
	}
	return d.req
}

func (tl *timeline) service(name string) *serviceData {
	s := tl.services[name]
	if s == nil {
		s = &serviceData{name: name, hours: map[int64]*hourData{}, mins: map[int64]*minuteData{}}
		tl.services[name] = s
	}
	return s
}

func (s *serviceData) hour(h int64) *hourData {
	d := s.hours[h]
	if d == nil {
		d = &hourData{}
		s.hours[h] = d
	}
	return d
}

// loadTimeline reads [from, to): hourly rollups before split (whole hours, for baselines only) and
// minute rows from split on. from and split are whole hours.
func loadTimeline(ctx context.Context, t *store.Tenant, from, split, to int64) (*timeline, error) {
	tl := &timeline{services: map[string]*serviceData{}, totals: map[int64]int64{}, hourTotals: map[int64]int64{}}
	for _, kind := range []int16{store.RollupRequests, store.RollupLLM, store.RollupQueueLag} {
		if split > from {
			// Per operation, so that every route has a baseline of its own.
			rows, err := metrics.Load(ctx, t, store.RollupQuery{Kind: kind, From: from, To: split, Hourly: true})
			if err != nil {
				return nil, err
			}
			for i := range rows {
				if err := tl.addHourly(&rows[i]); err != nil {
					return nil, err
				}
			}
		}
		rows, err := metrics.Load(ctx, t, store.RollupQuery{Kind: kind, From: split, To: to})
		if err != nil {
			return nil, err
		}
		for i := range rows {
			r := &rows[i]
			s := tl.service(r.Service)
			m := s.mins[r.BucketNS]
			if m == nil {
				m = &minuteData{}
				s.mins[r.BucketNS] = m
			}
			switch r.Kind {
			case store.RollupLLM:
				m.llm = append(m.llm, r)
			case store.RollupQueueLag:
				m.lag = append(m.lag, r)
			default:
				m.req = append(m.req, r)
				tl.totals[r.BucketNS] += r.N
			}
			if err := tl.addHourly(r); err != nil {
				return nil, err
			}
		}
	}
	return tl, nil
}

func (tl *timeline) addHourly(r *store.Rollup) error {
	hour := r.BucketNS - r.BucketNS%store.Hour
	h := tl.service(r.Service).hour(hour)
	switch r.Kind {
	case store.RollupLLM:
		return h.llm.Add(r)
	case store.RollupQueueLag:
		return h.lag.Add(r)
	}
	tl.hourTotals[hour] += r.N
	if r.Name != "" {
		if h.ops == nil {
			h.ops = map[string]*metrics.Agg{}
		}
		a := h.ops[r.Name]
		if a == nil {
			a = &metrics.Agg{}
			h.ops[r.Name] = a
		}
		if err := a.Add(r); err != nil {
			return err
		}
	}
	return h.req.Add(r)
}

// window sums a service's minute rows of one kind in [from, to), in total and per operation
// (requests, queue lags) or model (LLM calls).
// The sums are shared: callers must not change them.
func (s *serviceData) window(from, to int64, kind int16) (metrics.Agg, map[string]*metrics.Agg, error) {
	key := windowKey{from, to, kind}
	if w, ok := s.sums[key]; ok {
		return w.total, w.by, nil
	}
	var total metrics.Agg
	by := map[string]*metrics.Agg{}
	for m := from; m < to; m += store.Minute {
		d := s.mins[m]
		if d == nil {
			continue
		}
		for _, r := range d.rows(kind) {
			if err := total.Add(r); err != nil {
				return total, nil, err
			}
			a := by[r.Name]
			if a == nil {
				a = &metrics.Agg{}
				by[r.Name] = a
			}
			if err := a.Add(r); err != nil {
				return total, nil, err
			}
		}
	}
	if s.sums != nil {
		s.sums[key] = windowSum{total, by}
	}
	return total, by, nil
}

// minute sums one minute's request rows.
func (s *serviceData) minute(m int64) (metrics.Agg, error) {
	return s.minuteOf(m, store.RollupRequests, "")
}

// minuteOf sums one minute's rows of a kind and of operation op, or of all operations when op is "".
func (s *serviceData) minuteOf(m int64, kind int16, op string) (metrics.Agg, error) {
	var a metrics.Agg
	d := s.mins[m]
	if d == nil {
		return a, nil
	}
	for _, r := range d.rows(kind) {
		if op != "" && r.Name != op {
			continue
		}
		if err := a.Add(r); err != nil {
			return a, err
		}
	}
	return a, nil
}

// minutes sums one minute of a series: the service's requests, LLM calls or queue lags, or one
// route's requests.
type minutes func(m int64) (metrics.Agg, error)

func (s *serviceData) series(kind int16, op string) minutes {
	return func(m int64) (metrics.Agg, error) { return s.minuteOf(m, kind, op) }
}
