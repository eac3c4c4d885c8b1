package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// Day is a day in nanoseconds: partitions are whole days (or weeks) since 1970, UTC.
const Day = int64(86400e9)

// Partitioned is a time-partitioned table: on PostgreSQL, partitioned by LIST (tenant_id) and each
// tenant's partition by RANGE (TimeColumn) in periods of WidthDays (migration 00008, table
// tracekit_partitioned). SQLite keeps plain tables; there the functions below do nothing.
type Partitioned struct {
	Table      string `db:"table_name"`
	TimeColumn string `db:"time_column"`
	WidthDays  int64  `db:"width_days"`
	// Expires says which horizon drops the table's partitions: ExpiresRetention (the tenant's
	// retention, DeleteOlderThan) or ExpiresRollups (rollup retention, CompactRollups).
	Expires string `db:"expires"`
}

// Values of Partitioned.Expires.
const (
	ExpiresRetention = "retention"
	ExpiresRollups   = "rollups"
)

// partitionState caches the registry and the partitions known to exist, so that ingest calls
// tracekit_ensure_partitions only for a period it has not seen (about once per tenant and day).
type partitionState struct {
	mu     sync.Mutex
	tables []Partitioned // nil until loaded
	made   map[partitionKey]bool
}

type partitionKey struct {
	table, tenant string
	period        int64 // start time / width
}

// PartitionedTables lists the time-partitioned tables (none on SQLite).
func (db *DB) PartitionedTables(ctx context.Context) ([]Partitioned, error) {
	if db.dialect != Postgres {
		return nil, nil
	}
	db.parts.mu.Lock()
	defer db.parts.mu.Unlock()
	if db.parts.tables != nil {
		return db.parts.tables, nil
	}
	var tables []Partitioned
	if err := db.x.SelectContext(ctx, &tables, `SELECT table_name, time_column, width_days, expires FROM tracekit_partitioned ORDER BY table_name`); err != nil {
		return nil, fmt.Errorf("list partitioned tables: %w", err)
	}
	db.parts.tables = tables
	return tables, nil
}

func (db *DB) partitionedTable(ctx context.Context, table string) (Partitioned, error) {
	tables, err := db.PartitionedTables(ctx)
	if err != nil {
		return Partitioned{}, err
	}
	for _, p := range tables {
		if p.Table == table {
			return p, nil
		}
	}
	return Partitioned{}, fmt.Errorf("table %q is not time-partitioned: register it in tracekit_partitioned", table)
}

// EnsurePartitions creates, if missing, the tenant's partitions of table that hold the given unix
// nanosecond times. Ingest calls it before writing (a span may be days old or a little in the
// future: its partition is made on demand), and the server's background job calls it for the days
// ahead (EnsurePartitionsAhead) so that ingest rarely has to.
func (t *Tenant) EnsurePartitions(ctx context.Context, table string, times ...int64) error {
	if t.db.dialect != Postgres || len(times) == 0 {
		return nil
	}
	p, err := t.db.partitionedTable(ctx, table)
	if err != nil {
		return err
	}
	width := p.WidthDays * Day
	var missing []int64
	seen := map[int64]bool{}
	t.db.parts.mu.Lock()
	for _, at := range times {
		k := partitionKey{table, t.id, floorDiv(at, width)}
		if !t.db.parts.made[k] && !seen[k.period] {
			seen[k.period] = true
			missing = append(missing, k.period*width)
		}
	}
	t.db.parts.mu.Unlock()
	if len(missing) == 0 {
		return nil
	}
	if _, err := t.db.x.ExecContext(ctx, `SELECT tracekit_ensure_partitions($1, $2, $3)`, t.id, table, missing); err != nil {
		return fmt.Errorf("create partitions of %s for tenant %q: %w", table, t.id, err)
	}
	t.db.parts.mu.Lock()
	if t.db.parts.made == nil {
		t.db.parts.made = map[partitionKey]bool{}
	}
	for _, start := range missing {
		t.db.parts.made[partitionKey{table, t.id, start / width}] = true
	}
	t.db.parts.mu.Unlock()
	return nil
}

