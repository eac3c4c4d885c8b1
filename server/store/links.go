package store

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// SpanRef names a span of a tenant: the trace it belongs to and its id (both hex).
type SpanRef struct {
	TraceID string `json:"trace_id" db:"trace_id"`
	SpanID  string `json:"span_id" db:"span_id"`
}

// Link is one of a span's OTLP span links: a span it refers to besides its parent, often in another
// trace. Messaging consumers that start a new trace for each message or batch link to the spans
// that produced the messages. Span.Links holds a JSON array of them.
type Link struct {
	SpanRef
	Attributes json.RawMessage `json:"attributes,omitempty"` // a JSON object, as Span.Attributes
}

// ParseLinks decodes a span's links; nil when it has none (or they cannot be read, which ingest,
// the only writer, never causes).
func ParseLinks(raw []byte) []Link {
	if len(raw) == 0 {
		return nil
	}
	var links []Link
	if json.Unmarshal(raw, &links) != nil {
		return nil
	}
	return links
}

// LinkedSpan is what a link leads to, when that span is stored: enough to name it and to measure
// the time between it and the linking span.
type LinkedSpan struct {
	SpanRef
	Service    string `db:"service"`
	Operation  string `db:"operation"`
	Kind       int16  `db:"kind"`
	StartNS    int64  `db:"start_ns"`
	DurationNS int64  `db:"duration_ns"`
}

// EndNS is when the span ended.
func (s *LinkedSpan) EndNS() int64 { return s.StartNS + s.DurationNS }

// MaxLagLinks is how many of a consumer span's links are followed to find its messages' producers.
// Batch consumers link to every message of a batch, in the order they were read: the first ones
// waited longest.
const MaxLagLinks = 16

// QueueProducer returns the producer span whose message a consumer span with links processed,
// among found (the spans its links lead to): of the producers its first MaxLagLinks links name, the
// one that ended first, i.e. the message that waited longest, which is what a consumer falling
// behind shows as. A consumer whose parent is a producer span takes that one instead.
func QueueProducer(links []Link, found map[SpanRef]LinkedSpan) (LinkedSpan, bool) {
	var best LinkedSpan
	ok := false
	for _, l := range links[:min(len(links), MaxLagLinks)] {
		if s, stored := found[l.SpanRef]; stored && s.Kind == KindProducer && (!ok || s.EndNS() < best.EndNS()) {
			best, ok = s, true
		}
	}
	return best, ok
}

// linkedPerQuery bounds the spans looked up by one statement, keeping its IN lists far below
// PostgreSQL's 65,535 parameters.
const linkedPerQuery = 1000

// LinkedSpans returns the stored spans among refs, by reference; refs not stored are absent. It is
// the one reader of spans by reference: of producers by their consumers at ingest (queue lag), and
// of the spans a trace links to.
func (t *Tenant) LinkedSpans(ctx context.Context, refs []SpanRef) (map[SpanRef]LinkedSpan, error) {
	out := make(map[SpanRef]LinkedSpan, len(refs))
	want := make(map[SpanRef]bool, len(refs))
	for _, r := range refs {
		want[r] = true
	}
	if t.db.dialect == Postgres {
		// Links come from OTLP bytes, so their ids are hex; one that is not names no stored span.
		refs = slices.DeleteFunc(slices.Clone(refs), func(r SpanRef) bool {
			_, errT := traceBytes(r.TraceID)
			_, errS := spanInt(r.SpanID)
			return errT != nil || errS != nil
		})
	}
	for i := 0; i < len(refs); i += linkedPerQuery {
		part := refs[i:min(i+linkedPerQuery, len(refs))]
		traces, ids := map[string]bool{}, map[string]bool{}
		for _, r := range part {
			traces[r.TraceID], ids[r.SpanID] = true, true
		}
		spanIDs, err := t.spanArgs(keys(ids))
		if err != nil {
			return nil, err
		}
		// Two IN lists rather than pairs: each is one index condition; the few extra rows their
		// cross product matches are dropped below.
		q, args, err := sqlx.In(`SELECT `+t.traceHex("trace_id")+` AS trace_id, `+t.spanHex("span_id")+` AS span_id,
				service, operation, kind, start_ns, duration_ns FROM spans
			WHERE tenant_id = ? AND trace_id IN (?) AND span_id IN (?)`, t.id, keys(traces), spanIDs)
		if err != nil {
			return nil, err
		}
		var rows []LinkedSpan
		if err := t.db.x.SelectContext(ctx, &rows, t.rebind(q), args...); err != nil {
			return nil, fmt.Errorf("read %d linked spans: %w", len(part), err)
		}
		for _, r := range rows {
			if want[r.SpanRef] {
				out[r.SpanRef] = r
			}
		}
	}
	return out, nil
}

