package store

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
)

// Service is a row of the services table: every service that sent spans.
type Service struct {
	Name        string `db:"name"`
	Version     string `db:"version"`
	FirstSeenNS int64  `db:"first_seen_ns"`
	LastSeenNS  int64  `db:"last_seen_ns"`
}

// Services lists the tenant's services by name.
func (t *Tenant) Services(ctx context.Context) ([]Service, error) {
	var out []Service
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT name, version, first_seen_ns, last_seen_ns
		FROM services WHERE tenant_id = ? ORDER BY name`), t.id)
	if err != nil {
		return nil, fmt.Errorf("list services: %w", err)
	}
	return out, nil
}

// ServiceStats returns per-service request counts, errors and latency percentiles over [from, to),
// keyed by service name. It reads entry spans; rollups can replace it behind the same signature.
func (t *Tenant) ServiceStats(ctx context.Context, from, to int64) ([]RequestStats, error) {
	out, err := t.requestStats(ctx, "service", "spans", t.entrySpans(from, to))
	if err != nil {
		return nil, fmt.Errorf("service statistics: %w", err)
	}
	return out, nil
}

// MetricsQuery selects one service's requests for ServiceMetrics.
type MetricsQuery struct {
	Service   string
	Operation string // optional
	From, To  int64
	StepNS    int64
	// ByOperation also breaks the window down per operation.
	ByOperation bool
}

// ServiceMetrics is one service's request statistics over a window.
type ServiceMetrics struct {
	Total RequestStats
	// Series holds one entry per non-empty step; Key is the bucket's start in unix nanoseconds.
	Series     []RequestStats
	Operations []RequestStats // when ByOperation; Key is the operation
}

// ServiceMetrics computes totals, a time series and optionally per-operation statistics.
func (t *Tenant) ServiceMetrics(ctx context.Context, q MetricsQuery) (ServiceMetrics, error) {
	var m ServiceMetrics
	w := t.entrySpans(q.From, q.To)
	w.add("service = ?", q.Service)
	if q.Operation != "" {
		w.add("operation = ?", q.Operation)
	}
	total, err := t.requestStats(ctx, "'all'", "spans", w)
	if err != nil {
		return m, fmt.Errorf("metrics of %s: %w", q.Service, err)
	}
	if len(total) == 0 {
		return m, nil
	}
	m.Total = total[0]
	// Literal integers, not bind parameters: the expression appears three times in the statement.
	from, step := strconv.FormatInt(q.From, 10), strconv.FormatInt(q.StepNS, 10)
	bucket := "(" + from + " + ((start_ns - " + from + ") / " + step + ") * " + step + ")"
	if m.Series, err = t.requestStats(ctx, bucket, "spans", w); err != nil {
		return m, fmt.Errorf("time series of %s: %w", q.Service, err)
	}
	if q.ByOperation {
		if m.Operations, err = t.requestStats(ctx, "operation", "spans", w); err != nil {
			return m, fmt.Errorf("operations of %s: %w", q.Service, err)
		}
	}
	return m, nil
}

// VersionStats are a service's requests per deployed version over a window.
type VersionStats struct {
	RequestStats // Key is the version
	// P95TraceID is the trace of a request at the version's p95: typical of its slow requests, where
	// the very slowest is often an outlier that every version has (a timeout).
	P95TraceID string
}

// maxVersions bounds the versions examined: a window rarely spans more than a couple of deploys.
const maxVersions = 8

// ServiceVersions compares the versions of service that served requests in [from, to), most
// requests first, each with a trace at its p95: a latency regression after a deploy shows here.
// sample, in (0, 1], is the share of traces to read, chosen by their id (random in OpenTelemetry), so
// a busy service costs a bounded sort; counts are then of the sample. A window served by one version
// has nothing to compare: it returns no versions without reading requests.
func (t *Tenant) ServiceVersions(ctx context.Context, service string, from, to int64, sample float64) ([]VersionStats, error) {
	var seen int
	if err := t.db.x.GetContext(ctx, &seen, t.rebind(`SELECT COUNT(*) FROM service_versions
		WHERE tenant_id = ? AND service = ? AND first_seen_ns < ? AND last_seen_ns >= ?`), t.id, service, to, from); err != nil {
		return nil, fmt.Errorf("versions of %s: %w", service, err)
	}
	if seen < 2 {
		return nil, nil
	}
	w := t.entrySpans(from, to)
	w.add("service = ?", service)
	if buckets := int(math.Ceil(sample * 256)); buckets < 256 {
		if t.db.dialect == Postgres {
			w.add("get_byte(uuid_send(trace_id), 15) < ?", max(buckets, 1)) // the last byte, as below
		} else {
			w.add("substr(trace_id, length(trace_id) - 1, 2) < ?", fmt.Sprintf("%02x", max(buckets, 1)))
		}
	}
	stats, err := t.requestStats(ctx, t.resourceValue("service_version"), "spans"+t.resourceJoin(), w)
	if err != nil {
		return nil, fmt.Errorf("versions of %s: %w", service, err)
	}
	sort.Slice(stats, func(i, j int) bool { return stats[i].Requests > stats[j].Requests })
	out := make([]VersionStats, 0, min(len(stats), maxVersions))
	for _, s := range stats[:min(len(stats), maxVersions)] {
		v := VersionStats{RequestStats: s}
		version, vargs := t.resourceIs("service_version", s.Key)
		err := t.db.x.GetContext(ctx, &v.P95TraceID, t.rebind(`SELECT `+t.traceHex("trace_id")+` FROM spans
			WHERE tenant_id = ? AND is_entry = true AND service = ? AND `+version+` AND start_ns >= ? AND start_ns < ?
				AND duration_ns >= ? ORDER BY duration_ns LIMIT 1`), append(append([]any{t.id, service}, vargs...), from, to, s.P95NS)...)
		if err != nil {
			return nil, fmt.Errorf("p95 request of %s %s: %w", service, s.Key, err)
		}
		out = append(out, v)
	}
	return out, nil
}
