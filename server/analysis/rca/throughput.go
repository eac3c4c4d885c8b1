package rca

import (
	"context"
	"fmt"

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
	s, ok, err := an.sample(ctx, store.SampleQuery{})
	if !ok || err != nil || d.Baseline <= 0 {
		return nil, err
	}
	// ratio is how many times the usual traffic arrived; a caller explains the part of the surplus
	// its own requests make up.
	ratio := d.Observed / d.Baseline
	explained := func(nowShare, beforeShare float64) float64 {
		return min(1, max(0, (nowShare*ratio-beforeShare)/(ratio-1)))
	}
	type caller struct{ service, operation string }
	// Per caller: its share of requests, its calls into the service per request of its trace, and
	// the share of its bad requests marked as resends.
	share, calls, resent := tally[caller]{}, tally[caller]{}, tally[caller]{}
	for _, r := range s.all {
		c := caller{service: "(external clients)"}
		parent := r.entry.Parent
		if parent != nil {
			c = caller{service: parent.Span.Service, operation: parent.Span.Operation}
		}
		n := 0.0
		tracetree.Walk(tracetree.Root(r.entry), func(x *node) {
			if x.Span.Service == svc && x.Span.IsEntry && x.Parent != nil && x.Parent.Span.Service == c.service && x.Parent.Span.Operation == c.operation {
				n++
			}
		})
		share.set(s, c, r, 1)
		calls.set(s, c, r, max(n, 1))
		if r.bad && parent != nil && parent.Span.attr("http.request.resend_count") != "" {
			resent.set(s, c, r, 1)
		}
	}
	var causes []Cause
	for _, k := range share.byBad() {
		a, n, rs := share.get(k), calls.get(k), resent.get(k).bad
		perBad, perGood := n.bad/max(a.bad, 1e-9), n.good/max(a.good, 1e-9)
		switch {
		case a.good > 0 && perBad >= 1.5*perGood:
			c := Cause{Kind: KindRetryStorm, Service: k.service, Operation: k.operation,
				Confidence: 0.8 * explained(a.bad, a.good), TraceIDs: examples(n.traces),
				Figures: []Figure{{Name: "calls into " + svc + " per request of the caller", Baseline: perGood, Anomalous: perBad},
					{Name: "share of requests to " + svc, Baseline: a.good, Anomalous: a.bad}}}
			if rs >= 0.2 {
				// The calls say themselves that they are resends.
				c.Attribute = "http.request.resend_count"
				c.Confidence = 0.95 * explained(a.bad, a.good)
			}
			c.Description = fmt.Sprintf("%s %q calls %s %.1f times per request instead of %.1f (%s of them resends): a retry storm.",
				k.service, k.operation, svc, perBad, perGood, pct(rs/max(a.bad, 1e-9)))
			causes = append(causes, c)
		case a.bad-a.good >= 0.2:
			c := Cause{Kind: KindTrafficSource, Service: k.service, Operation: k.operation, Confidence: 0.8 * explained(a.bad, a.good),
				TraceIDs: examples(n.traces),
				Figures:  []Figure{{Name: "share of requests to " + svc, Baseline: a.good, Anomalous: a.bad}}}
			c.Description = fmt.Sprintf("%s %q sends %s of the requests to %s, against %s before.", k.service, k.operation, pct(a.bad), svc, pct(a.good))
			causes = append(causes, c)
		}
	}
	return causes, nil
}
