package rca

import (
	"bytes"
	"context"
	"encoding/json"
	"sort"
	"strconv"

	"github.com/tracekit/tracekit/server/store"
)

// node is a span in a trace tree.
type node struct {
	s        *store.Span
	parent   *node
	children []*node
	attrs    map[string]any // parsed on first use
}

func (n *node) end() int64 { return n.s.StartNS + n.s.DurationNS }

func (n *node) failed() bool {
	return n.s.StatusCode == store.StatusError || n.s.HTTPStatusCode >= 500
}

// attr returns a span attribute as text ("" when absent), parsing the span's JSON once.
func (n *node) attr(key string) string {
	if n.attrs == nil {
		n.attrs = map[string]any{}
		_ = json.Unmarshal(n.s.Attributes, &n.attrs)
	}
	switch v := n.attrs[key].(type) {
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
func (n *node) exceptionType() string {
	if !bytes.Contains(n.s.Events, []byte("exception.type")) {
		return ""
	}
	var events []struct {
		Name       string         `json:"name"`
		Attributes map[string]any `json:"attributes"`
	}
	if json.Unmarshal(n.s.Events, &events) != nil {
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
	byTrace := map[string]map[string]*node{}
	for i := range spans {
		s := &spans[i]
		m := byTrace[s.TraceID]
		if m == nil {
			m = map[string]*node{}
			byTrace[s.TraceID] = m
		}
		m[s.SpanID] = &node{s: s}
	}
	for _, m := range byTrace {
		for _, n := range m {
			if p := m[n.s.ParentSpanID]; p != nil && n.s.ParentSpanID != "" {
				p.children = append(p.children, n)
				n.parent = p
			}
		}
		for _, n := range m {
			sort.Slice(n.children, func(i, j int) bool { return n.children[i].s.StartNS < n.children[j].s.StartNS })
		}
	}
	var out []*request
	for _, group := range []struct {
		refs []store.SampledRequest
		bad  bool
	}{{badRefs, true}, {goodRefs, false}} {
		for _, r := range group.refs {
			if e := byTrace[r.TraceID][r.SpanID]; e != nil {
				out = append(out, &request{traceID: r.TraceID, entry: e, bad: group.bad})
			}
		}
	}
	return out, nil
}

// walk visits the subtree of n.
func walk(n *node, visit func(*node)) {
	visit(n)
	for _, c := range n.children {
		walk(c, visit)
	}
}

// criticalPath attributes the time of n (up to end) to the spans on its critical path: working back
// from the end, the child that finished last is what n waited for; the gaps are n's own time.
func criticalPath(n *node, end int64, add func(n *node, self int64)) {
	cursor := min(end, n.end())
	for cursor > n.s.StartNS {
		var next *node
		nextEnd := n.s.StartNS
		for _, c := range n.children {
			if c.s.StartNS >= cursor {
				continue
			}
			if e := min(c.end(), cursor); e > nextEnd {
				next, nextEnd = c, e
			}
		}
		if next == nil {
			add(n, cursor-n.s.StartNS)
			return
		}
		add(n, cursor-nextEnd)
		criticalPath(next, nextEnd, add)
		cursor = max(next.s.StartNS, n.s.StartNS)
	}
}

// errorOrigins returns the failing spans under n none of whose descendants failed: where errors
// started, as opposed to where they were passed on.
func errorOrigins(n *node) []*node {
	var out []*node
	var visit func(*node) bool
	visit = func(x *node) bool {
		below := false
		for _, c := range x.children {
			if visit(c) {
				below = true
			}
		}
		if x.failed() && !below {
			out = append(out, x)
		}
		return below || x.failed()
	}
	visit(n)
	return out
}
