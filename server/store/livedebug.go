package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// ErrBreakpointInactive is returned for a capture of a breakpoint that is deleted, expired or has
// reached its hit limit: the agent should stop capturing it.
var ErrBreakpointInactive = errors.New("breakpoint is no longer active (deleted, expired or hit limit reached)")

// BreakpointStatus is a breakpoint with what a person managing it wants to see.
type BreakpointStatus struct {
	Breakpoint
	LastHitNS int64 `db:"last_hit_ns"`
}

// Active reports whether agents should still capture the breakpoint at time now.
func (b BreakpointStatus) Active(now int64) bool {
	return b.DeletedNS == 0 && (b.ExpiresNS == 0 || b.ExpiresNS > now) && (b.HitLimit == 0 || b.HitCount < b.HitLimit)
}

// Breakpoints lists the breakpoints not deleted, newest first, including expired and exhausted ones
// so a user sees why captures stopped; service filters when not empty.
func (t *Tenant) Breakpoints(ctx context.Context, service string) ([]BreakpointStatus, error) {
	var w where
	w.add("tenant_id = ?", t.id)
	w.add("deleted_ns = 0")
	if service != "" {
		w.add("service = ?", service)
	}
	var out []BreakpointStatus
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT id, service, file, line, condition, hit_limit, hit_count,
		expires_ns, created_ns, deleted_ns, last_hit_ns FROM breakpoints`+w.sql()+` ORDER BY created_ns DESC, id`), w.args...)
	if err != nil {
		return nil, fmt.Errorf("list breakpoints: %w", err)
	}
	return out, nil
}

// DeleteBreakpoint marks a breakpoint deleted at now, so agents drop it on their next poll while its
// snapshots stay. It returns ErrNotFound when there is no such undeleted breakpoint.
func (t *Tenant) DeleteBreakpoint(ctx context.Context, id string, now int64) error {
	res, err := t.db.x.ExecContext(ctx, t.rebind(`UPDATE breakpoints SET deleted_ns = ?
		WHERE tenant_id = ? AND id = ? AND deleted_ns = 0`), now, t.id, id)
	if err != nil {
		return fmt.Errorf("delete breakpoint %s: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// RecordSnapshot counts a hit of s.BreakpointID and stores the capture, in one transaction, only if
// the breakpoint is active at now; concurrent captures never exceed the hit limit. The stored
// snapshot's service is the breakpoint's. It returns ErrNotFound for an unknown breakpoint and
// ErrBreakpointInactive for one that may no longer capture.
func (t *Tenant) RecordSnapshot(ctx context.Context, s Snapshot, now int64) (int64, error) {
	var id int64
	// Before the transaction: creating a partition waits for transactions on the tenant's table.
	if err := t.EnsurePartitions(ctx, "snapshots", s.CapturedNS); err != nil {
		return 0, err
	}
	err := t.db.write(ctx, func(tx *sqlx.Tx) error {
		err := tx.GetContext(ctx, &s.Service, tx.Rebind(`UPDATE breakpoints SET hit_count = hit_count + 1, last_hit_ns = ?
			WHERE tenant_id = ? AND id = ? AND deleted_ns = 0 AND (expires_ns = 0 OR expires_ns > ?)
				AND (hit_limit = 0 OR hit_count < hit_limit)
			RETURNING service`), now, t.id, s.BreakpointID, now)
		if errors.Is(err, sql.ErrNoRows) {
			var exists int
			if err := tx.GetContext(ctx, &exists, tx.Rebind(`SELECT COUNT(*) FROM breakpoints WHERE tenant_id = ? AND id = ?`),
				t.id, s.BreakpointID); err != nil {
				return err
			}
			if exists == 0 {
				return ErrNotFound
			}
			return ErrBreakpointInactive
		}
		if err != nil {
			return err
		}
		return tx.GetContext(ctx, &id, tx.Rebind(`INSERT INTO snapshots
				(tenant_id, breakpoint_id, service, trace_id, span_id, captured_ns, variables, stack)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			t.id, s.BreakpointID, s.Service, s.TraceID, s.SpanID, s.CapturedNS, t.json(s.Variables, "{}"), t.json(s.Stack, "[]"))
	})
	if err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrBreakpointInactive) {
			return 0, err
		}
		return 0, fmt.Errorf("record snapshot of breakpoint %s: %w", s.BreakpointID, err)
	}
	return id, nil
}
