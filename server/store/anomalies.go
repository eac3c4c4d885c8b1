package store

import (
	"context"
	"fmt"
)

// Anomaly severities, lowest first.
var Severities = []string{"low", "medium", "high", "critical"}

// Anomaly is a deviation of a service metric from its baseline, found by the analysis engine.
type Anomaly struct {
	ID        int64   `db:"id"`
	Service   string  `db:"service"`
	Operation string  `db:"operation"`
	Metric    string  `db:"metric"`
	Severity  string  `db:"severity"`
	StartedNS int64   `db:"started_ns"`
	EndedNS   int64   `db:"ended_ns"` // 0 while ongoing
	Baseline  float64 `db:"baseline"`
	Observed  float64 `db:"observed"`
	Score     float64 `db:"score"`
	Summary   string  `db:"summary"`
	HasRCA    bool    `db:"has_rca"`
}

const anomalyColumns = `a.id, a.service, a.operation, a.metric, a.severity, a.started_ns, a.ended_ns, a.baseline,
	a.observed, a.score, a.summary,
	CASE WHEN EXISTS (SELECT 1 FROM rca_reports r WHERE r.tenant_id = a.tenant_id AND r.anomaly_id = a.id)
		THEN 1 ELSE 0 END AS has_rca`

// InsertAnomaly records an anomaly and returns its id.
func (t *Tenant) InsertAnomaly(ctx context.Context, a Anomaly) (int64, error) {
	var id int64
	err := t.db.x.GetContext(ctx, &id, t.rebind(`INSERT INTO anomalies
			(tenant_id, service, operation, metric, severity, started_ns, ended_ns, baseline, observed, score, summary)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		t.id, a.Service, a.Operation, a.Metric, a.Severity, a.StartedNS, a.EndedNS, a.Baseline, a.Observed, a.Score, a.Summary)
	if err != nil {
		return 0, fmt.Errorf("record anomaly of %s: %w", a.Service, err)
	}
	return id, nil
}

// AnomalyQuery selects anomalies active at some point of [From, To).
type AnomalyQuery struct {
	From, To   int64
	Service    string
	Severities []string // any of these; empty means all
	// Services restricts to anomalies of any of these services (e.g. those a trace touched).
	Services []string
	After    *AnomalyKey
	Limit    int
}

// AnomalyKey is a position in the newest-first order of anomalies.
type AnomalyKey struct {
	StartedNS int64 `json:"k"`
	ID        int64 `json:"i"`
}

func (t *Tenant) anomalyWhere(q AnomalyQuery) (where, error) {
	var w where
	w.add("a.tenant_id = ?", t.id)
	w.add("a.started_ns < ? AND (a.ended_ns = 0 OR a.ended_ns >= ?)", q.To, q.From)
	if q.Service != "" {
		w.add("a.service = ?", q.Service)
	}
	for _, in := range []struct {
		col  string
		vals []string
	}{{"a.severity", q.Severities}, {"a.service", q.Services}} {
		if len(in.vals) == 0 {
			continue
		}
		cond, args, err := inList(in.col, in.vals)
		if err != nil {
			return w, err
		}
		w.add(cond, args...)
	}
	return w, nil
}

// SearchAnomalies returns up to q.Limit anomalies, most recently started first.
func (t *Tenant) SearchAnomalies(ctx context.Context, q AnomalyQuery) ([]Anomaly, error) {
	w, err := t.anomalyWhere(q)
	if err != nil {
		return nil, err
	}
	if q.After != nil {
		w.add("(a.started_ns, a.id) < (?, ?)", q.After.StartedNS, q.After.ID)
	}
	var out []Anomaly
	query := `SELECT ` + anomalyColumns + ` FROM anomalies a` + w.sql() + ` ORDER BY a.started_ns DESC, a.id DESC LIMIT ?`
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(query), append(w.args, q.Limit)...); err != nil {
		return nil, fmt.Errorf("search anomalies: %w", err)
	}
	return out, nil
}

// CountAnomalies counts the anomalies matching q (ignoring After and Limit), stopping at max.
func (t *Tenant) CountAnomalies(ctx context.Context, q AnomalyQuery, max int) (int, error) {
	w, err := t.anomalyWhere(q)
	if err != nil {
		return 0, err
	}
	var n int
	query := `SELECT COUNT(*) FROM (SELECT 1 FROM anomalies a` + w.sql() + ` LIMIT ?) c`
	if err := t.db.x.GetContext(ctx, &n, t.rebind(query), append(w.args, max)...); err != nil {
		return 0, fmt.Errorf("count anomalies: %w", err)
	}
	return n, nil
}

// Anomaly returns one anomaly, or ErrNotFound.
func (t *Tenant) Anomaly(ctx context.Context, id int64) (Anomaly, error) {
	var a Anomaly
	err := t.db.x.GetContext(ctx, &a, t.rebind(`SELECT `+anomalyColumns+` FROM anomalies a WHERE a.tenant_id = ? AND a.id = ?`), t.id, id)
	if err != nil {
		return a, notFound(err)
	}
	return a, nil
}

// RCAReport is the root-cause analysis of an anomaly. Causes is a JSON array whose elements are
// objects written by the analysis engine.
type RCAReport struct {
	AnomalyID int64  `db:"anomaly_id"`
	CreatedNS int64  `db:"created_ns"`
	Summary   string `db:"summary"`
	Causes    []byte `db:"causes"`
}

// RCAReport returns the stored report of an anomaly, or ErrNotFound.
func (t *Tenant) RCAReport(ctx context.Context, anomalyID int64) (RCAReport, error) {
	var r RCAReport
	err := t.db.x.GetContext(ctx, &r, t.rebind(`SELECT anomaly_id, created_ns, summary, causes
		FROM rca_reports WHERE tenant_id = ? AND anomaly_id = ?`), t.id, anomalyID)
	if err != nil {
		return r, notFound(err)
	}
	return r, nil
}

// SaveRCAReport stores a report, replacing an earlier one of the same anomaly.
func (t *Tenant) SaveRCAReport(ctx context.Context, r RCAReport) error {
	_, err := t.db.x.ExecContext(ctx, t.rebind(`INSERT INTO rca_reports (tenant_id, anomaly_id, created_ns, summary, causes)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, anomaly_id) DO UPDATE SET
			created_ns = excluded.created_ns, summary = excluded.summary, causes = excluded.causes`),
		t.id, r.AnomalyID, r.CreatedNS, r.Summary, t.json(r.Causes, "[]"))
	if err != nil {
		return fmt.Errorf("save root-cause analysis of anomaly %d: %w", r.AnomalyID, err)
	}
	return nil
}
