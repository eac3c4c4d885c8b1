package store

import (
	"context"
	"fmt"
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
	out, err := t.requestStats(ctx, "service", t.entrySpans(from, to))
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
	total, err := t.requestStats(ctx, "'all'", w)
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
	if m.Series, err = t.requestStats(ctx, bucket, w); err != nil {
		return m, fmt.Errorf("time series of %s: %w", q.Service, err)
	}
	if q.ByOperation {
		if m.Operations, err = t.requestStats(ctx, "operation", w); err != nil {
			return m, fmt.Errorf("operations of %s: %w", q.Service, err)
		}
	}
	return m, nil
}