// Bounds of LinkingSpans.
const (
	// ConsumerLookback is how long before a producer trace's start its consumers are looked for: a
	// consumer starts after the message is published, but hosts' clocks disagree a little.
	ConsumerLookback = int64(5 * time.Minute)
	// MaxConsumerTraces is how many consuming traces LinkingSpans counts, MaxConsumerDetails how many
	// of them (the first to start) it reads the consuming spans of.
	MaxConsumerTraces  = 1000
	MaxConsumerDetails = 20
)

// ConsumingSpan is a span of another trace that links to a span of a producer trace: usually a
// consumer that processed a message the producer trace published.
type ConsumingSpan struct {
	LinkedSpan
	Error bool   `db:"error"`
	Links []byte `db:"links"`
	// LinkedSpanID is the span of the producer trace it links to: the producer whose message waited
	// longest (QueueProducer), else its first link into the trace.
	LinkedSpanID string `db:"-"`
	// QueueLagNS is how long that message waited, the consumer's start less the producer's end; 0
	// when the linked span is no producer.
	QueueLagNS int64 `db:"-"`
}

// Consumers are the spans of other traces that link to a trace.
type Consumers struct {
	Spans   []ConsumingSpan // the linking spans of the first MaxConsumerDetails traces to start
	Traces  int             // traces that link to it, counted up to MaxConsumerTraces
	AtLeast bool            // Traces stopped at MaxConsumerTraces
}

// LinkingSpans returns the spans of other traces that link to trace traceID, which started at
// startNS: the consumers of the messages it produced. The attribute index finds their traces
// (LinkedTraceKey) from ConsumerLookback before startNS until now.
func (t *Tenant) LinkingSpans(ctx context.Context, traceID string, startNS int64) (Consumers, error) {
	var out Consumers
	traceID = strings.ToLower(traceID)
	from := startNS - ConsumerLookback
	var postings []struct {
		TraceID string `db:"trace_id"`
		StartNS int64  `db:"start_ns"`
	}
	// In start order, so the index's order serves the limit; a trace written in several batches
	// has a row per batch, so the count of traces may fall short of the rows read.
	if err := t.db.x.SelectContext(ctx, &postings, t.rebind(`SELECT `+t.traceHex("trace_id")+` AS trace_id, start_ns FROM span_attributes
		WHERE tenant_id = ? AND key = ? AND value = ? AND start_ns >= ? AND start_ns < ? ORDER BY start_ns LIMIT ?`),
		t.id, LinkedTraceKey, traceID, from, time.Now().UnixNano(), MaxConsumerTraces+1); err != nil {
		return out, fmt.Errorf("read the traces linking to trace %s: %w", traceID, err)
	}
	out.AtLeast = len(postings) > MaxConsumerTraces
	postings = postings[:min(len(postings), MaxConsumerTraces)]
	seen := map[string]bool{}
	var first []string
	for _, p := range postings {
		if !seen[p.TraceID] {
			seen[p.TraceID] = true
			if len(first) < MaxConsumerDetails {
				first = append(first, p.TraceID)
			}
		}
	}
	out.Traces = len(seen)
	if len(first) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT `+t.traceHex("trace_id")+` AS trace_id, `+t.spanHex("span_id")+` AS span_id,
			service, operation, kind, start_ns, duration_ns, CASE WHEN `+errorCond+` THEN 1 ELSE 0 END AS error, links
		FROM spans WHERE tenant_id = ? AND trace_id IN (?) AND start_ns >= ? AND links IS NOT NULL ORDER BY start_ns`, t.id, first, from)
	if err != nil {
		return out, err
	}
	var spans []ConsumingSpan
	if err := t.db.x.SelectContext(ctx, &spans, t.rebind(q), args...); err != nil {
		return out, fmt.Errorf("read the spans linking to trace %s: %w", traceID, err)
	}
	into := map[SpanRef][]Link{} // per span, its links into the trace
	var refs []SpanRef
	for _, s := range spans {
		for _, l := range ParseLinks(s.Links) {
			if strings.EqualFold(l.TraceID, traceID) {
				into[s.SpanRef] = append(into[s.SpanRef], l)
				if len(into[s.SpanRef]) <= MaxLagLinks {
					refs = append(refs, l.SpanRef)
				}
			}
		}
	}
	found, err := t.LinkedSpans(ctx, refs)
	if err != nil {
		return out, err
	}
	for _, s := range spans {
		links := into[s.SpanRef]
		if len(links) == 0 {
			continue // a span linking elsewhere only
		}
		s.LinkedSpanID = links[0].SpanID
		if p, ok := QueueProducer(links, found); ok {
			s.LinkedSpanID, s.QueueLagNS = p.SpanID, max(s.StartNS-p.EndNS(), 0)
		}
		s.Links = nil
		out.Spans = append(out.Spans, s)
	}
	return out, nil
}
