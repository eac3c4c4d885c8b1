package mcpserver

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/analysis/tracetree"
	"github.com/tracekit/tracekit/server/store"
)

type getTraceDetailIn struct {
	TraceID     string `json:"trace_id"`
	FocusSpanID string `json:"focus_span_id,omitempty" jsonschema:"show only this span's subtree"`
	MaxTokens   int    `json:"max_tokens,omitempty"`
	whole       bool   // every row, for a /ui page
}

func (in *getTraceDetailIn) setWhole() { in.whole = true }

// step is a span named in the critical path or the self-time ranking.
type step struct {
	SpanID     string  `json:"span_id"`
	Service    string  `json:"service"`
	Operation  string  `json:"operation"`
	DurationMS float64 `json:"duration_ms"`
	SelfMS     float64 `json:"self_ms"`
	Count      int     `json:"count,omitempty"`     // consecutive calls to the same operation, counted in this step
	Statement  any     `json:"statement,omitempty"` // captured
}

type spanError struct {
	SpanID     string `json:"span_id"`
	Service    string `json:"service"`
	Operation  string `json:"operation"`
	HTTPStatus int32  `json:"http_status,omitempty"`
	Message    any    `json:"message,omitempty"`    // captured status message
	Exceptions any    `json:"exceptions,omitempty"` // captured exception events
}

// spanRow is one line of the waterfall. A row with Count > 1 stands for that many sibling calls to
// the same operation, represented by the slowest of them.
type spanRow struct {
	SpanID     string  `json:"span_id"`
	Depth      int     `json:"depth"`
	Service    string  `json:"service"`
	Operation  string  `json:"operation"`
	OffsetMS   float64 `json:"offset_ms"`
	DurationMS float64 `json:"duration_ms"`
	SelfMS     float64 `json:"self_ms"`
	Error      bool    `json:"error,omitempty"`
	Critical   bool    `json:"critical,omitempty"`
	Count      int     `json:"count,omitempty"`
	TotalMS    float64 `json:"total_ms,omitempty"`
	NPlusOne   bool    `json:"n_plus_one,omitempty"`
	Hidden     int     `json:"hidden,omitempty"` // descendants not shown as rows
	Statement  any     `json:"statement,omitempty"`
	// QueueLagMS is, for a consumer span under a producer span or linked to one, how long the
	// message waited: the consumer's start less the producer's end.
	QueueLagMS float64 `json:"queue_lag_ms,omitempty"`
	// Links are the span's first span links (a batch consumer's messages), MoreLinks how many more.
	Links     []spanLink `json:"links,omitempty"`
	MoreLinks int        `json:"more_links,omitempty"`
	// ConsumedBy are the first traces that link to this span (the consumers of the message it
	// produced), MoreConsumedBy how many more of those read.
	ConsumedBy     []consumer `json:"consumed_by,omitempty"`
	MoreConsumedBy int        `json:"more_consumed_by,omitempty"`
}

// consumer is a trace that links to a span of this one: it consumed a message this trace produced.
type consumer struct {
	TraceID   string  `json:"trace_id"`
	SpanID    string  `json:"span_id"`
	Service   string  `json:"service"`
	Operation string  `json:"operation"`
	LagMS     float64 `json:"lag_ms"` // how long the message waited; 0 when the linked span is no producer
	Status    string  `json:"status"` // "error" when one of its linking spans failed, else "ok"
	producer  string  // the span of this trace it links to
}

// consumedCount is how many traces link to this one.
type consumedCount struct {
	Traces  int  `json:"traces"`
	AtLeast bool `json:"at_least,omitempty"` // more were not counted
	Listed  int  `json:"listed"`             // in consumers
}

// spanLink is a span a row's span links to, often in another trace: named when it is stored.
type spanLink struct {
	TraceID   string `json:"trace_id"`
	SpanID    string `json:"span_id"`
	Service   string `json:"service,omitempty"`
	Operation string `json:"operation,omitempty"`
}

