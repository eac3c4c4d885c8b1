package rca

import (
	"context"
	"slices"
	"sort"
	"strings"

	"github.com/tracekit/tracekit/server/analysis/tracetree"
	"github.com/tracekit/tracekit/server/store"
)

// samples are what a trace-based ranker compares: requests of the anomalous service from the
// anomaly's window (bad) and from the baseline (good).
type samples struct {
	all, bad, good []*request
	// goodWeight is what each baseline request counts for when the bad requests were selected
	// (slow or failed ones); nil means each counts the same.
	goodWeight map[*request]float64
}

// sample loads the requests matching bad in the anomaly's window and any requests in the
// baseline, of bad.Operation alone when set (an anomaly of one route), and notes how many were
// compared. ok is false when either side has none.
func (an *analysis) sample(ctx context.Context, bad store.SampleQuery) (s samples, ok bool, err error) {
	svc := an.a.Service
	bad.Service, bad.From, bad.To, bad.Slices, bad.PerSlice = svc, an.r.FromNS, an.r.ToNS, sampleSlices, samplePerSlice
	good := store.SampleQuery{Service: svc, Operation: bad.Operation, From: an.r.BaselineFromNS, To: an.r.BaselineToNS,
		Slices: sampleSlices, PerSlice: samplePerSlice}
	if s.all, err = loadRequests(ctx, an.t, bad, good); err != nil {
		return s, false, err
	}
	for _, r := range s.all {
		if r.bad {
			s.bad = append(s.bad, r)
		} else {
			s.good = append(s.good, r)
		}
	}
	an.note(len(s.bad), len(s.good))
	if bad.MinDurationNS > 0 || bad.ErrorsOnly {
		s.goodWeight = matchedWeights(s.bad, s.good)
	}
	return s, len(s.bad) > 0 && len(s.good) > 0, nil
}

// minMatches is how many baseline requests a stratum needs to stand for the bad requests in it.
const minMatches = 3

// matchedWeights weights the baseline so that it has the bad sample's mix of request shapes. Slow
// (or failed) requests are a selection: a route or call that is always slow (an LLM call in 10 % of
// requests) makes up a larger share of the slow requests than of all requests without anything
// having changed, and compared with all baseline requests it would look like the cause. Each bad
// request is matched to the baseline requests of its shape (the entry operation and the set of
// operations under it), or, with fewer than minMatches of them, of its entry operation, or else to
// the whole baseline; its weight is shared among them. So a cause is what differs between a bad
// request and earlier requests of the same kind.
func matchedWeights(bad, good []*request) map[*request]float64 {
	type stratum struct{ level, key string }
	strata := func(r *request) [3]stratum {
		return [3]stratum{{"shape", shape(r.entry)}, {"route", r.entry.Span.Operation}, {"all", ""}}
	}
	members := map[stratum][]*request{}
	for _, r := range good {
		for _, st := range strata(r) {
			members[st] = append(members[st], r)
		}
	}
	w := make(map[*request]float64, len(good))
	for _, r := range bad {
		for _, st := range strata(r) {
			if m := members[st]; len(m) >= minMatches || st.level == "all" && len(m) > 0 {
				for _, g := range m {
					w[g] += 1 / float64(len(bad)) / float64(len(m))
				}
				break
			}
		}
	}
	return w
}

// shape identifies requests that do the same kind of work: the entry operation and the distinct
// service operations in its subtree, whatever their number or timing.
func shape(entry *node) string {
	ops := map[string]bool{}
	tracetree.Walk(entry, func(n *node) { ops[n.Span.Service+"\x00"+n.Span.Operation] = true })
	list := make([]string, 0, len(ops))
	for op := range ops {
		list = append(list, op)
	}
	slices.Sort(list)
	return entry.Span.Operation + "\x01" + strings.Join(list, "\x01")
}

// note records how many anomalous and baseline requests (or calls) an analysis compared.
func (an *analysis) note(bad, good int) {
	an.r.Anomalous = max(an.r.Anomalous, bad)
	an.r.Baseline = max(an.r.Baseline, good)
}

// weight is what one request counts for, so that each side's requests add up to 1.
func (s samples) weight(r *request) float64 {
	switch {
	case r.bad:
		return 1 / float64(len(s.bad))
	case s.goodWeight != nil:
		return s.goodWeight[r]
	}
	return 1 / float64(len(s.good))
}

// evidence is how much the bad and the good requests show of one candidate cause, each side
// averaged over its requests.
type evidence struct {
	bad, good float64
	traces    map[string]float64 // traces of bad requests, by how much they show it
}

// tally collects the evidence of each candidate.
type tally[K comparable] map[K]*evidence

// add counts v for candidate k in request r; a trace's weight as an example is the sum of what
// its requests count (critical-path time).
func (t tally[K]) add(s samples, k K, r *request, v float64) {
	if e := t.count(s, k, r, v); r.bad {
		e.traces[r.traceID] += v
	}
}

// set counts v for candidate k in request r; a trace's weight as an example is v, the same for all
// its requests (calls per trace, or 1 for "it shows").
func (t tally[K]) set(s samples, k K, r *request, v float64) {
	if e := t.count(s, k, r, v); r.bad {
		e.traces[r.traceID] = v
	}
}

func (t tally[K]) count(s samples, k K, r *request, v float64) *evidence {
	e := t[k]
	if e == nil {
		e = &evidence{traces: map[string]float64{}}
		t[k] = e
	}
	if r.bad {
		e.bad += v * s.weight(r)
	} else {
		e.good += v * s.weight(r)
	}
	return e
}

// get returns k's evidence, none when it was never counted.
func (t tally[K]) get(k K) evidence {
	if e := t[k]; e != nil {
		return *e
	}
	return evidence{}
}

// byBad returns the candidates, those the bad requests show most first.
func (t tally[K]) byBad() []K {
	keys := make([]K, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return t[keys[i]].bad > t[keys[j]].bad })
	return keys
}
