package mcpserver

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

type searchTracesIn struct {
	Service       string         `json:"service,omitempty" jsonschema:"match this service's incoming requests; default: root requests"`
	Operation     string         `json:"operation,omitempty"`
	Status        string         `json:"status,omitempty"`
	MinDurationMS float64        `json:"min_duration_ms,omitempty"`
	MaxDurationMS float64        `json:"max_duration_ms,omitempty"`
	Attributes    map[string]any `json:"attributes,omitempty" jsonschema:"equality filters, e.g. {\"http.route\":\"/pay\",\"http.response.status_code\":500}"`
	Sort          string         `json:"sort,omitempty"`
	CountBy       string         `json:"count_by,omitempty" jsonschema:"attribute key to count the matching requests by, e.g. user.id (which users are affected); * lists the keys their spans carry"`
	Window
	Page
}

type traceRow struct {
	TraceID    string   `json:"trace_id"`
	SpanID     string   `json:"span_id"`
	Service    string   `json:"service"`
	Version    string   `json:"version,omitempty"`
	Operation  string   `json:"operation"`
	Start      string   `json:"start"`
	DurationMS float64  `json:"duration_ms"`
	Error      bool     `json:"error"`
	Status     any      `json:"status,omitempty"` // captured status message
	HTTPStatus int32    `json:"http_status,omitempty"`
	Root       string   `json:"root,omitempty"` // "service operation" of the trace's root when it is another span
	Services   []string `json:"services,omitempty"`
	Spans      int      `json:"spans,omitempty"`
	Errors     int      `json:"errors,omitempty"` // failed spans in the whole trace

	nServices int // before Services was cut
}

// versionRow compares a service's versions in the window (first page of a service search only).
type versionRow struct {
	Version      string  `json:"version"`
	Requests     int64   `json:"requests"`
	ErrorPct     float64 `json:"error_pct"`
	P50MS        float64 `json:"p50_ms"`
	P95MS        float64 `json:"p95_ms"`
	First        string  `json:"first"`
	Last         string  `json:"last"`
	P95Trace     string  `json:"p95_trace"` // a request at the version's p95
	p50NS, p95NS int64
}

// anomalyRef names an anomaly of the searched service that overlaps the window.
type anomalyRef struct {
	ID       string `json:"id"`
	Metric   string `json:"metric"`
	Severity string `json:"severity"`
	Started  string `json:"started"`
	Ended    string `json:"ended,omitempty"`
}

type searchTracesOut struct {
	Traces    []traceRow   `json:"traces"`
	Versions  []versionRow `json:"versions,omitempty"`
	Anomalies []anomalyRef `json:"anomalies,omitempty"`
	Counts    *counts      `json:"counts,omitempty"`
	List
}

func (tl *tools) addSearchTraces(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "search_traces",
		Description: "Find requests by service, operation, status, duration, attributes and time; newest or slowest first. " +
			"Each row: trace_id, duration, error, services touched, span count. Then get_trace_detail explains a slow or failed one.",
	}, func(p map[string]*jsonschema.Schema) {
		enum(p["status"], "error", "ok")
		enum(p["sort"], "start", "duration")
		def(p["sort"], "start")
		// Any value type: a union of string, number and boolean is refused by clients that map schemas
		// onto one-type dialects; attributeFilters checks the values.
		p["attributes"].AdditionalProperties = nil
		windowSchema(p, "1h")
		pageSchema(p, 10, 100)
	}, tl.searchTraces)
}