type getTraceDetailOut struct {
	TraceID     string    `json:"trace_id"`
	Window      TimeRange `json:"window"`
	Root        string    `json:"root"`
	DurationMS  float64   `json:"duration_ms"`
	Spans       int       `json:"spans"`
	Services    []string  `json:"services"`
	FailedSpans int       `json:"failed_spans"`
	// CriticalPath holds the critical-path spans with at least 1% of the time as self time: where the
	// request's time went. CriticalSteps counts every span on the path.
	CriticalPath  []step      `json:"critical_path"`
	CriticalSteps int         `json:"critical_steps"`
	Errors        []spanError `json:"errors"`
	SelfTime      []step      `json:"top_self_time"`
	Waterfall     []spanRow   `json:"waterfall"`
	// QueueLag is the longest wait of a message between its producer and its consumer, if any.
	QueueLag *queueLag `json:"queue_lag,omitempty"`
	// Consumers are traces that link to this one, the consumers of messages it published: failed
	// ones first, then the longest waits. MoreConsumers counts the others.
	Consumers     []consumer     `json:"consumers,omitempty"`
	MoreConsumers int            `json:"more_consumers,omitempty"`
	Consumed      *consumedCount `json:"consumed,omitempty"`
	Returned      int            `json:"returned"`
	Truncated     bool           `json:"truncated"`
	Omitted       int            `json:"omitted"` // spans neither shown nor collapsed into a row
	Note          string         `json:"note,omitempty"`
	Next          []Call         `json:"next,omitempty"`
}

// maxConsumersListed is how many consuming traces an answer names, in its consumers and per
// waterfall row.
const maxConsumersListed = 3

// consumersOf reads the traces that link to the trace, which started at startNS: all of them
// ordered failed first, then longest wait first, and their count.
func consumersOf(ctx context.Context, tn *store.Tenant, traceID string, startNS int64) ([]consumer, *consumedCount, error) {
	found, err := tn.LinkingSpans(ctx, traceID, startNS)
	if err != nil || found.Traces == 0 {
		return nil, nil, err
	}
	var out []consumer
	byTrace := map[string]int{}
	for _, s := range found.Spans {
		// A trace is represented by its first linking span (usually its entry), with the longest wait
		// and any failure of its linking spans.
		i, seen := byTrace[s.TraceID]
		if !seen {
			i = len(out)
			byTrace[s.TraceID] = i
			out = append(out, consumer{TraceID: s.TraceID, SpanID: s.SpanID, Service: s.Service, Operation: s.Operation, Status: "ok", producer: s.LinkedSpanID})
		}
		c := &out[i]
		c.LagMS = max(c.LagMS, msOf(s.QueueLagNS))
		if s.Error {
			c.Status = "error"
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if a, b := out[i].Status == "error", out[j].Status == "error"; a != b {
			return a
		}
		return out[i].LagMS > out[j].LagMS
	})
	return out, &consumedCount{Traces: found.Traces, AtLeast: found.AtLeast, Listed: min(len(out), maxConsumersListed)}, nil
}

// Limits of a trace answer. maxTraceSpans bounds memory for a runaway trace; the others keep the
// fixed parts of the answer small so the waterfall gets most of the budget.
const (
	maxTraceSpans   = 100000
	maxPathSteps    = 25
	maxErrors       = 8
	topSelfTime     = 5
	collapseAt      = 3 // siblings with the same operation collapse from this many
	nPlusOneAt      = 5 // …and are flagged N+1 from this many, when they call out (DB, RPC, HTTP)
	maxIndentDepth  = 24
	statementInText = 160
	linksPerRow     = 3
	maxLinkedSpans  = 256 // span links of a trace whose spans are looked up
)

func (tl *tools) addGetTraceDetail(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "get_trace_detail",
		Description: "Explain one trace: critical path, failed spans with exceptions, top self-time spans, and a waterfall " +
			"with repeated sibling calls collapsed (N+1 flagged). Large traces are summarised; focus_span_id opens one subtree.",
	}, func(p map[string]*jsonschema.Schema) {
		p["trace_id"].MinLength = new(1)
		def(p["max_tokens"], defaultMaxTokens)
		bounds(p["max_tokens"], minMaxTokens, hardMaxTokens)
	}, tl.getTraceDetail)
}

// node is a span in the trace tree.
type node = tracetree.Node[store.TraceSpan]

