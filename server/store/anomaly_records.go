package store

import (
	"context"
	"fmt"
)

// AnomalyRecord is an anomaly with the detector's own fields.
type AnomalyRecord struct {
	Anomaly
	LastSeenNS int64  `db:"last_seen_ns"` // end of the last window that deviated
	Details    []byte `db:"details"`      // JSON written by the detector
}

const anomalyRecordColumns = `a.id, a.service, a.operation, a.metric, a.severity, a.started_ns, a.ended_ns, a.baseline,
	a.observed, a.score, a.summary, 0 AS has_rca, a.last_seen_ns, a.details`

// AnomalyRecords returns the anomalies still open or last seen at or after since, oldest first: what
// the detector needs to continue episodes and to keep anomalous time out of its baselines.
func (t *Tenant) AnomalyRecords(ctx context.Context, since int64) ([]AnomalyRecord, error) {
	var out []AnomalyRecord
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT `+anomalyRecordColumns+` FROM anomalies a
		WHERE a.tenant_id = ? AND (a.ended_ns = 0 OR a.last_seen_ns >= ?) ORDER BY a.started_ns, a.id`), t.id, since)
	if err != nil {
		return nil, fmt.Errorf("read anomalies: %w", err)
	}
	return out, nil
}

// AnomalyRecord returns one anomaly with the detector's fields, or ErrNotFound.
func (t *Tenant) AnomalyRecord(ctx context.Context, id int64) (AnomalyRecord, error) {
	var a AnomalyRecord
	err := t.db.x.GetContext(ctx, &a, t.rebind(`SELECT `+anomalyRecordColumns+` FROM anomalies a WHERE a.tenant_id = ? AND a.id = ?`), t.id, id)
	if err != nil {
		return a, notFound(err)
	}
	return a, nil
}

// SaveAnomaly inserts a (ID 0) or updates an anomaly and returns its id.
func (x *TickTx) SaveAnomaly(a AnomalyRecord) (int64, error) {
	if a.ID == 0 {
		var id int64
		err := x.tx.GetContext(x.ctx, &id, x.tx.Rebind(`INSERT INTO anomalies (tenant_id, service, operation, metric,
				severity, started_ns, ended_ns, baseline, observed, score, summary, last_seen_ns, details)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			x.t.id, a.Service, a.Operation, a.Metric, a.Severity, a.StartedNS, a.EndedNS, a.Baseline, a.Observed, a.Score,
			a.Summary, a.LastSeenNS, x.t.json(a.Details, "{}"))
		if err != nil {
			return 0, fmt.Errorf("record anomaly of %s: %w", a.Service, err)
		}
		return id, nil
	}
	_, err := x.exec(`UPDATE anomalies SET operation = ?, metric = ?, severity = ?, started_ns = ?, ended_ns = ?,
			baseline = ?, observed = ?, score = ?, summary = ?, last_seen_ns = ?, details = ?
		WHERE tenant_id = ? AND id = ?`,
		a.Operation, a.Metric, a.Severity, a.StartedNS, a.EndedNS, a.Baseline, a.Observed, a.Score, a.Summary,
		a.LastSeenNS, x.t.json(a.Details, "{}"), x.t.id, a.ID)
	if err != nil {
		return 0, fmt.Errorf("update anomaly %d: %w", a.ID, err)
	}
	return a.ID, nil
}
