package store

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Audit actions.
const (
	AuditKeyCreate     = "apikey.create"
	AuditKeyRevoke     = "apikey.revoke"
	AuditSignInRefused = "signin.refused"
)

// AuditEvent is one entry of a tenant's audit trail: who did what, when and from where.
type AuditEvent struct {
	ID       int64  `db:"id" json:"id"`
	TenantID string `db:"tenant_id" json:"tenant"`
	AtNS     int64  `db:"at_ns" json:"-"`
	// At is AtNS as a time, for JSON output.
	At time.Time `db:"-" json:"at"`
	// Actor names the person or credential; Method is how they signed in (api_key, oauth, …).
	Actor     string `db:"actor" json:"actor"`
	Method    string `db:"method" json:"method,omitempty"`
	Action    string `db:"action" json:"action"`
	Target    string `db:"target" json:"target,omitempty"`
	Detail    string `db:"detail" json:"detail,omitempty"`
	IP        string `db:"ip" json:"ip,omitempty"`
	UserAgent string `db:"user_agent" json:"user_agent,omitempty"`
}

// auditFieldMax bounds each text field: the user agent and names come from callers.
const auditFieldMax = 500

// RecordAudit appends e (its tenant and, when zero, its time set here) to the tenant's audit trail.
// A tenant's role may add to its trail and read it, never change it.
func (t *Tenant) RecordAudit(ctx context.Context, e AuditEvent) error {
	e.TenantID = t.id
	if e.AtNS == 0 {
		e.AtNS = time.Now().UnixNano()
	}
	for _, f := range []*string{&e.Actor, &e.Method, &e.Action, &e.Target, &e.Detail, &e.IP, &e.UserAgent} {
		if len(*f) > auditFieldMax {
			*f = strings.ToValidUTF8((*f)[:auditFieldMax], "") + "…"
		}
	}
	_, err := t.db.x.NamedExecContext(ctx, `INSERT INTO audit_events (tenant_id, at_ns, actor, method, action, target, detail, ip, user_agent)
		VALUES (:tenant_id, :at_ns, :actor, :method, :action, :target, :detail, :ip, :user_agent)`, e)
	if err != nil {
		return fmt.Errorf("record audit event %s for tenant %q: %w", e.Action, t.id, err)
	}
	return nil
}

// AuditFilter selects audit events; zero fields select everything.
type AuditFilter struct {
	Tenant string
	Since  time.Time
	// Limit caps the number of events (the newest are kept); 0 means 1000.
	Limit int
}

// AuditEvents reads the tenant's audit trail, oldest first.
func (t *Tenant) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	f.Tenant = t.id
	return t.db.auditEvents(ctx, f)
}

// AuditEvents reads every tenant's audit trail (or f.Tenant's), oldest first: `tracekit audit`.
func (a *Admin) AuditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	return a.db.auditEvents(ctx, f)
}

func (db *DB) auditEvents(ctx context.Context, f AuditFilter) ([]AuditEvent, error) {
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	q := `SELECT id, tenant_id, at_ns, actor, method, action, target, detail, ip, user_agent FROM audit_events WHERE at_ns >= ?`
	args := []any{int64(0)}
	if !f.Since.IsZero() {
		args[0] = f.Since.UnixNano()
	}
	if f.Tenant != "" {
		q += ` AND tenant_id = ?`
		args = append(args, f.Tenant)
	}
	q += ` ORDER BY at_ns DESC, id DESC LIMIT ?`
	args = append(args, f.Limit)
	var out []AuditEvent
	if err := db.x.SelectContext(ctx, &out, db.x.Rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read audit events: %w", err)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	for i := range out {
		out[i].At = time.Unix(0, out[i].AtNS).UTC()
	}
	return out, nil
}