func (tl *tools) getTraceDetail(ctx context.Context, tn *store.Tenant, in getTraceDetailIn) (getTraceDetailOut, string, error) {
	var out getTraceDetailOut
	in.TraceID = strings.TrimSpace(in.TraceID)
	spans, total, err := tn.TraceSpans(ctx, in.TraceID, maxTraceSpans)
	if err != nil {
		return out, "", err
	}
	if len(spans) == 0 {
		return out, "", badArg("trace %q has no stored spans: take a trace_id from search_traces (ids are hex, 32 characters)", in.TraceID)
	}
	tree := tracetree.Build(spans)
	roots, top := tree.Roots, tree.Roots[0]
	if in.FocusSpanID != "" {
		if top = tree.ByID[in.FocusSpanID]; top == nil {
			return out, "", badArg("span %q is not in trace %s: use a span_id from this trace's waterfall", in.FocusSpanID, in.TraceID)
		}
		roots = []*node{top}
	}
	start, end := top.StartNS, top.End()
	for _, r := range roots {
		start, end = min(start, r.StartNS), max(end, r.End())
	}
	services := map[string]int{}
	var subtree []*node
	for _, r := range roots {
		tracetree.Walk(r, func(n *node) { subtree = append(subtree, n); services[n.Span.Service]++ })
	}

	out.TraceID, out.Spans = in.TraceID, total
	out.Window = TimeRange{From: at(start), To: at(end)}
	out.Root = top.Span.Service + " " + top.Span.Operation
	out.DurationMS = msOf(end - start)
	out.Services = sortedByCount(services)
	critical := tracetree.CriticalPath(top)
	out.CriticalPath, out.CriticalSteps = pathSteps(top, critical), len(critical)
	out.SelfTime = topBySelfTime(subtree)
	links, err := linksOf(ctx, tn, subtree)
	if err != nil {
		return out, "", err
	}
	out.QueueLag = links.longestQueueLag(subtree)
	consumers, consumed, err := consumersOf(ctx, tn, in.TraceID, spans[0].StartNS)
	if err != nil {
		return out, "", err
	}
	if consumed != nil {
		out.Consumers, out.Consumed = consumers[:consumed.Listed], consumed
		out.MoreConsumers = consumed.Traces - consumed.Listed
	}
	failed := []*node{}
	for _, n := range subtree {
		if n.Span.Error {
			failed = append(failed, n)
		}
	}
	out.FailedSpans = len(failed)
	if out.Errors, err = tl.spanErrors(ctx, tn, in.TraceID, failed); err != nil {
		return out, "", err
	}

	b := newBudget(in.MaxTokens)
	if in.whole {
		b = unbounded()
	}
	for _, fixed := range []any{out.CriticalPath, out.Errors, out.SelfTime, out.Services, out.Consumers} {
		b.fit(fixed, "")
	}
	w := waterfall{start: start, budget: b, critical: map[*node]bool{}, links: links, consumedBy: map[string][]consumer{}}
	for _, c := range consumers {
		w.consumedBy[c.producer] = append(w.consumedBy[c.producer], c)
	}
	for _, c := range critical {
		w.critical[c.Node] = true
	}
	for _, r := range roots {
		w.add(r, 0)
	}
	out.Waterfall, out.Returned, out.Truncated = w.rows, len(w.rows), w.cut != ""
	out.Omitted = len(subtree) - w.covered
	if total > len(spans) {
		out.Truncated = true
		out.Omitted += total - len(spans)
		out.Note = fmt.Sprintf("this trace has %d spans; the first %d by start time were analysed.", total, len(spans))
	}
	out.Next = traceDetailSuggestions(in, out, w.cut)
	text := out.text(strings.Join(w.lines, ""))
	// The fixed parts were charged by estimate; drop waterfall rows from the end until all fits.
	for limit := b.limit(); !in.whole && answerSize(out, text) > limit && len(out.Waterfall) > 1; {
		n := len(out.Waterfall) - 1
		w.cut = out.Waterfall[n].SpanID
		out.Omitted += w.spans[n]
		out.Waterfall, w.lines, w.spans = out.Waterfall[:n], w.lines[:n], w.spans[:n]
		out.Returned, out.Truncated = n, true
		out.Next = traceDetailSuggestions(in, out, w.cut)
		text = out.text(strings.Join(w.lines, ""))
	}
	return out, text, nil
}

