package store

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

// TraceQuery selects requests (entry spans). Without Service only root spans match, so each trace
// appears once; with Service, that service's entry spans match.
type TraceQuery struct {
	From, To      int64 // [From, To) on start time
	Service       string
	Operation     string
	ErrorsOnly    bool
	OKOnly        bool
	MinDurationNS int64
	MaxDurationNS int64 // 0: no bound
	// Attributes are equality filters. An indexed key (AttributeIndex) matches when any span of the
	// request's trace, or its resource, carries the value; a promoted key (http.route, host.name, …)
	// must be the request's own value, read from its column; other keys are read from the request's
	// own attributes.
	Attributes     map[string]string
	SortByDuration bool      // slowest first; otherwise newest first
	After          *TraceKey // keyset position: rows strictly after this one in sort order
	Limit          int
}

// TraceKey is a position in a TraceQuery's order. Its short JSON names keep cursors short.
type TraceKey struct {
	Key     int64  `json:"k"` // start_ns or duration_ns, following the sort
	TraceID string `json:"t"`
	SpanID  string `json:"s"`
}

// TraceHit is one matching request.
type TraceHit struct {
	TraceID        string `db:"trace_id"`
	SpanID         string `db:"span_id"`
	Service        string `db:"service"`
	ServiceVersion string `db:"service_version"`
	Operation      string `db:"operation"`
	StartNS        int64  `db:"start_ns"`
	DurationNS     int64  `db:"duration_ns"`
	Error          bool   `db:"error"`
	StatusMessage  string `db:"status_message"`
	HTTPRoute      string `db:"http_route"`
	HTTPStatusCode int32  `db:"http_status_code"`
}

// Key returns the hit's position for TraceQuery.After.
func (h TraceHit) Key(byDuration bool) TraceKey {
	k := h.StartNS
	if byDuration {
		k = h.DurationNS
	}
	return TraceKey{Key: k, TraceID: h.TraceID, SpanID: h.SpanID}
}

// promoted maps attribute keys that ingest copies into columns to those columns, so filters on them
// use plain comparisons. Ingest does not repeat in a span's attributes JSON a value its column holds
// whole, so these keys must be read from the columns.
var promoted = map[string]string{
	"http.route":                "http_route",
	"http.request.method":       "http_method",
	"http.method":               "http_method",
	"http.response.status_code": "http_status_code",
	"http.status_code":          "http_status_code",
	"db.system":                 "db_system",
	"db.system.name":            "db_system",
	"db.statement":              "db_statement",
	"db.query.text":             "db_statement",
	"rpc.service":               "rpc_service",
	"rpc.method":                "rpc_method",
	"peer.service":              "peer_service",
	"host.name":                 "host_name",
	"service.version":           "service_version",
}

// IntegerAttribute reports whether filtering on key compares integers, so callers can reject
// non-numeric values before querying.
func IntegerAttribute(key string) bool { return promoted[key] == "http_status_code" }