func (tl *tools) searchTraces(ctx context.Context, tn *store.Tenant, in searchTracesIn) (searchTracesOut, string, error) {
	var out searchTracesOut
	byDuration := in.Sort == "duration"
	var pos store.TraceKey
	from, to, paging, err := pageWindow(ctx, in.Window, in.Page, in, &pos, tl.now(), time.Hour)
	if err != nil {
		return out, "", err
	}
	q, err := traceQuery(in, from, to)
	if err != nil {
		return out, "", err
	}
	if paging {
		q.After = &pos
	}
	limit := clamp(in.Limit, 1, 100, 10)
	q.Limit = limit + 1
	hits, err := tn.SearchTraces(ctx, q)
	if err != nil {
		return out, "", err
	}
	ids := make([]string, 0, len(hits))
	for _, h := range hits {
		ids = append(ids, h.TraceID)
	}
	overviews, err := tn.TraceOverviews(ctx, ids)
	if err != nil {
		return out, "", err
	}
	b := newBudget(in.MaxTokens)
	if in.Service != "" && !paging {
		if err := serviceContext(ctx, tn, in.Service, from, to, &out); err != nil {
			return out, "", err
		}
		b.fit(out.Versions, contextText(out))
		b.fit(out.Anomalies, "")
	}
	var lines strings.Builder
	out.Traces = []traceRow{}
	for i, h := range hits {
		if i == limit {
			out.Truncated = true
			break
		}
		row := newTraceRow(h, overviews[h.TraceID])
		line := row.line()
		if !b.fit(row, line) {
			out.Truncated = true
			break
		}
		out.Traces = append(out.Traces, row)
		lines.WriteString(line)
	}
	out.Window, out.Returned = timeRange(from, to), len(out.Traces)
	if out.Truncated {
		last := hits[len(out.Traces)-1].Key(byDuration)
		out.NextCursor = encodeCursor(ctx, in, from, to, last)
	}
	if out.Total, out.TotalEstimated, err = countTraces(ctx, tn, q); err != nil {
		return out, "", err
	}
	if in.CountBy != "" && !paging {
		if out.Counts, err = countBy(ctx, tn, q, in.CountBy); err != nil {
			return out, "", err
		}
	}
	out.Note, out.Next = traceSuggestions(in, out)

	text := listHeader(traceListTitle(in), out.List) + lines.String() + contextText(out) + out.Counts.text()
	if strings.Contains(text, "«") {
		text += capturedLegend + "\n"
	}
	return out, text + footer(out.Note, out.Next), nil
}

// traceQuery is the store query of the arguments over [from, to).
func traceQuery(in searchTracesIn, from, to time.Time) (store.TraceQuery, error) {
	q := store.TraceQuery{From: from.UnixNano(), To: to.UnixNano(), Service: in.Service, Operation: in.Operation,
		ErrorsOnly: in.Status == "error", OKOnly: in.Status == "ok", SortByDuration: in.Sort == "duration",
		MinDurationNS: int64(in.MinDurationMS * 1e6), MaxDurationNS: int64(in.MaxDurationMS * 1e6)}
	if in.MaxDurationMS > 0 && in.MaxDurationMS < in.MinDurationMS {
		return q, badArg("max_duration_ms %v is below min_duration_ms %v", in.MaxDurationMS, in.MinDurationMS)
	}
	var err error
	q.Attributes, err = attributeFilters(in.Attributes)
	return q, err
}

// traceListTitle says what the list holds, in which order.
func traceListTitle(in searchTracesIn) string {
	what := "requests"
	if in.Service != "" {
		what = in.Service + " requests"
	}
	if in.Sort == "duration" {
		return what + ", slowest first"
	}
	return what + ", newest first"
}

// attributeFilters turns attribute arguments into the store's string equality filters.
func attributeFilters(attrs map[string]any) (map[string]string, error) {
	if len(attrs) == 0 {
		return nil, nil
	}
	out := make(map[string]string, len(attrs))
	for k, v := range attrs {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		case float64:
			s = strconv.FormatFloat(x, 'f', -1, 64)
		case bool:
			s = strconv.FormatBool(x)
		default:
			return nil, badArg("attribute %q: give a string, number or boolean to compare with, not %s", k, jsonKind(v))
		}
		if store.IntegerAttribute(k) {
			if _, err := strconv.Atoi(s); err != nil {
				return nil, badArg("attribute %q compares whole numbers: got %q", k, s)
			}
		}
		out[k] = s
	}
	return out, nil
}

// jsonKind names the JSON type of a decoded value that is not a string, number or boolean.
func jsonKind(v any) string {
	switch v.(type) {
	case map[string]any:
		return "an object"
	case []any:
		return "an array"
	}
	return "null"
}

