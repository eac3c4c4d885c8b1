package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// expiring are the per-event tables that retention empties: what ingest and the debugger append
// without bound. On PostgreSQL they are time-partitioned (partitions.go) and retention drops their
// partitions; on SQLite each is deleted by the time column of an index that has it (sqliteIndex
// names it, since SQLite's planner prefers spans_span for the tenant_id equality and would scan every
// span). Rollups expire in CompactRollups; services, alerts, anomalies and their reports are one row
// per service or episode and are kept.
var expiring = []struct{ table, col, sqliteIndex string }{
	{"spans", "start_ns", "spans_start"},
	{"llm_calls", "start_ns", "llm_calls_time"},
	{"snapshots", "captured_ns", "snapshots_time"},
	{"span_attributes", "start_ns", "span_attributes_start"},
}

// Expired counts what DeleteOlderThan deleted.
type Expired struct {
	Spans, LLMCalls, Snapshots int64    // rows deleted (SQLite)
	IndexRows                  int64    // attribute index rows deleted (span_attributes, SQLite)
	Statements                 int      // DELETEs run, each its own transaction
	Partitions                 []string // partitions dropped (PostgreSQL)
}

// Rows is the number of rows deleted from all tables.
func (e Expired) Rows() int64 { return e.Spans + e.LLMCalls + e.Snapshots + e.IndexRows }

// DeleteOlderThan removes the tenant's spans, LLM calls and snapshots that started (or were
// captured) before the unix-nanosecond time before. On PostgreSQL it drops the tenant's partitions
// of every table that expires with retention (tracekit_partitioned) that hold only older rows: rows
// are kept until their whole partition (a day) is past, at most a day longer than asked, and no row
// is deleted one by one. On SQLite it deletes at most batch rows per statement, each committing on
// its own, so a large purge holds no lock for long and is not one huge transaction. Two runs at once
// (a slow run overlapping the next) are harmless.
func (t *Tenant) DeleteOlderThan(ctx context.Context, before int64, batch int) (Expired, error) {
	var e Expired
	if batch < 1 {
		return e, fmt.Errorf("delete older than retention: batch %d, want at least 1", batch)
	}
	var errs []error
	if t.db.dialect == Postgres {
		tables, err := t.db.PartitionedTables(ctx)
		if err != nil {
			return e, err
		}
		for _, p := range tables {
			if p.Expires != ExpiresRetention {
				continue
			}
			// A table that fails does not keep the others' partitions.
			dropped, err := t.DropPartitions(ctx, p.Table, before)
			e.Partitions = append(e.Partitions, dropped...)
			errs = append(errs, err)
		}
		return e, errors.Join(errs...)
	}
	counts := []*int64{&e.Spans, &e.LLMCalls, &e.Snapshots, &e.IndexRows}
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
// (SQLite only.)
func (t *Tenant) deleteOlderThan(ctx context.Context, table, col, sqliteIndex string, before int64, batch int) (deleted int64, stmts int, err error) {
	from := table + " INDEXED BY " + sqliteIndex
	var oldest *int64
	if err := t.db.x.GetContext(ctx, &oldest, t.rebind(`SELECT MIN(`+col+`) FROM `+from+`
		WHERE tenant_id = ? AND `+col+` < ?`), t.id, before); err != nil || oldest == nil {
		return 0, 0, err
	}
	window := ` FROM ` + from + ` WHERE tenant_id = ? AND ` + col + ` >= ? AND ` + col + ` < ? LIMIT ?`
	del := `DELETE FROM ` + table + ` WHERE rowid IN (SELECT rowid` + window + `)`
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
