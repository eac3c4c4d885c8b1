// Package demo generates a day of realistic OpenTelemetry traffic for a small e-commerce system with
// LLM features, with labelled incidents, and sends it through the OTLP/HTTP ingest endpoint like any
// instrumented application would.
package demo

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Defaults of Options. DefaultTraces makes about 170,000 spans.
const (
	DefaultDuration   = 24 * time.Hour
	DefaultTraces     = 16000
	DefaultBatchSpans = 2000
)

// Options shapes the generated traffic.
type Options struct {
	End        time.Time     // traffic ends here (default now); it starts End-Duration
	Duration   time.Duration // default 24h; at least 1h
	Traces     int           // number of user requests (each a trace) over the whole duration; default DefaultTraces
	Seed       int64         // the same seed and End give the same spans
	BatchSpans int           // spans per OTLP request, default DefaultBatchSpans
}

func (o Options) withDefaults() (Options, error) {
	if o.End.IsZero() {
		o.End = time.Now()
	}
	if o.Duration == 0 {
		o.Duration = DefaultDuration
	}
	if o.Traces == 0 {
		o.Traces = DefaultTraces
	}
	if o.BatchSpans == 0 {
		o.BatchSpans = DefaultBatchSpans
	}
	switch {
	case o.Duration < time.Hour:
		return o, fmt.Errorf("demo duration %s is too short: use at least 1h so the incidents fit", o.Duration)
	case o.Traces < 0:
		return o, fmt.Errorf("demo traces must be positive, got %d", o.Traces)
	case o.BatchSpans < 0:
		return o, fmt.Errorf("demo batch size must be positive, got %d spans", o.BatchSpans)
	}
	return o, nil
}

// Result is what was sent. Traces counts the requests' traces and those that consumers started to
// process a message (linked to the span that produced it).
type Result struct {
	Spans, Traces, LLMCalls int
	Incidents               []Incident
}

// Run generates the traffic and sends it through s, batch by batch, while generating: at most a few
// batches exist at a time. progress, when not nil, is called after each acknowledged batch with the
// spans sent so far and the (estimated, until generation ends) total; calls never overlap. On error
// the Result counts what was acknowledged before it.
func Run(ctx context.Context, opts Options, s Sender, progress func(done, total int)) (Result, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return Result{}, err
	}
	s, err = s.withDefaults()
	if err != nil {
		return Result{}, err
	}
	g := newGenerator(opts)
	res := Result{Incidents: g.sched.incidents()}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// A small buffer lets generation run ahead of the senders without piling up batches.
	batches := make(chan *batch, s.Concurrency)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range s.Concurrency {
		wg.Go(func() {
			for b := range batches {
				if ctx.Err() != nil {
					continue // drain, so the generator is never stuck
				}
				if err := s.export(ctx, b.req, b.spans); err != nil {
					cancel(err)
					continue
				}
				mu.Lock()
				res.Spans += b.spans
				res.Traces += b.traces
				res.LLMCalls += b.llm
				if progress != nil {
					progress(res.Spans, max(res.Spans, g.estimate()))
				}
				mu.Unlock()
			}
		})
	}
	genErr := g.run(ctx, func(b *batch) error {
		select {
		case batches <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	})
	close(batches)
	wg.Wait()

	// A sender's error or the caller's cancellation is the reason the generator stopped, if it did.
	if err := context.Cause(ctx); err != nil {
		return res, err
	}
	return res, genErr
}
