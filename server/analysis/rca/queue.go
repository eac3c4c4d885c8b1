package rca

import (
	"context"
	"fmt"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
)

// minQueueLagNS is the mean wait of a message below which a queue is not worth a cause.
const minQueueLagNS = 1e9

// queueLagNS is how long the message r's consumer entry span handles waited on the queue: its start
// less the end of the producer span it descends from or links to; 0 when the entry is no such
// consumer.
func (r *request) queueLagNS() int64 {
	if r.producer == nil {
		return 0
	}
	return max(r.entry.StartNS-r.producer.EndNS(), 0)
}

// queueLags reports consumers falling behind: the anomalous service's messages, per producer,
// waiting at least a second on average and three times as long as before. The wait is in no span's
// duration, so the other rankers cannot see it.
func queueLags(s samples) []Cause {
	type producer struct{ service, operation, consumer string }
	lags := tally[producer]{}
	for _, r := range s.all {
		if lag := r.queueLagNS(); lag > 0 {
			p := r.producer
			lags.add(s, producer{p.Service, p.Operation, r.entry.Span.Operation}, r, float64(lag))
		}
	}
	var out []Cause
	for _, p := range lags.byBad() {
		a := lags[p]
		if a.bad < minQueueLagNS || a.bad < 3*a.good {
			continue
		}
		svc := s.bad[0].entry.Span.Service
		c := Cause{Kind: KindQueueLag, Service: svc, Operation: p.consumer, Confidence: 0.6, TraceIDs: examples(a.traces),
			Figures: []Figure{{Name: "queue lag per message (consumer start less producer end)", Baseline: a.good / 1e6, Anomalous: a.bad / 1e6, Unit: "ms"}}}
		c.Description = fmt.Sprintf("%s is falling behind: messages from %s %q waited %s on the queue before it consumed them, against %s before.",
			svc, p.service, p.operation, ms(a.bad), ms(a.good))
		out = append(out, c)
	}
	return out
}

// queueLag explains a queue-lag anomaly: the consumer's messages in the window against the
// baseline's, all of them (the lag is in no span's duration, so none can be picked as slow), and
// what singles out the window's: the lag itself, and a host or version of the consumer that took
// over its work (a consumer group down to one member) or slowed it.
func (an *analysis) queueLag(ctx context.Context, d anomaly.Details) ([]Cause, error) {
	s, ok, err := an.sample(ctx, store.SampleQuery{Operation: d.Operation})
	if !ok || err != nil {
		return nil, err
	}
	causes := queueLags(s)
	for i := range causes {
		causes[i].Confidence = 0.9 // the anomaly's own metric, measured
	}
	for _, o := range overRepresented(s, []string{"service.version", "host.name"}) {
		if o.service == an.a.Service {
			causes = append(causes, o.cause(0.5))
		}
	}
	return causes, nil
}
