package store

import (
	"context"
	"fmt"
)

// AlertRules returns the tenant's rules, enabled or not, by id.
func (t *Tenant) AlertRules(ctx context.Context) ([]AlertRule, error) {
	var out []AlertRule
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT id, service, metric, comparison, threshold, window_seconds,
		severity, enabled FROM alert_rules WHERE tenant_id = ? ORDER BY id`), t.id)
	if err != nil {
		return nil, fmt.Errorf("list alert rules: %w", err)
	}
	return out, nil
}

// AlertRuleState is the evaluator's record of a rule.
type AlertRuleState struct {
	RuleID      string   `db:"rule_id"`
	LastEvalNS  int64    `db:"last_eval_ns"`
	LastValue   *float64 `db:"last_value"` // nil when the window had no data
	Evaluations int64    `db:"evaluations"`
}

// AlertRuleStates returns the evaluator's record of every evaluated rule, by rule id.
func (t *Tenant) AlertRuleStates(ctx context.Context) ([]AlertRuleState, error) {
	var out []AlertRuleState
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT rule_id, last_eval_ns, last_value, evaluations
		FROM alert_rule_state WHERE tenant_id = ? ORDER BY rule_id`), t.id)
	if err != nil {
		return nil, fmt.Errorf("read alert rule state: %w", err)
	}
	return out, nil
}

// AlertHistory returns every alert episode of a rule, oldest first.
func (t *Tenant) AlertHistory(ctx context.Context, ruleID string) ([]Alert, error) {
	var out []Alert
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT id, rule_id, state, started_ns, resolved_ns, value, threshold,
		last_eval_ns, message FROM alerts WHERE tenant_id = ? AND rule_id = ? ORDER BY started_ns, id`), t.id, ruleID)
	if err != nil {
		return nil, fmt.Errorf("alert history of %s: %w", ruleID, err)
	}
	return out, nil
}

// RecordEvaluation notes that rule was evaluated at evalNS with value (nil: no data).
func (x *TickTx) RecordEvaluation(ruleID string, evalNS int64, value *float64) error {
	_, err := x.exec(`INSERT INTO alert_rule_state (tenant_id, rule_id, last_eval_ns, last_value, evaluations)
		VALUES (?, ?, ?, ?, 1) ON CONFLICT (tenant_id, rule_id) DO UPDATE SET last_eval_ns = excluded.last_eval_ns,
			last_value = excluded.last_value, evaluations = alert_rule_state.evaluations + 1`, x.t.id, ruleID, evalNS, value)
	if err != nil {
		return fmt.Errorf("record evaluation of %s: %w", ruleID, err)
	}
	return nil
}

// FireAlert starts a firing episode. The unique index on firing alerts makes a second one for the
// same rule fail.
func (x *TickTx) FireAlert(a Alert) error {
	_, err := x.exec(`INSERT INTO alerts (tenant_id, rule_id, state, started_ns, resolved_ns, value, threshold, last_eval_ns, message)
		VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)`, x.t.id, a.RuleID, AlertFiring, a.StartedNS, a.Value, a.Threshold, a.LastEvalNS, a.Message)
	if err != nil {
		return fmt.Errorf("fire alert of %s: %w", a.RuleID, err)
	}
	return nil
}

// UpdateAlert refreshes a firing alert's current value.
func (x *TickTx) UpdateAlert(id int64, value, threshold float64, evalNS int64, message string) error {
	_, err := x.exec(`UPDATE alerts SET value = ?, threshold = ?, last_eval_ns = ?, message = ?
		WHERE tenant_id = ? AND id = ? AND state = ?`, value, threshold, evalNS, message, x.t.id, id, AlertFiring)
	if err != nil {
		return fmt.Errorf("update alert %d: %w", id, err)
	}
	return nil
}

// ResolveAlert ends a firing alert at evalNS.
func (x *TickTx) ResolveAlert(id int64, evalNS int64, message string) error {
	_, err := x.exec(`UPDATE alerts SET state = ?, resolved_ns = ?, last_eval_ns = ?, message = ?
		WHERE tenant_id = ? AND id = ? AND state = ?`, AlertResolved, evalNS, evalNS, message, x.t.id, id, AlertFiring)
	if err != nil {
		return fmt.Errorf("resolve alert %d: %w", id, err)
	}
	return nil
}