// traceWhere splits q's conditions: base selects the entry spans an index walks (tenant, window,
// service, and the traces an attribute index lookup found), filter the rest. none reports that an
// indexed attribute filter matches no trace at all.
func (t *Tenant) traceWhere(ctx context.Context, q TraceQuery) (base, w where, none bool, err error) {
	base = t.entrySpans(q.From, q.To)
	if q.Service != "" {
		base.add("service = ?", q.Service)
	} else {
		w.add(t.isRoot())
	}
	if q.Operation != "" {
		w.add("operation = ?", q.Operation)
	}
	if q.ErrorsOnly {
		w.add(errorCond)
	}
	if q.OKOnly {
		w.add("NOT " + errorCond)
	}
	if q.MinDurationNS > 0 {
		w.add("duration_ns >= ?", q.MinDurationNS)
	}
	if q.MaxDurationNS > 0 {
		w.add("duration_ns <= ?", q.MaxDurationNS)
	}
	keys := make([]string, 0, len(q.Attributes))
	for k := range q.Attributes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	indexed, err := t.indexedKeys(ctx, keys, q.From, q.To)
	if err != nil {
		return base, w, false, err
	}
	var traces []foundTrace // the traces every selective indexed filter found; nil: no such filter
	for _, k := range keys {
		v := q.Attributes[k]
		col, ok := promoted[k]
		if indexed[k] && len(v) <= maxIndexedValueBytes {
			ids, all, err := t.attributeTraces(ctx, k, v, q.From, q.To)
			switch {
			case err != nil:
				return base, w, false, err
			case all && traces == nil:
				traces = ids
			case all:
				traces = intersect(traces, ids)
			default: // too many traces to list: join the index
				w.add("trace_id IN (SELECT trace_id FROM span_attributes WHERE tenant_id = ? AND key = ? AND value = ? AND start_ns >= ? AND start_ns < ?)",
					t.id, k, v, q.From-attributeSlack, q.To+attributeSlack)
			}
			if traces != nil && len(traces) == 0 {
				return base, w, true, nil
			}
			if !ok {
				continue // any span of the trace, or its resource, may carry it
			}
			// A promoted key describes the request itself: its own span must carry the value too.
		}
		switch {
		case ok && IntegerAttribute(k):
			n, err := strconv.Atoi(v)
			if err != nil {
				return base, w, false, fmt.Errorf("attribute %s compares integers, got %q", k, v)
			}
			w.add(col+" = ?", n)
		case ok && (col == "host_name" || col == "service_version"):
			cond, args := t.resourceIs(col, v)
			w.add(cond, args...)
		case ok && v == "" && t.db.dialect == Postgres && nullableTexts[col]:
			w.add(col + " IS NULL") // stored empty as NULL
		case ok:
			w.add(col+" = ?", v)
		default:
			expr, arg := t.jsonText("attributes", k)
			w.add(expr+" = ?", arg, v)
		}
	}
	base.traces = traces
	return base, w, false, nil
}

// SearchTraces returns up to q.Limit requests matching q, in q's order.
func (t *Tenant) SearchTraces(ctx context.Context, q TraceQuery) ([]TraceHit, error) {
	w, filter, none, err := t.traceWhere(ctx, q)
	if err != nil || none {
		return nil, err
	}
	w.conds, w.args = append(w.conds, filter.conds...), append(w.args, filter.args...)
	key := "start_ns"
	if q.SortByDuration {
		key = "duration_ns"
	}
	if q.After != nil {
		if _, err := traceBytes(q.After.TraceID); err != nil && t.db.dialect == Postgres {
			return nil, fmt.Errorf("search traces after %+v: %w", *q.After, err)
		}
		span, err := t.spanArg(q.After.SpanID)
		if err != nil {
			return nil, fmt.Errorf("search traces after %+v: %w", *q.After, err)
		}
		w.add("("+key+", spans.trace_id, spans.span_id) < (?, ?, ?)", q.After.Key, q.After.TraceID, span)
	}
	if w.traces != nil && !q.SortByDuration && len(w.traces) > newestBatch {
		return t.searchNewest(ctx, w, q.Limit)
	}
	return t.searchPage(ctx, w, key, q.Limit)
}

// newestBatch is how many found traces a newest-first search reads first; each further read takes
// four times as many.
const newestBatch = 32

// searchNewest finds the newest limit requests of the traces an index lookup found, reading the
// traces newest posting first in growing batches until no unread trace can have a newer request:
// a value carried by 2,000 requests of a day read all their entry spans (8,000 heap buffers,
// 150–400 ms at 50 M spans) to show the newest ten.
func (t *Tenant) searchNewest(ctx context.Context, w where, limit int) ([]TraceHit, error) {
	found := slices.Clone(w.traces)
	slices.SortFunc(found, func(a, b foundTrace) int { return cmp.Compare(b.last, a.last) })
	var out []TraceHit
	for read, n := 0, newestBatch; read < len(found); read, n = read+n, 4*n {
		w.traces = found[read:min(read+n, len(found))]
		hits, err := t.searchPage(ctx, w, "start_ns", limit)
		if err != nil {
			return nil, err
		}
		out = append(out, hits...)
		slices.SortFunc(out, func(a, b TraceHit) int {
			return cmp.Or(cmp.Compare(b.StartNS, a.StartNS), strings.Compare(b.TraceID, a.TraceID), strings.Compare(b.SpanID, a.SpanID))
		})
		out = out[:min(len(out), limit)]
		// An unread trace's requests start before its newest posting + attributeSlack.
		if next := read + n; next < len(found) && len(out) == limit && out[limit-1].StartNS > found[next].last+attributeSlack {
			break
		}
	}
	return out, nil
}

