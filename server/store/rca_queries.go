package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jmoiron/sqlx"
)

// SampleQuery selects requests (entry spans) of one service for root-cause analysis.
type SampleQuery struct {
	Service       string
	From, To      int64
	Operation     string // only requests of this entry operation (a route), when set
	MinDurationNS int64  // only requests slower than this, when > 0
	ErrorsOnly    bool
	// Slices splits the window; each contributes up to PerSlice requests from its start, so a sample
	// spreads over the whole window while every part is an index range scan that stops early, however
	// many requests the window holds.
	Slices, PerSlice int
}

// SampledRequest is one request of a sample.
type SampledRequest struct {
	TraceID    string `db:"trace_id"`
	SpanID     string `db:"span_id"`
	StartNS    int64  `db:"start_ns"`
	DurationNS int64  `db:"duration_ns"`
	Error      bool   `db:"error"`
}

// SampleRequests returns up to Slices×PerSlice requests of q.Service in [From, To).
func (t *Tenant) SampleRequests(ctx context.Context, q SampleQuery) ([]SampledRequest, error) {
	if q.Slices < 1 || q.PerSlice < 1 || q.To <= q.From {
		return nil, nil
	}
	width := (q.To - q.From + int64(q.Slices) - 1) / int64(q.Slices)
	var parts []string
	var args []any
	for i := 0; i < q.Slices; i++ {
		from := q.From + int64(i)*width
		if from >= q.To {
			break
		}
		cond := "tenant_id = ? AND service = ? AND is_entry = true AND start_ns >= ? AND start_ns < ?"
		args = append(args, t.id, q.Service, from, min(from+width, q.To))
		if q.Operation != "" {
			cond += " AND operation = ?"
			args = append(args, q.Operation)
		}
		if q.MinDurationNS > 0 {
			cond += " AND duration_ns > ?"
			args = append(args, q.MinDurationNS)
		}
		if q.ErrorsOnly {
			cond += " AND " + errorCond
		}
		parts = append(parts, `SELECT * FROM (SELECT `+t.traceHex("trace_id")+` AS trace_id, `+t.spanHex("span_id")+` AS span_id, start_ns, duration_ns,
			CASE WHEN `+errorCond+` THEN 1 ELSE 0 END AS error FROM spans WHERE `+cond+` ORDER BY start_ns LIMIT ?) s`)
		args = append(args, q.PerSlice)
	}
	var out []SampledRequest
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(strings.Join(parts, " UNION ALL ")), args...); err != nil {
		return nil, fmt.Errorf("sample requests of %s: %w", q.Service, err)
	}
	return out, nil
}

// SpansOfTraces returns every span of the given traces, with attributes, events and links but without
// resource attributes (which repeat per process and are not needed to compare traces).
func (t *Tenant) SpansOfTraces(ctx context.Context, traceIDs []string) ([]Span, error) {
	if len(traceIDs) == 0 {
		return nil, nil
	}
	traceIDs = t.storedTraces(traceIDs)
	if len(traceIDs) == 0 {
		return nil, nil
	}
	texts := make([]string, 0, len(nullableTexts))
	for _, c := range []string{"status_message", "http_method", "http_route", "db_system", "db_statement", "rpc_service", "rpc_method", "peer_service"} {
		texts = append(texts, t.text(c))
	}
	q, args, err := sqlx.In(`SELECT `+t.traceHex("trace_id")+` AS trace_id, `+t.spanHex("span_id")+` AS span_id,
			`+t.spanHex("parent_span_id")+` AS parent_span_id, service, `+t.resourceText("service_version")+`, operation, kind,
			is_entry, start_ns, duration_ns, status_code, http_status_code, `+strings.Join(texts, ", ")+`,
			`+t.resourceText("host_name")+`, attributes, events, links
		FROM spans`+t.resourceJoin()+` WHERE tenant_id = ? AND trace_id IN (?)`, t.id, traceIDs)
	if err != nil {
		return nil, err
	}
	var out []Span
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read %d traces: %w", len(traceIDs), err)
	}
	return out, nil
}
