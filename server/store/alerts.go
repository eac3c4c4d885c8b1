package store

import (
	"context"
	"fmt"
)

// AlertRule is a threshold on a metric; the analysis engine evaluates it.
type AlertRule struct {
	ID            string  `db:"id"`
	Service       string  `db:"service"`
	Metric        string  `db:"metric"`
	Comparison    string  `db:"comparison"`
	Threshold     float64 `db:"threshold"`
	WindowSeconds int     `db:"window_seconds"`
	Severity      string  `db:"severity"`
	Enabled       bool    `db:"enabled"`
}

// PutAlertRule creates or replaces a rule.
func (t *Tenant) PutAlertRule(ctx context.Context, r AlertRule) error {
	_, err := t.db.x.ExecContext(ctx, t.rebind(`INSERT INTO alert_rules
			(tenant_id, id, service, metric, comparison, threshold, window_seconds, severity, enabled)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, id) DO UPDATE SET service = excluded.service, metric = excluded.metric,
			comparison = excluded.comparison, threshold = excluded.threshold,
			window_seconds = excluded.window_seconds, severity = excluded.severity, enabled = excluded.enabled`),
		t.id, r.ID, r.Service, r.Metric, r.Comparison, r.Threshold, r.WindowSeconds, r.Severity, r.Enabled)
	if err != nil {
		return fmt.Errorf("save alert rule %q: %w", r.ID, err)
	}
	return nil
}

// Alert states.
const (
	AlertFiring   = "firing"
	AlertResolved = "resolved"
)

// Alert is one firing (or past) episode of a rule.
type Alert struct {
	ID         int64   `db:"id"`
	RuleID     string  `db:"rule_id"`
	State      string  `db:"state"`
	StartedNS  int64   `db:"started_ns"`
	ResolvedNS int64   `db:"resolved_ns"`
	Value      float64 `db:"value"`
	Threshold  float64 `db:"threshold"`
	LastEvalNS int64   `db:"last_eval_ns"`
	Message    string  `db:"message"`
}

// InsertAlert records an alert and returns its id.
func (t *Tenant) InsertAlert(ctx context.Context, a Alert) (int64, error) {
	var id int64
	err := t.db.x.GetContext(ctx, &id, t.rebind(`INSERT INTO alerts
			(tenant_id, rule_id, state, started_ns, resolved_ns, value, threshold, last_eval_ns, message)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		t.id, a.RuleID, a.State, a.StartedNS, a.ResolvedNS, a.Value, a.Threshold, a.LastEvalNS, a.Message)
	if err != nil {
		return 0, fmt.Errorf("record alert of rule %q: %w", a.RuleID, err)
	}
	return id, nil
}

// ActiveAlert is a firing alert with its rule.
type ActiveAlert struct {
	Alert
	Service       string `db:"service"`
	Metric        string `db:"metric"`
	Comparison    string `db:"comparison"`
	WindowSeconds int    `db:"window_seconds"`
	Severity      string `db:"severity"`
}

// ActiveAlerts returns the firing alerts, most recently started first; service and severity filter
// when not empty. There is at most one firing alert per rule, so the list is short.
func (t *Tenant) ActiveAlerts(ctx context.Context, service, severity string) ([]ActiveAlert, error) {
	var w where
	w.add("a.tenant_id = ?", t.id)
	w.add("a.state = ?", AlertFiring)
	if service != "" {
		w.add("r.service = ?", service)
	}
	if severity != "" {
		w.add("r.severity = ?", severity)
	}
	var out []ActiveAlert
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT a.id, a.rule_id, a.state, a.started_ns, a.resolved_ns,
			a.value, a.threshold, a.last_eval_ns, a.message,
			COALESCE(r.service, '') AS service, COALESCE(r.metric, '') AS metric,
			COALESCE(r.comparison, '') AS comparison, COALESCE(r.window_seconds, 0) AS window_seconds,
			COALESCE(r.severity, '') AS severity
		FROM alerts a LEFT JOIN alert_rules r ON r.tenant_id = a.tenant_id AND r.id = a.rule_id`+w.sql()+`
		ORDER BY a.started_ns DESC, a.id DESC`), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list firing alerts: %w", err)
	}
	return out, nil
}
