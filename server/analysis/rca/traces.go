package rca

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/tracekit/tracekit/server/analysis/tracetree"
	"github.com/tracekit/tracekit/server/store"
)

// span is a stored span whose attributes are parsed on first use.
type span struct {
	*store.Span
	attrs map[string]any
}

// node is a span in a trace tree.
type node = tracetree.Node[span]

// attr returns a span attribute as text ("" when absent), parsing the span's JSON once.
func (s *span) attr(key string) string {
	if s.attrs == nil {
		s.attrs = map[string]any{}
		_ = json.Unmarshal(s.Attributes, &s.attrs)
	}
	switch v := s.attrs[key].(type) {
	case string:
		return v
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64)
	case bool:
		return strconv.FormatBool(v)
	}
	return ""
}

// exceptionType is the type of the exception recorded on the span, if any.
func (s *span) exceptionType() string {
	if !bytes.Contains(s.Events, []byte("exception.type")) {
		return ""
	}
	var events []struct {
		Name       string         `json:"name"`
		Attributes map[string]any `json:"attributes"`
	}
	if json.Unmarshal(s.Events, &events) != nil {
		return ""
	}
	for _, e := range events {
		if t, ok := e.Attributes["exception.type"].(string); ok && t != "" {
			return t
		}
	}
	return ""
}

// request is one sampled request: the entry span of the anomalous service and the trace under it.
type request struct {
	traceID string
	entry   *node
	bad     bool // from the anomalous sample (slow, failed, or simply in the window)
	// producer is, when entry consumes a message, the producer span of that message (linkProducers).
	producer *store.LinkedSpan
}

// loadRequests samples requests of service in the anomalous window (matching bad) and in the
// baseline window, and builds the tree of each request's trace.
func loadRequests(ctx context.Context, t *store.Tenant, bad, good store.SampleQuery) ([]*request, error) {
	badRefs, err := t.SampleRequests(ctx, bad)
	if err != nil {
		return nil, err
	}
	goodRefs, err := t.SampleRequests(ctx, good)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, r := range append(append([]store.SampledRequest(nil), badRefs...), goodRefs...) {
		ids[r.TraceID] = true
	}
	list := make([]string, 0, len(ids))
	for id := range ids {
		list = append(list, id)
	}
	sort.Strings(list)
	spans, err := t.SpansOfTraces(ctx, list)
	if err != nil {
		return nil, err
	}
	byTrace := map[string][]span{}
	for i := range spans {
		byTrace[spans[i].TraceID] = append(byTrace[spans[i].TraceID], span{Span: &spans[i]})
	}
	trees := make(map[string]*tracetree.Tree[span], len(byTrace))
	for id, spans := range byTrace {
		trees[id] = tracetree.Build(spans)
	}
	var out []*request
	for _, group := range []struct {
		refs []store.SampledRequest
		bad  bool
	}{{badRefs, true}, {goodRefs, false}} {
		for _, r := range group.refs {
			if tr := trees[r.TraceID]; tr != nil && tr.ByID[r.SpanID] != nil {
				out = append(out, &request{traceID: r.TraceID, entry: tr.ByID[r.SpanID], bad: group.bad})
			}
		}
	}
	return out, linkProducers(ctx, t, out)
}

// linkProducers finds the producer span of each consumer entry of reqs: its parent when that is a
// producer span, else the producer it links to (store.QueueProducer: batch consumers start a trace of
// their own), looked up for all of reqs at once.
func linkProducers(ctx context.Context, t *store.Tenant, reqs []*request) error {
	linked := map[*request][]store.Link{}
	var refs []store.SpanRef
	for _, r := range reqs {
		e := r.entry
		if e.Span.Kind != store.KindConsumer {
			continue
		}
		if p := e.Parent; p != nil && p.Span.Kind == store.KindProducer {
			r.producer = &store.LinkedSpan{SpanRef: store.SpanRef{TraceID: r.traceID, SpanID: p.ID}, Service: p.Span.Service,
				Operation: p.Span.Operation, Kind: p.Span.Kind, StartNS: p.StartNS, DurationNS: p.DurationNS}
			continue
		}
		if links := store.ParseLinks(e.Span.Links); len(links) > 0 {
			linked[r] = links
			for _, l := range links[:min(len(links), store.MaxLagLinks)] {
				refs = append(refs, l.SpanRef)
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	found, err := t.LinkedSpans(ctx, refs)
	if err != nil {
		return err
	}
	for r, links := range linked {
		if p, ok := store.QueueProducer(links, found); ok {
			r.producer = &p
		}
	}
	return nil
}

// errorOrigins returns the failing spans under n none of whose descendants failed: where errors
// started, as opposed to where they were passed on.
func errorOrigins(n *node) []*node {
	var out []*node
	var visit func(*node) bool
	visit = func(x *node) bool {
		below := false
		for _, c := range x.Children {
			if visit(c) {
				below = true
			}
		}
		if x.Span.Failed() && !below {
			out = append(out, x)
		}
		return below || x.Span.Failed()
	}
	visit(n)
	return out
}
