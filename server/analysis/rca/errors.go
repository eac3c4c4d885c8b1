package rca

import (
	"context"
	"fmt"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
)

// failures ranks where the failures of failed requests (of one route when d is about one) originate:
// the deepest failing span under the entry span, by service, operation and exception type.
func (an *analysis) failures(ctx context.Context, d anomaly.Details) ([]Cause, error) {
	svc := an.a.Service
	q := store.SampleQuery{ErrorsOnly: true}
	if d.Route {
		q.Operation = d.Operation
	}
	s, ok, err := an.sample(ctx, q)
	if !ok || err != nil {
		return nil, err
	}
	type origin struct{ service, operation, exception, message string }
	origins := tally[origin]{}
	ops := map[origin][]string{} // operations raising each origin in bad requests
	for _, r := range s.all {
		seen := map[origin]bool{}
		for _, n := range errorOrigins(r.entry) {
			// One exception type is one cause wherever it is raised; without one, the operation
			// and message identify it.
			o := origin{service: n.Span.Service, exception: n.Span.exceptionType()}
			if o.exception == "" {
				o.operation, o.message = n.Span.Operation, short(n.Span.StatusMessage, 160)
			}
			seen[o] = true
			if r.bad {
				ops[o] = append(ops[o], n.Span.Operation)
			}
		}
		for o := range seen {
			origins.set(s, o, r, 1)
		}
	}
	var causes []Cause
	share := map[string]float64{}
	for _, o := range origins.byBad() {
		a := origins[o]
		if a.bad-a.good <= 0 {
			continue
		}
		share[o.service] += a.bad - a.good
		c := Cause{Kind: KindErrorOrigin, Service: o.service, Operation: mostCommon(ops[o]), Confidence: symptom * (a.bad - a.good),
			TraceIDs: examples(a.traces),
			Figures:  []Figure{{Name: "share of failed requests failing here", Baseline: a.good, Anomalous: a.bad}}}
		if o.service != svc {
			c.Kind = KindDependency
		}
		what := fmt.Sprintf("%s %q", o.service, c.Operation)
		switch {
		case o.exception != "":
			c.Attribute, c.Value = "exception.type", o.exception
			what += " raising " + o.exception
		case o.message != "":
			c.Attribute, c.Value = "status.message", o.message
			what += fmt.Sprintf(" failing with %q", o.message)
		}
		c.Description = fmt.Sprintf("failures start at %s in %s of the failed requests (%s of requests before).", what, pct(a.bad), pct(a.good))
		causes = append(causes, c)
	}
	// A bad deployment or host of the failing service is the cause behind its exceptions.
	for _, p := range overRepresented(s, []string{"service.version", "host.name"}) {
		if share[p.service] <= 0 {
			continue
		}
		c := p.cause(share[p.service])
		if p.bad-p.good >= 0.5 {
			c.Confidence = max(c.Confidence, min(share[p.service], 1)+0.04)
		}
		causes = append(causes, c)
	}
	return preferVersionOverHost(causes), nil
}

func mostCommon(xs []string) string {
	counts := map[string]int{}
	best := ""
	for _, x := range xs {
		counts[x]++
		if counts[x] > counts[best] || counts[x] == counts[best] && x < best {
			best = x
		}
	}
	return best
}