// EnsurePartitionsAhead creates every partitioned table's partitions for the day before now to
// two days after, for the tenant.
func (t *Tenant) EnsurePartitionsAhead(ctx context.Context, now int64) error {
	tables, err := t.db.PartitionedTables(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, p := range tables {
		errs = append(errs, t.EnsurePartitions(ctx, p.Table, now-Day, now, now+Day, now+2*Day))
	}
	return errors.Join(errs...)
}

// DropPartitions drops the tenant's partitions of table that hold only times before the unix
// nanosecond time before, and returns their names. Data of a partition that also holds later times
// stays until a later run: retention drops whole partitions, never rows.
func (t *Tenant) DropPartitions(ctx context.Context, table string, before int64) ([]string, error) {
	if t.db.dialect != Postgres {
		return nil, nil
	}
	var dropped []string
	if err := t.db.x.SelectContext(ctx, &dropped, `SELECT tracekit_drop_partitions($1, $2, $3)`, t.id, table, before); err != nil {
		return nil, fmt.Errorf("drop partitions of %s for tenant %q: %w", table, t.id, err)
	}
	if len(dropped) > 0 {
		t.db.forgetPartitions(t.id)
	}
	return dropped, nil
}

// CompactPartitions rebuilds once, packed (fillfactor 100), the indexes of the tenant's partitions
// of every table that expires with retention and holds only times before the unix nanosecond time
// before: days that are over. Rows arrive in random key order (trace ids), so a live btree's pages
// are about 70% full and a day's indexes take 63 bytes a span on the ingest benchmark, 116 on demo
// traffic; rebuilt, 44 and 78 (docs/data-model.md, "Closed days' indexes"). No row is read
// back differently or changed: REINDEX CONCURRENTLY builds the new index beside the old one while
// readers and late writers go on. fillfactor 100 marks an index done; it is reset when the rebuild
// fails, so the next run tries again. Only the tables' owner may rebuild: another connection (a
// tenant's own role) finds nothing to do. Returns the indexes rebuilt.
func (t *Tenant) CompactPartitions(ctx context.Context, before int64) ([]string, error) {
	if t.db.dialect != Postgres {
		return nil, nil
	}
	var indexes []string
	// The day is parsed from the name as tracekit_drop_partitions does, under a CASE for the same reason.
	err := t.db.x.SelectContext(ctx, &indexes, `SELECT x.indexrelid::regclass::text
		FROM tracekit_partitioned p
		JOIN pg_inherits i ON i.inhparent = to_regclass(tracekit_tenant_partition(p.table_name, $1))
		JOIN pg_class c ON c.oid = i.inhrelid
		JOIN pg_index x ON x.indrelid = c.oid
		JOIN pg_class ic ON ic.oid = x.indexrelid
		WHERE p.expires = 'retention' AND x.indisvalid AND pg_has_role(c.relowner, 'USAGE')
			AND NOT COALESCE('fillfactor=100' = ANY (ic.reloptions), false)
			AND CASE WHEN c.relname ~ '_[0-9]{8}$'
				THEN extract(epoch FROM to_date(right(c.relname, 8), 'YYYYMMDD'))::bigint * 1000000000
					+ p.width_days::bigint * 86400000000000 <= $2 END
		ORDER BY 1`, t.id, before)
	if err != nil {
		return nil, fmt.Errorf("list closed partitions' indexes for tenant %q: %w", t.id, err)
	}
	var done []string
	for _, idx := range indexes { // regclass text: quoted as needed
		if _, err := t.db.x.ExecContext(ctx, "ALTER INDEX "+idx+" SET (fillfactor = 100)"); err != nil {
			return done, fmt.Errorf("compact index %s: %w", idx, err)
		}
		if _, err := t.db.x.ExecContext(ctx, "REINDEX INDEX CONCURRENTLY "+idx); err != nil {
			_, _ = t.db.x.ExecContext(context.WithoutCancel(ctx), "ALTER INDEX "+idx+" RESET (fillfactor)")
			return done, fmt.Errorf("compact index %s: %w", idx, err)
		}
		done = append(done, idx)
	}
	return done, nil
}

// forgetPartitions clears what is known of a tenant's partitions, after some were dropped.
func (db *DB) forgetPartitions(tenant string) {
	db.parts.mu.Lock()
	defer db.parts.mu.Unlock()
	for k := range db.parts.made {
		if k.tenant == tenant {
			delete(db.parts.made, k)
		}
	}
}

// missingPartition reports whether err is PostgreSQL's refusal of a row no partition holds: a
// partition this process believed made was dropped meanwhile (by another replica's retention run).
func missingPartition(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514" && strings.Contains(pgErr.Message, "no partition")
}

// floorDiv divides rounding towards minus infinity, so that times before 1970 get their own period.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}
