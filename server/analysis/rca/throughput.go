package rca

import (
	"context"
	"fmt"
	"sort"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/tracetree"
	"github.com/tracekit/tracekit/server/store"
)

// throughput explains a surge (or drop) of requests by their callers: a caller whose requests
// each call the service several times is retrying; one whose share grew is sending more traffic.
func (an *analysis) throughput(ctx context.Context, d anomaly.Details) ([]Cause, error) {
	if d.Observed < d.Baseline {
		return nil, nil // a drop: the callers that vanished left no spans to compare
	}
	svc := an.a.Service
	reqs, err := loadRequests(ctx, an.t,
		store.SampleQuery{Service: svc, From: an.r.FromNS, To: an.r.ToNS, Slices: sampleSlices, PerSlice: samplePerSlice},
		store.SampleQuery{Service: svc, From: an.r.BaselineFromNS, To: an.r.BaselineToNS, Slices: sampleSlices, PerSlice: samplePerSlice})
	if err != nil {
		return nil, err
	}
	bad, good := split(reqs)
	an.note(len(bad), len(good))
	if len(bad) == 0 || len(good) == 0 || d.Baseline <= 0 {
		return nil, nil
	}
	// ratio is how many times the usual traffic arrived; a caller explains the part of the surplus
	// its own requests make up.
	ratio := d.Observed / d.Baseline
	explained := func(nowShare, beforeShare float64) float64 {
		return min(1, max(0, (nowShare*ratio-beforeShare)/(ratio-1)))
	}
	type caller struct{ service, operation string }
	type acc struct {
		bad, good           float64 // share of requests
		callsBad, callsGood float64 // calls into the service per request of the caller's trace
		resent              float64 // share of its bad requests marked as resends
		traces              map[string]float64
	}
	callers := map[caller]*acc{}
	for _, r := range reqs {
		c := caller{service: "(external clients)"}
		parent := r.entry.Parent
		if parent != nil {
			c = caller{service: parent.Span.Service, operation: parent.Span.Operation}
		}
		a := callers[c]
		if a == nil {
			a = &acc{traces: map[string]float64{}}
			callers[c] = a
		}
		calls := 0.0
		tracetree.Walk(tracetree.Root(r.entry), func(n *node) {
			if n.Span.Service == svc && n.Span.IsEntry && n.Parent != nil && n.Parent.Span.Service == c.service && n.Parent.Span.Operation == c.operation {
				calls++
			}
		})
		calls = max(calls, 1)
		if r.bad {
			a.bad += 1 / float64(len(bad))
			a.callsBad += calls / float64(len(bad))
			a.traces[r.traceID] = calls
			if parent != nil && parent.Span.attr("http.request.resend_count") != "" {
				a.resent += 1 / float64(len(bad))
			}
		} else {
			a.good += 1 / float64(len(good))
			a.callsGood += calls / float64(len(good))
		}
	}
	keys := make([]caller, 0, len(callers))
	for c := range callers {
		keys = append(keys, c)
	}
	sort.Slice(keys, func(i, j int) bool { return callers[keys[i]].bad > callers[keys[j]].bad })
	var causes []Cause
	for _, k := range keys {
		a := callers[k]
		perBad, perGood := a.callsBad/max(a.bad, 1e-9), a.callsGood/max(a.good, 1e-9)
		switch {
		case a.good > 0 && perBad >= 1.5*perGood:
			c := Cause{Kind: KindRetryStorm, Service: k.service, Operation: k.operation,
				Confidence: 0.8 * explained(a.bad, a.good), TraceIDs: examples(a.traces),
				Figures: []Figure{{Name: "calls into " + svc + " per request of the caller", Baseline: perGood, Anomalous: perBad},
					{Name: "share of requests to " + svc, Baseline: a.good, Anomalous: a.bad}}}
			if a.resent >= 0.2 {
				// The calls say themselves that they are resends.
				c.Attribute = "http.request.resend_count"
				c.Confidence = 0.95 * explained(a.bad, a.good)
			}
			c.Description = fmt.Sprintf("%s %q calls %s %.1f times per request instead of %.1f (%s of them resends): a retry storm.",
				k.service, k.operation, svc, perBad, perGood, pct(a.resent/max(a.bad, 1e-9)))
			causes = append(causes, c)
		case a.bad-a.good >= 0.2:
			c := Cause{Kind: KindTrafficSource, Service: k.service, Operation: k.operation, Confidence: 0.8 * explained(a.bad, a.good),
				TraceIDs: examples(a.traces),
				Figures:  []Figure{{Name: "share of requests to " + svc, Baseline: a.good, Anomalous: a.bad}}}
			c.Description = fmt.Sprintf("%s %q sends %s of the requests to %s, against %s before.", k.service, k.operation, pct(a.bad), svc, pct(a.good))
			causes = append(causes, c)
		}
	}
	return causes, nil
}
