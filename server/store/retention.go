package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// expiring are the per-event tables that retention empties: what ingest and the debugger append
// without bound. Each is deleted by the time column of an index that has it (sqliteIndex names it,
// since SQLite's planner prefers spans_span for the tenant_id equality and would scan every span).
// Rollups expire in CompactRollups; services, alerts, anomalies and their reports are one row per
// service or episode and are kept.
var expiring = []struct{ table, col, sqliteIndex string }{
	{"spans", "start_ns", "spans_start"}, // BRIN spans_start_brin on PostgreSQL
	{"llm_calls", "start_ns", "llm_calls_time"},
	{"snapshots", "captured_ns", "snapshots_time"},
	{"span_attributes", "start_ns", "span_attributes_start"}, // BRIN span_attributes_start_brin on PostgreSQL
}

// Expired counts what DeleteOlderThan deleted.
type Expired struct {
	Spans, LLMCalls, Snapshots int64
	IndexRows                  int64 // attribute index rows (span_attributes)
	Statements                 int   // DELETEs run, each its own transaction
}

// Rows is the number of rows deleted from all tables.
func (e Expired) Rows() int64 { return e.Spans + e.LLMCalls + e.Snapshots + e.IndexRows }

// DeleteOlderThan deletes the tenant's spans, LLM calls and snapshots that started (or were captured)
// before the unix-nanosecond time before, at most batch rows per statement. Each statement commits on
// its own, so a large purge holds no lock for long and is not one huge transaction in the WAL. Two runs
// at once (a slow run overlapping the next) are harmless: they delete the same rows.
func (t *Tenant) DeleteOlderThan(ctx context.Context, before int64, batch int) (Expired, error) {
	var e Expired
	if batch < 1 {
		return e, fmt.Errorf("delete older than retention: batch %d, want at least 1", batch)
	}
	counts := []*int64{&e.Spans, &e.LLMCalls, &e.Snapshots, &e.IndexRows}
	var errs []error
	for i, x := range expiring {
		// A table that fails does not keep the others' rows: each is deleted on its own.
		n, stmts, err := t.deleteOlderThan(ctx, x.table, x.col, x.sqliteIndex, before, batch)
		*counts[i] += n
		e.Statements += stmts
		if err != nil {
			errs = append(errs, fmt.Errorf("delete %s older than retention: %w", x.table, err))
		}
	}
	return e, errors.Join(errs...)
}

// deleteOlderThan walks from the oldest row up to before in windows of time, deleting up to batch rows
// of a window per statement. A window is narrowed while it holds more than a batch and widened when
// it empties, so that each statement's index scan reads about one batch of rows, not the rows earlier
// statements left dead (until vacuum) as a plain "DELETE … LIMIT n" loop from the start would.
func (t *Tenant) deleteOlderThan(ctx context.Context, table, col, sqliteIndex string, before int64, batch int) (deleted int64, stmts int, err error) {
	from := table
	if t.db.dialect == SQLite {
		from += " INDEXED BY " + sqliteIndex
	}
	var oldest *int64
	if err := t.db.x.GetContext(ctx, &oldest, t.rebind(`SELECT MIN(`+col+`) FROM `+from+`
		WHERE tenant_id = ? AND `+col+` < ?`), t.id, before); err != nil || oldest == nil {
		return 0, 0, err
	}
	window := ` FROM ` + from + ` WHERE tenant_id = ? AND ` + col + ` >= ? AND ` + col + ` < ? LIMIT ?`
	del := `DELETE FROM ` + table + ` WHERE ctid = ANY (ARRAY (SELECT ctid` + window + `))`
	if t.db.dialect == SQLite {
		del = `DELETE FROM ` + table + ` WHERE rowid IN (SELECT rowid` + window + `)`
	}
	del = t.rebind(del)
	// Widths are unsigned: a bogus start time near the int64 limits must not overflow them.
	lo, width := *oldest, uint64(3600e9)
	for lo < before {
		hi := before
		if width < uint64(before-lo) {
			hi = lo + int64(width)
		}
		var n int64
		err := t.db.write(ctx, func(tx *sqlx.Tx) error {
			res, err := tx.ExecContext(ctx, del, t.id, lo, hi, batch)
			if err == nil {
				n, err = res.RowsAffected()
			}
			return err
		})
		if err != nil {
			return deleted, stmts, err
		}
		deleted += n
		stmts++
		switch {
		case n < int64(batch): // the window is empty now
			lo = hi
			if width < 1<<62 {
				width *= 2
			}
		case uint64(hi-lo) > 1:
			width = uint64(hi-lo) / 2
			// else more than a batch of rows share one timestamp: delete again
		}
	}
	return deleted, stmts, nil
}