func newTraceRow(h store.TraceHit, o *store.TraceOverview) traceRow {
	r := traceRow{TraceID: h.TraceID, SpanID: h.SpanID, Service: h.Service, Version: h.ServiceVersion,
		Operation: h.Operation, Start: at(h.StartNS), DurationMS: msOf(h.DurationNS), Error: h.Error,
		HTTPStatus: h.HTTPStatusCode}
	if h.Error && h.StatusMessage != "" {
		r.Status = capString(h.StatusMessage)
	}
	if o != nil {
		r.Services, r.Spans, r.Errors, r.nServices = o.Services, o.SpanCount, o.ErrorCount, len(o.Services)
		if len(r.Services) > 8 {
			r.Services = append(r.Services[:8:8], fmt.Sprintf("+%d more", len(o.Services)-8))
		}
		if o.RootService != "" && (o.RootService != h.Service || o.RootOperation != h.Operation) {
			r.Root = o.RootService + " " + o.RootOperation
		}
	}
	return r
}

func (r traceRow) line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "- %s %s %s %s", ms(r.DurationMS), r.Service, r.Operation, r.Start)
	if r.Version != "" {
		b.WriteString(" v" + strings.TrimPrefix(r.Version, "v"))
	}
	if r.Error {
		b.WriteString(" ERROR")
		if r.HTTPStatus != 0 {
			fmt.Fprintf(&b, " %d", r.HTTPStatus)
		}
		if r.Status != nil {
			b.WriteString(" " + quoted(r.Status))
		}
	}
	fmt.Fprintf(&b, " trace=%s", r.TraceID)
	if r.Spans > 0 {
		fmt.Fprintf(&b, " spans=%d services=%d", r.Spans, r.nServices)
	}
	if r.Errors > 0 && !r.Error {
		fmt.Fprintf(&b, " failed_spans=%d", r.Errors)
	}
	if r.Root != "" {
		b.WriteString(" root=" + r.Root)
	}
	b.WriteString("\n")
	return b.String()
}

// countTraces counts the matching requests exactly in a quiet window or among the traces an
// attribute index listed (estimated from a sample of them when many), and otherwise extrapolates
// from the first store.CountScan requests with the window's request count from the rollups.
func countTraces(ctx context.Context, tn *store.Tenant, q store.TraceQuery) (int, bool, error) {
	c, err := tn.CountTraces(ctx, q)
	if err != nil || c.Exact || c.Extrapolated {
		return c.Hits, c.Extrapolated, err
	}
	hits, scanned := c.Hits, c.Scanned
	all, err := metrics.Count(ctx, tn, store.RollupRequests, q.Service, q.From, q.To)
	if err != nil {
		return 0, false, err
	}
	return max(hits, int(math.Round(float64(hits)*float64(all)/float64(scanned)))), true, nil
}

// versionSample bounds the requests read to compare a service's versions.
const versionSample = 5000

// serviceContext adds what explains a service's latency beyond single requests: how its versions
// compare, and the anomalies detected on it.
func serviceContext(ctx context.Context, tn *store.Tenant, service string, from, to time.Time, out *searchTracesOut) error {
	// A busy service's versions are compared on a sample of its requests, sized from the rollups.
	sample := 1.0
	if total, err := metrics.Count(ctx, tn, store.RollupRequests, service, from.UnixNano(), to.UnixNano()); err != nil {
		return err
	} else if total > versionSample {
		sample = float64(versionSample) / float64(total)
	}
	versions, err := tn.ServiceVersions(ctx, service, from.UnixNano(), to.UnixNano(), sample)
	if err != nil {
		return err
	}
	if len(versions) > 1 {
		for _, v := range versions {
			out.Versions = append(out.Versions, versionRow{Version: v.Key, Requests: int64(float64(v.Requests) / sample), ErrorPct: round(errorPct(v.RequestStats), 2),
				P50MS: msOf(v.P50NS), P95MS: msOf(v.P95NS), First: at(v.FirstNS), Last: at(v.LastNS), P95Trace: v.P95TraceID,
				p50NS: v.P50NS, p95NS: v.P95NS})
		}
	}
	anomalies, err := tn.SearchAnomalies(ctx, store.AnomalyQuery{From: from.UnixNano(), To: to.UnixNano(), Service: service, Limit: 3})
	if err != nil {
		return err
	}
	for _, a := range anomalies {
		r := anomalyRef{ID: keysOf(ctx).anomalyRef(a.ID), Metric: a.Metric, Severity: a.Severity, Started: at(a.StartedNS)}
		if a.EndedNS != 0 {
			r.Ended = at(a.EndedNS)
		}
		out.Anomalies = append(out.Anomalies, r)
	}
	return nil
}

