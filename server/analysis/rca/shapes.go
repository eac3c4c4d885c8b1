package rca

import (
	"fmt"
	"math"

	"github.com/tracekit/tracekit/server/analysis/tracetree"
)

// Causes that read like the incident rather than like its symptoms: a failing dependency whose
// fallback takes over, and a service whose own code got slower everywhere at once.

// fallbacks finds, among the calls under the sampled requests, a kind of call that now fails most of
// the time and another kind, made by the same service, whose calls per request jumped: a cache
// outage sends every read to the database. shares are the units' shares of the added latency; the
// cause explains both units' parts, so it ranks above either alone.

func fallbacks(s samples, shares map[unit]float64) []Cause {
	calls, failed := tally[unit]{}, tally[unit]{}
	for _, r := range s.all {
		perReq, failures := map[unit]float64{}, map[unit]float64{}
		tracetree.Walk(r.entry, func(n *node) {
			u := unitOf(n)
			if u.kind == KindOperation || n == r.entry {
				return
			}
			perReq[u]++
			if n.Span.Failed() {
				failures[u]++
			}
		})
		for u, v := range perReq {
			calls.set(s, u, r, v)
			failed.set(s, u, r, failures[u])
		}
	}
	var out []Cause
	for x, xc := range calls {
		fx := failed.get(x)
		rateBad, rateGood := fx.bad/math.Max(xc.bad, 1e-9), fx.good/math.Max(xc.good, 1e-9)
		if rateBad < 0.5 || rateBad-rateGood < 0.4 {
			continue
		}
		var best unit
		jump := 0.0
		for f, fc := range calls {
			if f == x || f.service != x.service || fc.bad < 2*fc.good || fc.bad-fc.good < 1 {
				continue
			}
			if d := fc.bad - fc.good; d > jump || d == jump && f.value < best.value {
				best, jump = f, d
			}
		}
		if jump == 0 {
			continue
		}
		fc := calls.get(best)
		c := Cause{Kind: KindFallback, Service: x.service, Operation: x.operation, Attribute: x.attribute, Value: x.value,
			Confidence: math.Max(0.5, symptom*math.Min(shares[x]+shares[best], 1)+0.04), TraceIDs: examples(fx.traces),
			Figures: []Figure{{Name: "failed share of its calls", Baseline: rateGood, Anomalous: rateBad},
				{Name: "fallback calls per request", Baseline: fc.good, Anomalous: fc.bad}}}
		c.Description = fmt.Sprintf("%s fails (%s of calls, %s before) and %s takes over: %.1f calls per request instead of %.1f.",
			describeCall(x), pct(rateBad), pct(rateGood), describeCall(best), fc.bad, fc.good)
		out = append(out, c)
	}
	return out
}

func describeCall(u unit) string {
	switch u.kind {
	case KindDBStatement:
		return fmt.Sprintf("%s's database call `%s`", u.service, short(u.value, 80))
	case KindLLMModel:
		return fmt.Sprintf("%s's call to model %s", u.service, u.value)
	case KindDependency:
		return fmt.Sprintf("%s's calls to %s", u.service, u.value)
	}
	return fmt.Sprintf("%s %q", u.service, u.operation)
}

// uniformSlowdown finds a service all of whose own operations on the critical path got slower by a
// similar factor while none of its calls did: saturated CPU, memory pressure or a throttled
// container, not one code path. ownShare is each service's share of the added latency in its own
// code, depShare in its calls.
func uniformSlowdown(units tally[unit], ownShare, depShare map[string]float64) []Cause {
	type span struct{ lo, hi, good, bad float64 }
	ratios := map[string]*span{}
	ops := map[string]int{}
	for u, a := range units {
		if u.kind != KindOperation || a.good < 0.5e6 { // too little own time to compare
			continue
		}
		r := a.bad / a.good
		sp := ratios[u.service]
		if sp == nil {
			sp = &span{lo: r, hi: r}
			ratios[u.service] = sp
		}
		sp.lo, sp.hi, sp.good, sp.bad = math.Min(sp.lo, r), math.Max(sp.hi, r), sp.good+a.good, sp.bad+a.bad
		ops[u.service]++
	}
	var out []Cause
	for svc, sp := range ratios {
		if ops[svc] < 2 || sp.lo < 1.5 || sp.hi > 2*sp.lo || ownShare[svc] < 0.3 || depShare[svc] > 0.1 {
			continue
		}
		c := Cause{Kind: KindSelfTime, Service: svc, Confidence: symptom*math.Min(ownShare[svc], 1) + 0.03,
			Figures: []Figure{{Name: "own time on the critical path per request", Baseline: sp.good / 1e6, Anomalous: sp.bad / 1e6, Unit: "ms"}}}
		c.Description = fmt.Sprintf("all of %s's own code is slower (%d operations, ×%.1f to ×%.1f) and none of its calls: the service itself is starved (CPU, memory, throttling), %s of the added latency.",
			svc, ops[svc], sp.lo, sp.hi, pct(math.Min(ownShare[svc], 1)))
		out = append(out, c)
	}
	return out
}