// pathSteps summarises the critical path under top for the answer.
func pathSteps(top *node, critical []tracetree.Step[store.TraceSpan]) []step {
	var path []step
	var last *node
	minSelf := top.DurationNS / 100
	for _, c := range critical {
		n := c.Node
		// Sequential sibling calls to one operation are one step: the waterfall shows them collapsed.
		if last != nil && last.ParentID == n.ParentID && last.Span.Service == n.Span.Service && last.Span.Operation == n.Span.Operation {
			p := &path[len(path)-1]
			p.Count = max(p.Count, 1) + 1
			p.DurationMS = round(p.DurationMS+msOf(n.DurationNS), 1)
			p.SelfMS = round(p.SelfMS+msOf(n.SelfNS), 1)
			continue
		}
		last = n
		if len(path) < maxPathSteps {
			path = append(path, stepOf(n))
		}
	}
	// Keep the steps that explain time; the waterfall marks every critical span.
	significant := path[:0:0]
	for _, p := range path {
		if p.SelfMS*1e6 >= float64(minSelf) {
			significant = append(significant, p)
		}
	}
	if len(significant) == 0 && len(path) > 0 {
		significant = path[len(path)-1:]
	}
	return significant
}

func topBySelfTime(nodes []*node) []step {
	sorted := append([]*node(nil), nodes...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].SelfNS > sorted[j].SelfNS })
	var out []step
	for _, n := range sorted[:min(len(sorted), topSelfTime)] {
		out = append(out, stepOf(n))
	}
	return out
}

func stepOf(n *node) step {
	s := step{SpanID: n.ID, Service: n.Span.Service, Operation: n.Span.Operation, DurationMS: msOf(n.DurationNS), SelfMS: msOf(n.SelfNS)}
	if n.Span.DBStatement != "" {
		s.Statement = capString(n.Span.DBStatement)
	}
	return s
}

// spanErrors describes the failed spans, with the exception events read for the first few.
func (tl *tools) spanErrors(ctx context.Context, tn *store.Tenant, traceID string, failed []*node) ([]spanError, error) {
	out := []spanError{}
	if len(failed) == 0 {
		return out, nil
	}
	failed = failed[:min(len(failed), maxErrors)]
	ids := make([]string, len(failed))
	for i, n := range failed {
		ids[i] = n.ID
	}
	data, err := tn.SpansData(ctx, traceID, ids)
	if err != nil {
		return nil, err
	}
	events := map[string][]byte{}
	for _, d := range data {
		events[d.SpanID] = d.Events
	}
	for _, n := range failed {
		e := spanError{SpanID: n.ID, Service: n.Span.Service, Operation: n.Span.Operation, HTTPStatus: n.Span.HTTPStatusCode,
			Exceptions: exceptions(events[n.ID])}
		if n.Span.StatusMessage != "" {
			e.Message = capString(n.Span.StatusMessage)
		}
		out = append(out, e)
	}
	return out, nil
}

