package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// Background analysis (rollup compaction, alert evaluation, anomaly detection) runs in every replica
// of a tenant's server, and each tick of each job must run once. A replica claims a tick with a
// conditional upsert that only one of any number of concurrent claimers wins; the claim is in the
// database, so a restarted replica does not redo a tick either. Results then commit only while the
// tick is still the job's latest claim, so a replica that stalls past the next tick cannot overwrite
// newer state.

// ClaimTick claims tick (any increasing number, normally a unix-nanosecond time) of job for this
// caller. It returns false when this or a later tick is already claimed.
func (t *Tenant) ClaimTick(ctx context.Context, job string, tick int64) (bool, error) {
	claimed := false
	err := t.db.write(ctx, func(tx *sqlx.Tx) error {
		var got int64
		err := tx.GetContext(ctx, &got, tx.Rebind(`INSERT INTO analysis_jobs (tenant_id, job, tick_ns) VALUES (?, ?, ?)
			ON CONFLICT (tenant_id, job) DO UPDATE SET tick_ns = excluded.tick_ns
			WHERE analysis_jobs.tick_ns < excluded.tick_ns
			RETURNING tick_ns`), t.id, job, tick)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		claimed = err == nil
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claim %s tick %d: %w", job, tick, err)
	}
	return claimed, nil
}

// JobState is where a job stands.
type JobState struct {
	TickNS     int64 `db:"tick_ns"`     // latest claimed tick
	DoneNS     int64 `db:"done_ns"`     // latest tick whose results committed
	ProgressNS int64 `db:"progress_ns"` // how far the job has processed data
}

// JobState returns the state of job; zero before its first claim.
func (t *Tenant) JobState(ctx context.Context, job string) (JobState, error) {
	var s JobState
	err := t.db.x.GetContext(ctx, &s, t.rebind(`SELECT tick_ns, done_ns, progress_ns FROM analysis_jobs
		WHERE tenant_id = ? AND job = ?`), t.id, job)
	if errors.Is(err, sql.ErrNoRows) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("read state of %s: %w", job, err)
	}
	return s, nil
}

// TickTx is the transaction in which a tick's results are written.
type TickTx struct {
	t   *Tenant
	tx  *sqlx.Tx
	ctx context.Context
}

// CommitTick runs fn in a transaction that also records tick as done and the job's progress, and
// commits only if tick is still the job's latest claim. It returns false (having written nothing)
// when a later tick was claimed meanwhile.
func (t *Tenant) CommitTick(ctx context.Context, job string, tick, progress int64, fn func(*TickTx) error) (bool, error) {
	current := false
	err := t.db.write(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, tx.Rebind(`UPDATE analysis_jobs SET done_ns = ?, progress_ns = ?
			WHERE tenant_id = ? AND job = ? AND tick_ns = ?`), tick, progress, t.id, job, tick)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		current = true
		return fn(&TickTx{t: t, tx: tx, ctx: ctx})
	})
	if err != nil {
		return false, fmt.Errorf("commit %s tick %d: %w", job, tick, err)
	}
	return current, nil
}

func (x *TickTx) exec(q string, args ...any) (sql.Result, error) {
	return x.tx.ExecContext(x.ctx, x.tx.Rebind(q), args...)
}
