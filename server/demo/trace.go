package demo

import (
	"slices"
	"strconv"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Span flags as current SDKs send them: W3C sampled, and whether the parent came over the wire.
const (
	flagSampled     = 0x1
	flagHasIsRemote = 0x100
	flagIsRemote    = 0x200
)

const (
	server   = tracepb.Span_SPAN_KIND_SERVER
	client   = tracepb.Span_SPAN_KIND_CLIENT
	internal = tracepb.Span_SPAN_KIND_INTERNAL
	producer = tracepb.Span_SPAN_KIND_PRODUCER
	consumer = tracepb.Span_SPAN_KIND_CONSUMER
)

// span is a span under construction together with where it will be reported from.
type span struct {
	pb    *tracepb.Span
	res   *resource
	scope *commonpb.InstrumentationScope
}

// trace builds the spans of one trace. Handlers thread time through explicitly: each takes the time it
// starts and returns the time it ends, so parents always enclose their children.
type trace struct {
	g     *generator
	id    []byte
	at    int64 // when the trace started; decides which incidents it falls in
	spans []*span
	llm   int
	// linked counts the traces of its own that processing its messages started (openLinked).
	linked int
}

func (t *trace) open(parent *span, res *resource, sc *commonpb.InstrumentationScope, kind tracepb.Span_SpanKind, name string, start int64, attrs ...*commonpb.KeyValue) *span {
	id := t.id
	if parent != nil {
		id = parent.pb.TraceId // a linked span's children are in its trace (openLinked)
	}
	s := &span{res: res, scope: sc, pb: &tracepb.Span{
		TraceId:           id,
		SpanId:            t.g.spanID(),
		Name:              name,
		Kind:              kind,
		StartTimeUnixNano: uint64(start),
		Attributes:        attrs,
		Flags:             flagSampled | flagHasIsRemote,
	}}
	if parent != nil {
		s.pb.ParentSpanId = parent.pb.SpanId
		if kind == server || kind == consumer {
			s.pb.Flags |= flagIsRemote
		}
	}
	t.spans = append(t.spans, s)
	return s
}

// openLinked opens a span that starts a trace of its own with a span link to from: how consumers
// that read messages in batches (and many Kafka clients) record processing a message, instead of
// continuing the producer's trace. The new trace's id is derived from from's span id, so the
// generator's random stream, and every other trace of the day, stays as it was.
func (t *trace) openLinked(from *span, res *resource, sc *commonpb.InstrumentationScope, kind tracepb.Span_SpanKind, name string, start int64, attrs ...*commonpb.KeyValue) *span {
	s := t.open(nil, res, sc, kind, name, start, attrs...)
	id := slices.Clone(t.id)
	for i, b := range from.pb.SpanId {
		id[i] ^= b
	}
	s.pb.TraceId = id
	s.pb.Links = []*tracepb.Span_Link{{TraceId: from.pb.TraceId, SpanId: from.pb.SpanId, Flags: flagSampled | flagHasIsRemote | flagIsRemote}}
	t.linked++
	return s
}

// child opens a span in the same pod as parent.
func (t *trace) child(parent *span, sc *commonpb.InstrumentationScope, kind tracepb.Span_SpanKind, name string, start int64, attrs ...*commonpb.KeyValue) *span {
	return t.open(parent, parent.res, sc, kind, name, start, attrs...)
}

func (s *span) end(at int64) int64 {
	s.pb.EndTimeUnixNano = uint64(at)
	return at
}

func (s *span) set(attrs ...*commonpb.KeyValue) {
	s.pb.Attributes = append(s.pb.Attributes, attrs...)
}

// fail marks the span as failed with msg; when excType is set it also records the exception event that
// SDKs add for a raised exception.
func (s *span) fail(at int64, msg, excType string) {
	s.pb.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: msg}
	if excType == "" {
		return
	}
	s.pb.Events = append(s.pb.Events, &tracepb.Span_Event{
		TimeUnixNano: uint64(at),
		Name:         "exception",
		Attributes:   []*commonpb.KeyValue{str("exception.type", excType), str("exception.message", msg)},
	})
}

// reply is how an HTTP handler finished.
type reply struct {
	end  int64
	code int
	err  string // status message of a 5xx, passed up so callers can say what failed
}

func ok(end int64, code int) reply { return reply{end: end, code: code} }

// call is an HTTP request from the pod of from to a pod of to: a CLIENT span in the caller, a SERVER
// span in the callee, and handle doing the callee's work between them.
func (t *trace) call(from *span, to *service, method, route, path string, at int64, handle func(srv *span, at int64) reply) reply {
	name := method + " " + route
	cl := t.child(from, from.res.svc.scopes.client, client, name, at,
		str("http.request.method", method),
		str("server.address", to.name),
		i64("server.port", int64(to.port)),
		str("url.full", "http://"+to.name+":"+strconv.Itoa(to.port)+path),
		str("peer.service", to.name))
	arrive := at + t.g.lognorm(0.4, 1.5)
	srv := t.open(cl, t.g.pod(to, t.at), to.scopes.server, server, name, arrive,
		str("http.request.method", method),
		str("http.route", route),
		str("url.path", path),
		str("url.scheme", "http"),
		str("network.protocol.version", "1.1"))
	r := handle(srv, arrive+t.g.lognorm(0.05, 0.3))
	r.end += t.neighbourDelay(srv)
	srv.set(i64("http.response.status_code", int64(r.code)))
	if r.code >= 500 {
		// Server spans count only 5xx as errors: a 4xx is the client's fault.
		if srv.pb.Status == nil {
			srv.fail(r.end, r.err, "")
		}
	}
	srv.end(r.end)
	back := r.end + t.g.lognorm(0.3, 1.2)
	cl.set(i64("http.response.status_code", int64(r.code)))
	if r.code >= 400 {
		cl.set(str("error.type", strconv.Itoa(r.code)))
		cl.fail(back, "", "")
	}
	cl.end(back)
	return reply{end: back, code: r.code, err: r.err}
}

// db is one database call from parent's pod, lasting dur nanoseconds.
func (t *trace) db(parent *span, d *database, op, table, stmt string, at, dur int64) *span {
	sc := parent.res.svc.scopes.postgres
	name := op + " " + table
	if d.system == "redis" {
		sc = parent.res.svc.scopes.redis
		name = op
	}
	s := t.child(parent, sc, client, name, at,
		str("db.system", d.system),
		str("db.namespace", d.name),
		str("db.operation.name", op),
		str("db.statement", stmt),
		str("server.address", d.host),
		i64("server.port", int64(d.port)))
	if d.system != "redis" {
		s.set(str("db.collection.name", table))
	}
	s.end(at + dur)
	return s
}

// work is an INTERNAL span of the service's own code.
func (t *trace) work(parent *span, name string, at, dur int64, attrs ...*commonpb.KeyValue) *span {
	s := t.child(parent, parent.res.svc.app, internal, name, at, attrs...)
	s.end(at + dur)
	return s
}

// Attribute constructors.

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func i64(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func f64(k string, v float64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: v}}}
}

func strs(k string, vs ...string) *commonpb.KeyValue {
	arr := &commonpb.ArrayValue{Values: make([]*commonpb.AnyValue, len(vs))}
	for i, v := range vs {
		arr.Values[i] = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
	}
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: arr}}}
}

// done is when the span ended.
func (s *span) done() int64 { return int64(s.pb.EndTimeUnixNano) }