// exceptions extracts the exception events of a span's events JSON (OpenTelemetry semantic
// conventions), capped.
func exceptions(raw []byte) any {
	var events []struct {
		Name       string         `json:"name"`
		Attributes map[string]any `json:"attributes"`
	}
	if json.Unmarshal(raw, &events) != nil {
		return nil
	}
	var out []any
	for _, e := range events {
		if e.Name != "exception" || len(out) == 3 {
			continue
		}
		x := map[string]any{}
		for _, k := range []string{"exception.type", "exception.message", "exception.stacktrace"} {
			if v, ok := e.Attributes[k]; ok {
				x[strings.TrimPrefix(k, "exception.")] = v
			}
		}
		out = append(out, capValue(x, 1))
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// waterfall renders the tree depth-first within a budget, collapsing repeated siblings.
type waterfall struct {
	start int64
	links traceLinks
	// consumedBy are the consuming traces read, by the span of this trace they link to.
	consumedBy map[string][]consumer
	budget     *budget
	critical   map[*node]bool
	rows       []spanRow
	lines      []string // per row
	spans      []int    // spans each row stands for
	covered    int      // spans shown as a row or collapsed into one
	cut        string   // the span whose subtree was the first not to fit
}

func (w *waterfall) add(n *node, depth int) {
	if w.cut != "" {
		return
	}
	row := w.row(n, depth)
	if !w.emit(row, n, 1) {
		return
	}
	// Group the children by operation; a group of collapseAt or more becomes one row placed where
	// its first member starts.
	type group struct{ members []*node }
	groups := map[string]*group{}
	for _, c := range n.Children {
		k := c.Span.Service + "\x00" + c.Span.Operation
		if groups[k] == nil {
			groups[k] = &group{}
		}
		groups[k].members = append(groups[k].members, c)
	}
	done := map[string]bool{}
	for _, c := range n.Children {
		k := c.Span.Service + "\x00" + c.Span.Operation
		g := groups[k]
		if len(g.members) < collapseAt {
			w.add(c, depth+1)
			continue
		}
		if done[k] {
			continue
		}
		done[k] = true
		if !w.collapse(g.members, depth+1) {
			return
		}
	}
}

func (w *waterfall) collapse(members []*node, depth int) bool {
	slowest, totalNS, hidden := members[0], int64(0), 0
	callsOut := false
	for _, m := range members {
		if m.DurationNS > slowest.DurationNS {
			slowest = m
		}
		totalNS += m.DurationNS
		hidden += m.Size - 1
		callsOut = callsOut || m.Span.DBSystem != "" || m.Span.Kind == store.KindClient
	}
	row := w.row(slowest, depth)
	row.Count, row.TotalMS, row.Hidden = len(members), msOf(totalNS), hidden
	row.OffsetMS = msOf(members[0].StartNS - w.start)
	row.NPlusOne = callsOut && len(members) >= nPlusOneAt
	return w.emit(row, slowest, len(members))
}

func (w *waterfall) row(n *node, depth int) spanRow {
	r := spanRow{SpanID: n.ID, Depth: depth, Service: n.Span.Service, Operation: n.Span.Operation,
		OffsetMS: msOf(n.StartNS - w.start), DurationMS: msOf(n.DurationNS), SelfMS: msOf(n.SelfNS),
		Error: n.Span.Error, Critical: w.critical[n]}
	lag, _ := w.links.queueLag(n)
	r.QueueLagMS = msOf(lag)
	if n.Span.DBStatement != "" {
		r.Statement = capString(n.Span.DBStatement)
	}
	ls := w.links.of[n]
	for _, l := range ls[:min(len(ls), linksPerRow)] {
		s := w.links.spans[l.SpanRef]
		r.Links = append(r.Links, spanLink{TraceID: l.TraceID, SpanID: l.SpanID, Service: s.Service, Operation: s.Operation})
	}
	r.MoreLinks = max(len(ls)-linksPerRow, 0)
	cs := w.consumedBy[n.ID]
	r.ConsumedBy, r.MoreConsumedBy = cs[:min(len(cs), maxConsumersListed)], max(len(cs)-maxConsumersListed, 0)
	return r
}

// emit adds a row standing for spans spans, or records n as the cut when the budget is spent.
func (w *waterfall) emit(r spanRow, n *node, spans int) bool {
	if w.cut != "" {
		return false
	}
	line := r.line()
	if !w.budget.fit(r, line) {
		w.cut = n.ID
		return false
	}
	w.rows, w.lines, w.spans = append(w.rows, r), append(w.lines, line), append(w.spans, spans)
	w.covered += spans
	return true
}

func (r spanRow) line() string {
	var b strings.Builder
	b.WriteString(strings.Repeat("  ", min(r.Depth, maxIndentDepth)))
	if r.Count > 1 {
		fmt.Fprintf(&b, "×%d %s %s +%s total %s, slowest %s", r.Count, r.Service, r.Operation, ms(r.OffsetMS), ms(r.TotalMS), ms(r.DurationMS))
		if r.NPlusOne {
			b.WriteString(" N+1?")
		}
		if r.Hidden > 0 {
			fmt.Fprintf(&b, " (+%d nested)", r.Hidden)
		}
	} else {
		fmt.Fprintf(&b, "%s %s +%s %s self %s", r.Service, r.Operation, ms(r.OffsetMS), ms(r.DurationMS), ms(r.SelfMS))
	}
	if r.QueueLagMS > 0 {
		b.WriteString(" queue lag " + ms(r.QueueLagMS))
	}
	for _, l := range r.Links {
		b.WriteString(" link→")
		if l.Service != "" {
			b.WriteString(" " + l.Service + " " + l.Operation)
		}
		fmt.Fprintf(&b, " trace=%s span=%s", l.TraceID, l.SpanID)
	}
	if r.MoreLinks > 0 {
		fmt.Fprintf(&b, " (+%d links)", r.MoreLinks)
	}
	if r.Error {
		b.WriteString(" ERROR")
	}
	if r.Critical {
		b.WriteString(" *")
	}
	fmt.Fprintf(&b, " span=%s", r.SpanID)
	if s, ok := r.Statement.(string); ok {
		if len(s) > statementInText {
			s = capValue(s[:statementInText], 0).(string) + "…"
		}
		b.WriteString(" " + quoted(s))
	}
	b.WriteString("\n")
	indent := strings.Repeat("  ", min(r.Depth+1, maxIndentDepth))
	for _, c := range r.ConsumedBy {
		b.WriteString(indent + "consumed← " + c.line() + "\n")
	}
	if r.MoreConsumedBy > 0 {
		fmt.Fprintf(&b, "%sconsumed← (+%d traces)\n", indent, r.MoreConsumedBy)
	}
	return b.String()
}

func (c consumer) line() string {
	s := fmt.Sprintf("%s %s trace=%s span=%s", c.Service, c.Operation, c.TraceID, c.SpanID)
	if c.LagMS > 0 {
		s += " after " + ms(c.LagMS) + " in the queue"
	}
	if c.Status == "error" {
		s += " ERROR"
	}
	return s
}

func sortedByCount(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return m[out[i]] > m[out[j]] || (m[out[i]] == m[out[j]] && out[i] < out[j]) })
	return out
}

