package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
)

// Read queries shared by the MCP tools. Both engines run the same SQL except for reading a key out
// of a JSON column, which jsonText keeps in one place.

// errorCond is what makes a request a failure: OTLP status ERROR, or an HTTP 5xx answer. Span.Failed
// is the same rule in Go.
const errorCond = "(status_code = 2 OR http_status_code >= 500)"

// where accumulates AND-ed conditions and their bind arguments.
type where struct {
	conds []string
	args  []any
	// traces: the rows must be of these traces, which an attribute index lookup found (nil: any).
	traces []foundTrace
}

// spans returns the FROM clause reading w's rows, and its arguments (which precede w.args). On
// PostgreSQL a trace list is joined as a VALUES list, so each trace is looked up by its id: with an
// IN list the planner read a partition's share of the window by time instead and filtered by trace,
// which it chose for the hours of the window in the previous day's partition (8,800 buffers against
// 1,200 over 24 h with 150 traces). SQLite plans a join to a range scan per trace; it keeps the list.
func (t *Tenant) spans(w *where) (string, []any, error) {
	switch {
	case w.traces == nil:
		return "spans", nil, nil
	case t.db.dialect != Postgres:
		ids := make([]string, len(w.traces))
		for i, f := range w.traces {
			ids[i] = f.id
		}
		cond, args, err := inList("trace_id", ids)
		if err != nil {
			return "", nil, err
		}
		w.add(cond, args...)
		return "spans", nil, nil
	}
	args := make([]any, len(w.traces))
	for i, f := range w.traces {
		args[i] = f.id
	}
	// The list's type is its first value's: sent as text (byValue), the ids are cast to uuid there.
	return "(VALUES (?::uuid)" + strings.Repeat(", (?)", len(w.traces)-1) + ") AS found JOIN spans ON spans.trace_id = found.column1", args, nil
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// byValue returns the arguments of a query whose plan must follow their values: on PostgreSQL the
// query is sent unprepared, so it is planned for these values each time. A cached statement turns
// to a generic plan after five runs; for a list of found traces that plan cannot prune the window's
// day partitions nor estimate its range, and walked the day's entry spans by time, filtering by
// trace (1.0–1.7 s a query over 24 h of 1.5 M spans where the planned-for-values one takes 2–6 ms).
func (t *Tenant) byValue(args []any) []any {
	if t.db.dialect != Postgres {
		return args
	}
	return append([]any{pgx.QueryExecModeExec}, args...)
}

// inList returns "col IN (?, ?, …)" for vals.
func inList(col string, vals []string) (string, []any, error) {
	return sqlx.In(col+" IN (?)", vals)
}

// jsonText returns an expression for the text of key in a JSON object column, and its argument.
// SQLite's json_extract yields numbers as numbers; casting makes 500 compare equal to '500' as on
// PostgreSQL.
func (t *Tenant) jsonText(col, key string) (string, any) {
	if t.db.dialect == SQLite {
		return "CAST(json_extract(" + col + ", ?) AS TEXT)", `$."` + strings.ReplaceAll(key, `"`, `\"`) + `"`
	}
	return "(" + col + " ->> ?)", key
}

// Percentiles of a group of requests, nearest-rank, in nanoseconds.
type Percentiles struct {
	P50NS int64 `db:"p50_ns"`
	P90NS int64 `db:"p90_ns"`
	P95NS int64 `db:"p95_ns"`
	P99NS int64 `db:"p99_ns"`
}

// RequestStats summarises the requests of one group (a service, an operation, a time bucket).
type RequestStats struct {
	Key      string `db:"k"`
	Requests int64  `db:"requests"`
	Errors   int64  `db:"errors"`
	Percentiles
	// FirstNS and LastNS are the start times of the group's first and last requests.
	FirstNS int64 `db:"first_ns"`
	LastNS  int64 `db:"last_ns"`
}

// requestStats groups the entry spans selected by w in from (spans, perhaps joined) by the SQL
// expression key and returns counts and exact nearest-rank percentiles per group. It uses window
// functions rather than percentile_disc so that one statement serves both engines.
func (t *Tenant) requestStats(ctx context.Context, key, from string, w where) ([]RequestStats, error) {
	rank := func(p int) string {
		// nearest rank = ceil(p/100 * n), in integer arithmetic
		return "MIN(CASE WHEN rn >= (n * " + strconv.Itoa(p) + " + 99) / 100 THEN duration_ns END)"
	}
	q := `SELECT k, COUNT(*) AS requests, SUM(err) AS errors, ` +
		rank(50) + ` AS p50_ns, ` + rank(90) + ` AS p90_ns, ` + rank(95) + ` AS p95_ns, ` + rank(99) + ` AS p99_ns,
			MIN(start_ns) AS first_ns, MAX(start_ns) AS last_ns
		FROM (SELECT ` + key + ` AS k, start_ns, duration_ns, CASE WHEN ` + errorCond + ` THEN 1 ELSE 0 END AS err,
				ROW_NUMBER() OVER (PARTITION BY ` + key + ` ORDER BY duration_ns) AS rn,
				COUNT(*) OVER (PARTITION BY ` + key + `) AS n
			FROM ` + from + w.sql() + `) d
		GROUP BY k ORDER BY k`
	var out []RequestStats
	if err := t.db.x.SelectContext(ctx, &out, t.rebind(q), w.args...); err != nil {
		return nil, err
	}
	return out, nil
}

// entrySpans starts a condition list selecting the tenant's entry spans in [from, to).
func (t *Tenant) entrySpans(from, to int64) where {
	var w where
	w.add("tenant_id = ?", t.id)
	w.add("is_entry = true")
	w.add("start_ns >= ? AND start_ns < ?", from, to)
	return w
}