// searchPage returns the first limit requests selected by w in key order, newest or slowest first.
func (t *Tenant) searchPage(ctx context.Context, w where, key string, limit int) ([]TraceHit, error) {
	w.conds, w.args = slices.Clip(w.conds), slices.Clip(w.args) // spans may add to them: keep the caller's
	order := key
	if w.traces != nil {
		// The index found the traces: sorting them is cheap, while walking the window's entry spans in
		// key order and filtering by trace (the plan the bare column invites under LIMIT) read all of
		// a day's requests on the benchmark.
		order += " + 0"
	}
	from, args, err := t.spans(&w)
	if err != nil {
		return nil, err
	}
	// Ordered by the stored ids, which order as their hex (ids.go).
	query := `SELECT ` + t.traceHex("spans.trace_id") + ` AS trace_id, ` + t.spanHex("spans.span_id") + ` AS span_id,
			service, ` + t.resourceText("service_version") + `, operation, start_ns, duration_ns,
			CASE WHEN ` + errorCond + ` THEN 1 ELSE 0 END AS error, ` + t.text("status_message") + `, ` + t.text("http_route") + `,
			http_status_code
		FROM ` + from + t.resourceJoin() + w.sql() + ` ORDER BY ` + order + ` DESC, spans.trace_id DESC, spans.span_id DESC LIMIT ?`
	args = append(append(args, w.args...), limit)
	if w.traces != nil {
		args = t.byValue(args)
	}
	var out []TraceHit
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(query), args...); err != nil {
		return nil, fmt.Errorf("search traces: %w", err)
	}
	return out, nil
}

// CountScan bounds the entry spans CountTraces reads: a selective filter over a busy window would
// otherwise read the whole window (spans of an hour lie on as many heap pages) to find its matches.
const CountScan = 2000

// TraceCount is what CountTraces found: Hits matching requests among Scanned read. Unless Exact,
// Scanned is the first CountScan requests of the window (and service), and callers extrapolate from
// the window's request count; or, when Extrapolated, Hits is already an estimate of the whole count
// from a sample of the traces an index lookup listed.
type TraceCount struct {
	Hits, Scanned int
	Exact         bool
	Extrapolated  bool
}

// countSample is how many listed traces CountTraces reads when there are more than twice as many.
const countSample = 256

// CountTraces counts the requests matching q (ignoring After and Limit). When an indexed attribute
// listed its traces, they are the whole population: it counts root requests without other filters
// from the postings, and otherwise reads the requests of all of them, or of an even sample of them
// when more than 2*countSample (2,000 traces read 8,000 heap buffers, 150–400 ms at 50 M spans).
// Otherwise it reads the first CountScan requests of the window (and service).
func (t *Tenant) CountTraces(ctx context.Context, q TraceQuery) (TraceCount, error) {
	base, filter, none, err := t.traceWhere(ctx, q)
	if err != nil || none {
		return TraceCount{Exact: true}, err
	}
	var sure int
	if base.traces != nil && q.Service == "" && len(filter.conds) == 1 {
		// Root requests filtered by listed values only: a trace with a posting at least
		// attributeSlack inside the window has its root in the window (the index's premise), so
		// only traces near its edges are read.
		var edge []foundTrace
		inside := func(ns int64) bool { return ns >= q.From+attributeSlack && ns < q.To-attributeSlack }
		for _, f := range base.traces {
			if inside(f.first) || inside(f.last) {
				sure++
			} else {
				edge = append(edge, f)
			}
		}
		if len(edge) == 0 {
			return TraceCount{Hits: sure, Scanned: sure, Exact: true}, nil
		}
		base.traces = edge
	}
	listed, sampled := len(base.traces), false
	if listed > 2*countSample {
		// Trace ids are random and the list is sorted by id: every n-th is an even sample.
		sample := make([]foundTrace, 0, countSample+1)
		for i := 0; i < listed; i += listed / countSample {
			sample = append(sample, base.traces[i])
		}
		base.traces, sampled = sample, true
	}
	hit := "1"
	if len(filter.conds) > 0 {
		hit = "CASE WHEN " + strings.Join(filter.conds, " AND ") + " THEN 1 ELSE 0 END"
	}
	var c struct {
		Scanned int `db:"scanned"`
		Hits    int `db:"hits"`
	}
	from, fromArgs, err := t.spans(&base)
	if err != nil {
		return TraceCount{}, err
	}
	limit := ""
	args := append(append(filter.args, fromArgs...), base.args...)
	if base.traces == nil {
		limit = " LIMIT ?"
		args = append(args, CountScan)
	}
	query := `SELECT COUNT(*) AS scanned, COALESCE(SUM(hit), 0) AS hits FROM (SELECT ` + hit + ` AS hit FROM ` + from + base.sql() + limit + `) c`
	if base.traces != nil {
		args = t.byValue(args)
	}
	if err := t.db.x.GetContext(ctx, &c, t.rebind(query), args...); err != nil {
		return TraceCount{}, fmt.Errorf("count traces: %w", err)
	}
	if sampled {
		est := int(math.Round(float64(c.Hits) * float64(listed) / float64(len(base.traces))))
		return TraceCount{Hits: sure + est, Scanned: sure + c.Scanned, Extrapolated: true}, nil
	}
	return TraceCount{Hits: sure + c.Hits, Scanned: sure + c.Scanned, Exact: base.traces != nil || c.Scanned < CountScan}, nil
}

