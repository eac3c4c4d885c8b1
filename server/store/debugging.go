package store

import (
	"context"
	"fmt"
)

// Breakpoint is a live-debugging breakpoint: where an instrumented service captures a snapshot.
type Breakpoint struct {
	ID        string `db:"id"`
	Service   string `db:"service"`
	File      string `db:"file"`
	Line      int    `db:"line"`
	Condition string `db:"condition"`
	HitLimit  int    `db:"hit_limit"` // 0: unlimited
	HitCount  int    `db:"hit_count"`
	ExpiresNS int64  `db:"expires_ns"` // 0: never
	CreatedNS int64  `db:"created_ns"`
	DeletedNS int64  `db:"deleted_ns"`
}

// CreateBreakpoint stores a new breakpoint.
func (t *Tenant) CreateBreakpoint(ctx context.Context, b Breakpoint) error {
	_, err := t.db.x.ExecContext(ctx, t.rebind(`INSERT INTO breakpoints
			(tenant_id, id, service, file, line, condition, hit_limit, hit_count, expires_ns, created_ns, deleted_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		t.id, b.ID, b.Service, b.File, b.Line, b.Condition, b.HitLimit, b.HitCount, b.ExpiresNS, b.CreatedNS, b.DeletedNS)
	if err != nil {
		return fmt.Errorf("create breakpoint %s:%d: %w", b.File, b.Line, err)
	}
	return nil
}

// ActiveBreakpoints lists the breakpoints that can still capture at time now: not deleted, not
// expired, hit limit not reached. Ordered newest first; service filters when not empty.
func (t *Tenant) ActiveBreakpoints(ctx context.Context, service string, now int64) ([]Breakpoint, error) {
	var w where
	w.add("tenant_id = ?", t.id)
	w.add("deleted_ns = 0")
	w.add("(expires_ns = 0 OR expires_ns > ?)", now)
	w.add("(hit_limit = 0 OR hit_count < hit_limit)")
	if service != "" {
		w.add("service = ?", service)
	}
	var out []Breakpoint
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT id, service, file, line, condition, hit_limit, hit_count,
		expires_ns, created_ns, deleted_ns FROM breakpoints`+w.sql()+` ORDER BY created_ns DESC, id`), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list breakpoints: %w", err)
	}
	return out, nil
}

// Snapshot is what a breakpoint captured: variables (a JSON object) and the stack (a JSON array).
type Snapshot struct {
	ID           int64  `db:"id"`
	BreakpointID string `db:"breakpoint_id"`
	Service      string `db:"service"`
	TraceID      string `db:"trace_id"`
	SpanID       string `db:"span_id"`
	CapturedNS   int64  `db:"captured_ns"`
	Variables    []byte `db:"variables"`
	Stack        []byte `db:"stack"`
}

// InsertSnapshot stores a capture and returns its id.
func (t *Tenant) InsertSnapshot(ctx context.Context, s Snapshot) (int64, error) {
	var id int64
	if err := t.EnsurePartitions(ctx, "snapshots", s.CapturedNS); err != nil {
		return 0, err
	}
	err := t.db.x.GetContext(ctx, &id, t.rebind(`INSERT INTO snapshots
			(tenant_id, breakpoint_id, service, trace_id, span_id, captured_ns, variables, stack)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
		t.id, s.BreakpointID, s.Service, s.TraceID, s.SpanID, s.CapturedNS, t.json(s.Variables, "{}"), t.json(s.Stack, "[]"))
	if err != nil {
		return 0, fmt.Errorf("store snapshot of breakpoint %s: %w", s.BreakpointID, err)
	}
	return id, nil
}

// SnapshotQuery selects snapshots captured in [From, To).
type SnapshotQuery struct {
	From, To     int64
	BreakpointID string
	Service      string
	TraceID      string
	After        *SnapshotKey
	Limit        int
}

// SnapshotKey is a position in the newest-first order of snapshots.
type SnapshotKey struct {
	CapturedNS int64 `json:"k"`
	ID         int64 `json:"i"`
}

func (t *Tenant) snapshotWhere(q SnapshotQuery) where {
	var w where
	w.add("tenant_id = ?", t.id)
	w.add("captured_ns >= ? AND captured_ns < ?", q.From, q.To)
	if q.BreakpointID != "" {
		w.add("breakpoint_id = ?", q.BreakpointID)
	}
	if q.Service != "" {
		w.add("service = ?", q.Service)
	}
	if q.TraceID != "" {
		w.add("trace_id = ?", q.TraceID)
	}
	return w
}

// SearchSnapshots returns up to q.Limit snapshots, newest first.
func (t *Tenant) SearchSnapshots(ctx context.Context, q SnapshotQuery) ([]Snapshot, error) {
	w := t.snapshotWhere(q)
	if q.After != nil {
		w.add("(captured_ns, id) < (?, ?)", q.After.CapturedNS, q.After.ID)
	}
	var out []Snapshot
	query := `SELECT id, breakpoint_id, service, trace_id, span_id, captured_ns, variables, stack FROM snapshots` +
		w.sql() + ` ORDER BY captured_ns DESC, id DESC LIMIT ?`
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(query), append(w.args, q.Limit)...); err != nil {
		return nil, fmt.Errorf("search snapshots: %w", err)
	}
	return out, nil
}

// CountSnapshots counts the snapshots matching q (ignoring After and Limit), stopping at max.
func (t *Tenant) CountSnapshots(ctx context.Context, q SnapshotQuery, max int) (int, error) {
	w := t.snapshotWhere(q)
	var n int
	query := `SELECT COUNT(*) FROM (SELECT 1 FROM snapshots` + w.sql() + ` LIMIT ?) c`
	if err := t.db.x.GetContext(ctx, &n, t.rebind(query), append(w.args, max)...); err != nil {
		return 0, fmt.Errorf("count snapshots: %w", err)
	}
	return n, nil
}
