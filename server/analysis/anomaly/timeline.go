package anomaly

import (
	"context"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

// timeline holds a tenant's rollups for one detection run: per service, whole-hour aggregates for
// baselines and the minute rows of the recent part where windows are evaluated.
type timeline struct {
	services map[string]*serviceData
	// requests of all services per minute and per hour, for throughput shares
	totals, hourTotals map[int64]int64
}

type serviceData struct {
	name  string
	hours map[int64]*hourData
	mins  map[int64]*minuteData
}

type hourData struct {
	req, llm metrics.Agg
	ops      map[string]*metrics.Agg // requests per operation, for route-level baselines
}

type minuteData struct{ req, llm []*store.Rollup }

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
	for _, kind := range []int16{store.RollupRequests, store.RollupLLM} {
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
			if r.Kind == store.RollupLLM {
				m.llm = append(m.llm, r)
			} else {
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
	if r.Kind == store.RollupLLM {
		return h.llm.Add(r)
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

// window sums a service's minute rows in [from, to), in total and per operation (requests) or model
// (LLM calls).
func (s *serviceData) window(from, to int64, llm bool) (metrics.Agg, map[string]*metrics.Agg, error) {
	var total metrics.Agg
	by := map[string]*metrics.Agg{}
	for m := from; m < to; m += store.Minute {
		d := s.mins[m]
		if d == nil {
			continue
		}
		rows := d.req
		if llm {
			rows = d.llm
		}
		for _, r := range rows {
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
	return total, by, nil
}

// minute sums one minute's rows.
func (s *serviceData) minute(m int64, llm bool) (metrics.Agg, error) {
	return s.minuteOf(m, llm, "")
}

// minuteOf sums one minute's rows of operation op, or of all operations when op is "".
func (s *serviceData) minuteOf(m int64, llm bool, op string) (metrics.Agg, error) {
	var a metrics.Agg
	d := s.mins[m]
	if d == nil {
		return a, nil
	}
	rows := d.req
	if llm {
		rows = d.llm
	}
	for _, r := range rows {
		if op != "" && r.Name != op {
			continue
		}
		if err := a.Add(r); err != nil {
			return a, err
		}
	}
	return a, nil
}

// minutes sums one minute of a series: the service's requests or LLM calls, or one route's requests.
type minutes func(m int64) (metrics.Agg, error)

func (s *serviceData) series(llm bool, op string) minutes {
	return func(m int64) (metrics.Agg, error) { return s.minuteOf(m, llm, op) }
}