// TraceOverview summarises a whole trace.
type TraceOverview struct {
	TraceID       string
	SpanCount     int
	ErrorCount    int
	Services      []string // by span count, most first
	RootService   string
	RootOperation string
	StartNS       int64
	EndNS         int64
}

// TraceOverviews summarises the given traces; traces with no stored span are absent from the map.
func (t *Tenant) TraceOverviews(ctx context.Context, traceIDs []string) (map[string]*TraceOverview, error) {
	out := map[string]*TraceOverview{}
	if len(traceIDs) == 0 {
		return out, nil
	}
	if traceIDs = t.storedTraces(traceIDs); len(traceIDs) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT `+t.traceHex("trace_id")+` AS trace_id, service, COUNT(*) AS spans,
			SUM(CASE WHEN `+errorCond+` THEN 1 ELSE 0 END) AS errors,
			MIN(start_ns) AS start_ns, MAX(start_ns + duration_ns) AS end_ns,
			MAX(CASE WHEN `+t.isRoot()+` THEN operation ELSE '' END) AS root_op,
			MAX(CASE WHEN `+t.isRoot()+` THEN 1 ELSE 0 END) AS has_root
		FROM spans WHERE tenant_id = ? AND trace_id IN (?) GROUP BY spans.trace_id, service`, t.id, traceIDs)
	if err != nil {
		return nil, err
	}
	var rows []struct {
		TraceID string `db:"trace_id"`
		Service string `db:"service"`
		Spans   int    `db:"spans"`
		Errors  int    `db:"errors"`
		StartNS int64  `db:"start_ns"`
		EndNS   int64  `db:"end_ns"`
		RootOp  string `db:"root_op"`
		HasRoot int    `db:"has_root"`
	}
	if err := t.db.x.SelectContext(ctx, &rows, t.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("summarise traces: %w", err)
	}
	counts := map[string]map[string]int{}
	for _, r := range rows {
		o := out[r.TraceID]
		if o == nil {
			o = &TraceOverview{TraceID: r.TraceID, StartNS: r.StartNS, EndNS: r.EndNS}
			out[r.TraceID] = o
			counts[r.TraceID] = map[string]int{}
		}
		o.SpanCount += r.Spans
		o.ErrorCount += r.Errors
		o.StartNS = min(o.StartNS, r.StartNS)
		o.EndNS = max(o.EndNS, r.EndNS)
		o.Services = append(o.Services, r.Service)
		counts[r.TraceID][r.Service] = r.Spans
		if r.HasRoot == 1 {
			o.RootService, o.RootOperation = r.Service, r.RootOp
		}
	}
	for id, o := range out {
		c := counts[id]
		sort.Slice(o.Services, func(i, j int) bool {
			a, b := o.Services[i], o.Services[j]
			return c[a] > c[b] || (c[a] == c[b] && a < b)
		})
	}
	return out, nil
}

// TraceSpan is a span without its attributes and events: enough to build a waterfall of a large
// trace. Links (rare, and short) come along, so the waterfall can name the spans they lead to.
type TraceSpan struct {
	SpanID         string `db:"span_id"`
	ParentSpanID   string `db:"parent_span_id"`
	Service        string `db:"service"`
	ServiceVersion string `db:"service_version"`
	Operation      string `db:"operation"`
	Kind           int16  `db:"kind"`
	StartNS        int64  `db:"start_ns"`
	DurationNS     int64  `db:"duration_ns"`
	Error          bool   `db:"error"`
	StatusMessage  string `db:"status_message"`
	HTTPRoute      string `db:"http_route"`
	HTTPStatusCode int32  `db:"http_status_code"`
	DBSystem       string `db:"db_system"`
	DBStatement    string `db:"db_statement"`
	PeerService    string `db:"peer_service"`
	Links          []byte `db:"links"` // as Span.Links
}

// TreeFields places the span in its trace's tree (tracetree.Build).
func (s *TraceSpan) TreeFields() (id, parentID string, startNS, durationNS int64) {
	return s.SpanID, s.ParentSpanID, s.StartNS, s.DurationNS
}

// statementChars bounds the statement text read per span: a waterfall shows a prefix anyway.
const statementChars = 300

// TraceSpans returns up to limit spans of a trace ordered by start time, and the trace's total span
// count (which exceeds len(result) when the trace was cut at limit).
func (t *Tenant) TraceSpans(ctx context.Context, traceID string, limit int) ([]TraceSpan, int, error) {
	var out []TraceSpan
	if len(t.storedTraces([]string{traceID})) == 0 {
		return nil, 0, nil
	}
	q := `SELECT ` + t.spanHex("span_id") + ` AS span_id, ` + t.spanHex("parent_span_id") + ` AS parent_span_id,
			service, ` + t.resourceText("service_version") + `, operation, kind, start_ns, duration_ns,
			CASE WHEN ` + errorCond + ` THEN 1 ELSE 0 END AS error, ` + t.text("status_message") + `, ` + t.text("http_route") + `,
			http_status_code, ` + t.text("db_system") + `, ` + t.textOf("substr(db_statement, 1, "+strconv.Itoa(statementChars)+")", "db_statement") + `,
			` + t.text("peer_service") + `, links
		FROM spans` + t.resourceJoin() + ` WHERE tenant_id = ? AND trace_id = ? ORDER BY start_ns, spans.span_id LIMIT ?`
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(q), t.id, traceID, limit); err != nil {
		return nil, 0, fmt.Errorf("read trace %s: %w", traceID, err)
	}
	total := len(out)
	if total == limit {
		if err := t.db.x.GetContext(ctx, &total, t.rebind(`SELECT COUNT(*) FROM spans WHERE tenant_id = ? AND trace_id = ?`), t.id, traceID); err != nil {
			return nil, 0, fmt.Errorf("count spans of trace %s: %w", traceID, err)
		}
	}
	return out, total, nil
}

// SpanData is a span's captured JSON: attributes and events.
type SpanData struct {
	SpanID     string `db:"span_id"`
	Attributes []byte `db:"attributes"`
	Events     []byte `db:"events"`
}

// SpansData returns the attributes and events of the given spans of a trace.
func (t *Tenant) SpansData(ctx context.Context, traceID string, spanIDs []string) ([]SpanData, error) {
	if len(spanIDs) == 0 || len(t.storedTraces([]string{traceID})) == 0 {
		return nil, nil
	}
	ids, err := t.spanArgs(spanIDs)
	if err != nil {
		return nil, fmt.Errorf("read span details of trace %s: %w", traceID, err)
	}
	q, args, err := sqlx.In(`SELECT `+t.spanHex("span_id")+` AS span_id, attributes, events FROM spans
		WHERE tenant_id = ? AND trace_id = ? AND span_id IN (?)`, t.id, traceID, ids)
	if err != nil {
		return nil, err
	}
	var out []SpanData
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read span details of trace %s: %w", traceID, err)
	}
	return out, nil
}
