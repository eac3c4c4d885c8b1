package demo

import (
	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

const schemaURL = "https://opentelemetry.io/schemas/1.37.0"

// batch is one OTLP export request, grouped by resource and scope the way an SDK's exporter (or a
// collector) would send it.
type batch struct {
	req                *collectortracepb.ExportTraceServiceRequest
	byResource         map[*resource]*tracepb.ResourceSpans
	byScope            map[scopeKey]*tracepb.ScopeSpans
	spans, traces, llm int
}

type scopeKey struct {
	res   *resource
	scope *commonpb.InstrumentationScope
}

func newBatch() *batch {
	return &batch{
		req:        &collectortracepb.ExportTraceServiceRequest{},
		byResource: map[*resource]*tracepb.ResourceSpans{},
		byScope:    map[scopeKey]*tracepb.ScopeSpans{},
	}
}

func (b *batch) add(t *trace) {
	for _, s := range t.spans {
		k := scopeKey{s.res, s.scope}
		ss := b.byScope[k]
		if ss == nil {
			rs := b.byResource[s.res]
			if rs == nil {
				rs = &tracepb.ResourceSpans{Resource: s.res.pb, SchemaUrl: schemaURL}
				b.byResource[s.res] = rs
				b.req.ResourceSpans = append(b.req.ResourceSpans, rs)
			}
			ss = &tracepb.ScopeSpans{Scope: s.scope}
			b.byScope[k] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, s.pb)
	}
	b.spans += len(t.spans)
	b.traces += 1 + t.linked
	b.llm += t.llm
}