// slowVersion returns the version that is at least twice as slow as another, at the median or at
// p95, if any. The median resists the tail noise (timeouts) that every version shares.
func slowVersion(vs []versionRow) *versionRow {
	var slow *versionRow
	for i := range vs {
		if vs[i].Requests >= minRequests/2 && (slow == nil || vs[i].p50NS > slow.p50NS) {
			slow = &vs[i]
		}
	}
	for i := range vs {
		v := &vs[i]
		if slow != nil && v != slow && v.Requests >= minRequests/2 && (slow.p50NS >= 2*v.p50NS || slow.p95NS >= 2*v.p95NS) {
			return slow
		}
	}
	return nil
}

func contextText(out searchTracesOut) string {
	var b strings.Builder
	if len(out.Versions) > 0 {
		b.WriteString("Versions in this window:\n")
		for _, v := range out.Versions {
			fmt.Fprintf(&b, "- %s: %d req, p50 %s p95 %s, err %s, %s – %s, p95 request trace=%s\n", v.Version, v.Requests, ms(v.P50MS), ms(v.P95MS),
				pct(v.ErrorPct), v.First, v.Last, v.P95Trace)
		}
	}
	if len(out.Anomalies) > 0 {
		b.WriteString("Anomalies of this service in the window:")
		for _, a := range out.Anomalies {
			end := "ongoing"
			if a.Ended != "" {
				end = "to " + a.Ended
			}
			fmt.Fprintf(&b, " %s [%s] %s from %s %s;", a.ID, a.Severity, a.Metric, a.Started, end)
		}
		b.WriteString("\n")
	}
	return b.String()
}

func traceSuggestions(in searchTracesIn, out searchTracesOut) (string, []Call) {
	if len(out.Traces) == 0 {
		note := "no request matched in this window. Widen it (e.g. since=24h or 7d) or drop filters"
		if in.Service != "" {
			note += "; list_services shows the exact service names"
		}
		return note + ".", []Call{{Tool: "list_services", Args: map[string]any{"since": "24h"}, Why: "which services have traffic"}}
	}
	var next []Call
	note := ""
	if v := slowVersion(out.Versions); v != nil {
		note = fmt.Sprintf("version %s is much slower (p50 %s, p95 %s) than another: a regression with that deploy is likely.", v.Version, ms(v.P50MS), ms(v.P95MS))
		next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": v.P95Trace}, Why: "a typical slow request (p95) of version " + v.Version})
	}
	first := out.Traces[0]
	why := "newest request"
	if in.Sort == "duration" {
		why = "why the slowest request was slow"
	}
	if len(next) == 0 || next[0].Args["trace_id"] != first.TraceID {
		next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": first.TraceID}, Why: why})
	}
	if len(out.Anomalies) > 0 {
		next = append(next, Call{Tool: "get_rca", Args: map[string]any{"anomaly_id": out.Anomalies[0].ID}, Why: "root cause of its anomaly"})
	}
	for _, t := range out.Traces {
		if t.Error && t.TraceID != first.TraceID {
			next = append(next, Call{Tool: "get_trace_detail", Args: map[string]any{"trace_id": t.TraceID}, Why: "a failed request"})
			break
		}
	}
	if in.Service != "" {
		next = append(next, Call{Tool: "get_service_metrics", Args: map[string]any{"service": in.Service, "since": "24h"}, Why: "latency and errors over time"})
	}
	return note, next[:min(len(next), 3)]
}