func traceDetailSuggestions(in getTraceDetailIn, out getTraceDetailOut, cut string) []Call {
	var next []Call
	if cut != "" {
		next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": in.TraceID, "focus_span_id": cut},
			Why: "the first part of the waterfall that did not fit"})
	}
	if q := out.QueueLag; q != nil && q.ProducerTraceID != "" && q.ProducerTraceID != in.TraceID {
		next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": q.ProducerTraceID},
			Why: "the trace that produced the message that waited longest"})
	}
	if len(out.Consumers) > 0 {
		// Consumers lists failed ones first, then the longest wait.
		c, why := out.Consumers[0], "the consumer of this trace's message that waited longest"
		if c.Status == "error" {
			why = "a consumer of this trace's message that failed"
		}
		next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": c.TraceID}, Why: why})
	}
	if len(out.SelfTime) > 0 {
		s := out.SelfTime[0]
		next = append(next, Call{Tool: "search_traces", Args: map[string]any{"service": s.Service, "operation": s.Operation, "sort": "duration", "since": "24h"},
			Why: "is the top self-time operation slow in other requests too"})
	}
	next = append(next, Call{Tool: "search_snapshots", Args: map[string]any{"trace_id": in.TraceID}, Why: "variables captured in this trace"})
	return next[:min(len(next), 3)]
}

func (o getTraceDetailOut) text(waterfall string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Trace %s: %s, %s, %d spans, %d services, %d failed spans; %s\n", o.TraceID, o.Root, ms(o.DurationMS),
		o.Spans, len(o.Services), o.FailedSpans, o.Window)
	b.WriteString("Services: " + strings.Join(o.Services, ", ") + "\n")
	if q := o.QueueLag; q != nil {
		fmt.Fprintf(&b, "Queue lag: %s %s started %s after %s %s ended (span=%s", q.Consumer.Service, q.Consumer.Operation,
			ms(q.LagMS), q.Producer.Service, q.Producer.Operation, q.Consumer.SpanID)
		if q.ProducerTraceID != "" {
			fmt.Fprintf(&b, "; linked producer trace=%s span=%s", q.ProducerTraceID, q.Producer.SpanID)
		}
		b.WriteString(")\n")
	}
	if c := o.Consumed; c != nil {
		atLeast := ""
		if c.AtLeast {
			atLeast = "at least "
		}
		fmt.Fprintf(&b, "Consumed by %s%d traces linking to it:", atLeast, c.Traces)
		for i, x := range o.Consumers {
			if i > 0 {
				b.WriteString(";")
			}
			b.WriteString(" " + x.line())
		}
		if o.MoreConsumers > 0 {
			fmt.Fprintf(&b, "; +%d more", o.MoreConsumers)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Critical path, %d spans; those with ≥1%% of the time as self time:", o.CriticalSteps)
	for i, s := range o.CriticalPath {
		if i > 0 {
			b.WriteString(" ›")
		}
		count := ""
		if s.Count > 1 {
			count = fmt.Sprintf(" ×%d", s.Count)
		}
		fmt.Fprintf(&b, " %s %s%s %s (self %s)", s.Service, s.Operation, count, ms(s.DurationMS), ms(s.SelfMS))
	}
	b.WriteString("\n")
	if len(o.Errors) > 0 {
		fmt.Fprintf(&b, "Failed spans (%d):\n", o.FailedSpans)
		for _, e := range o.Errors {
			fmt.Fprintf(&b, "- %s %s span=%s", e.Service, e.Operation, e.SpanID)
			if e.HTTPStatus != 0 {
				fmt.Fprintf(&b, " http=%d", e.HTTPStatus)
			}
			if e.Message != nil {
				b.WriteString(" message=" + quoted(e.Message))
			}
			if e.Exceptions != nil {
				b.WriteString(" exceptions=" + quoted(e.Exceptions))
			}
			b.WriteString("\n")
		}
	}
	b.WriteString("Most self time:\n")
	for _, s := range o.SelfTime {
		fmt.Fprintf(&b, "- %s self of %s %s %s span=%s", ms(s.SelfMS), ms(s.DurationMS), s.Service, s.Operation, s.SpanID)
		if s.Statement != nil {
			b.WriteString(" " + quoted(s.Statement))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Waterfall (+offset, duration, self; * critical path; %d rows", o.Returned)
	if o.Truncated {
		fmt.Fprintf(&b, ", truncated: %d spans not shown", o.Omitted)
	}
	b.WriteString("):\n" + waterfall)
	if strings.Contains(b.String(), "«") {
		b.WriteString(capturedLegend + "\n")
	}
	b.WriteString(footer(o.Note, o.Next))
	return b.String()
}

// queueLag is a message's wait between the span that produced it and the span that consumed it.
type queueLag struct {
	LagMS    float64 `json:"lag_ms"`
	Producer step    `json:"producer"`
	// ProducerTraceID is set when the consumer links to its producer (store.QueueProducer) rather
	// than descending from it: the producer's trace, usually not this one.
	ProducerTraceID string `json:"producer_trace_id,omitempty"`
	Consumer        step   `json:"consumer"`
}

// traceLinks are the span links of a trace's spans and the stored spans they lead to.
type traceLinks struct {
	of    map[*node][]store.Link
	spans map[store.SpanRef]store.LinkedSpan
}

// linksOf reads the links of nodes and looks up (the first maxLinkedSpans of) the spans they name.
func linksOf(ctx context.Context, tn *store.Tenant, nodes []*node) (traceLinks, error) {
	l := traceLinks{of: map[*node][]store.Link{}}
	var refs []store.SpanRef
	for _, n := range nodes {
		links := store.ParseLinks(n.Span.Links)
		if len(links) == 0 {
			continue
		}
		l.of[n] = links
		for _, k := range links[:min(len(links), store.MaxLagLinks, maxLinkedSpans-len(refs))] {
			refs = append(refs, k.SpanRef)
		}
	}
	if len(refs) == 0 {
		return l, nil
	}
	var err error
	l.spans, err = tn.LinkedSpans(ctx, refs)
	return l, err
}

// queueLag is how long the message n consumes waited: n's start less the end of its producer, the
// parent when that is a producer span, else the producer it links to (store.QueueProducer); 0 when
// n is no consumer or its producer is not stored. A consumer falling behind shows here, where its
// own duration stays short.
func (l traceLinks) queueLag(n *node) (int64, *queueLag) {
	if n.Span.Kind != store.KindConsumer {
		return 0, nil
	}
	if p := n.Parent; p != nil && p.Span.Kind == store.KindProducer {
		lag := max(n.StartNS-p.End(), 0)
		return lag, &queueLag{LagMS: msOf(lag), Producer: stepOf(p), Consumer: stepOf(n)}
	}
	p, ok := store.QueueProducer(l.of[n], l.spans)
	if !ok {
		return 0, nil
	}
	lag := max(n.StartNS-p.EndNS(), 0)
	return lag, &queueLag{LagMS: msOf(lag), Consumer: stepOf(n), ProducerTraceID: p.TraceID,
		Producer: step{SpanID: p.SpanID, Service: p.Service, Operation: p.Operation, DurationMS: msOf(p.DurationNS)}}
}

// longestQueueLag returns the wait of the consumer span of nodes that waited longest for its
// message, or nil.
func (l traceLinks) longestQueueLag(nodes []*node) *queueLag {
	var best *queueLag
	longest := int64(0)
	for _, n := range nodes {
		if lag, q := l.queueLag(n); lag > longest {
			best, longest = q, lag
		}
	}
	return best
}
