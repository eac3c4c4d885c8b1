package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jmoiron/sqlx"
)

// table is a table that ingest writes in bulk: its columns in the order of the row function that
// fills it (Tenant.spanRow, llmRow, rollupRow), each with its PostgreSQL type. The type is the
// element type of the array that carries the column to INSERT … SELECT FROM unnest, so changing a
// column's type means changing it here and in the row function, nowhere else.
type table struct {
	name  string
	cols  []string // column names
	types []string // PostgreSQL types, one per column
	// unnest is INSERT INTO name (cols) SELECT * FROM unnest($1::type[], …): one statement per batch
	// whatever its size, every value sent in binary.
	unnest string
}

// newTable declares a table from "column type" pairs.
func newTable(name string, columns ...string) table {
	t := table{name: name}
	arrays := make([]string, len(columns))
	for i, c := range columns {
		col, typ, _ := strings.Cut(c, " ")
		if _, ok := arrayOf[typ]; !ok {
			panic("store: no array encoding for column type " + typ) // a programming error, caught by any test
		}
		t.cols, t.types = append(t.cols, col), append(t.types, typ)
		arrays[i] = "$" + strconv.Itoa(i+1) + "::" + typ + "[]"
	}
	t.unnest = "INSERT INTO " + name + " (" + strings.Join(t.cols, ", ") + ") SELECT * FROM unnest(" + strings.Join(arrays, ", ") + ")"
	return t
}

var spansTable = newTable("spans", "tenant_id text", "trace_id text", "span_id text", "parent_span_id text",
	"service text", "service_version text", "operation text", "kind smallint", "is_entry boolean", "start_ns bigint",
	"duration_ns bigint", "status_code smallint", "status_message text", "http_method text", "http_route text",
	"http_status_code integer", "db_system text", "db_statement text", "rpc_service text", "rpc_method text",
	"peer_service text", "host_name text", "attributes jsonb", "resource_attributes jsonb", "events jsonb")

var llmTable = newTable("llm_calls", "tenant_id text", "trace_id text", "span_id text", "service text",
	"operation text", "provider text", "request_model text", "response_model text", "input_tokens bigint",
	"output_tokens bigint", "cached_input_tokens bigint", "cost_usd float8", "start_ns bigint", "duration_ns bigint",
	"status_code smallint", "error_type text")

var rollupsTable = newTable("metric_rollups", "tenant_id text", "kind smallint", "service text", "name text",
	"res_ns bigint", "bucket_ns bigint", "partial boolean", "n bigint", "errors bigint", "cost_usd float8",
	"input_tokens bigint", "output_tokens bigint", "hist bytea")

// arrayOf gathers one column of n rows into a slice of the Go type pgx encodes as an array of the
// column's type.
var arrayOf = map[string]func(n int, value func(int) any) any{
	"text":     column[string],
	"smallint": column[int16],
	"integer":  column[int32],
	"bigint":   column[int64],
	"boolean":  column[bool],
	"float8":   floats,
	"jsonb":    column[[]byte],
	"bytea":    column[[]byte],
}

func column[T any](n int, value func(int) any) any {
	out := make([]T, n)
	for i := range out {
		out[i] = value(i).(T)
	}
	return out
}

// floats gathers a double precision column, nullable (llmRow's cost is nil when unknown) or not
// (rollupRow's sums).
func floats(n int, value func(int) any) any {
	out := make([]*float64, n)
	for i := range out {
		switch v := value(i).(type) {
		case float64:
			out[i] = &v
		case *float64:
			out[i] = v
		}
	}
	return out
}

// arrays turns n rows into one array per column, the arguments of tb.unnest.
func (tb *table) arrays(n int, row func(int) []any) []any {
	rows := make([][]any, n)
	for i := range rows {
		rows[i] = row(i)
	}
	args := make([]any, len(tb.cols))
	for j, typ := range tb.types {
		args[j] = arrayOf[typ](n, func(i int) any { return rows[i][j] })
	}
	return args
}

// bulkWrite writes n rows of tb in one statement on a pgx transaction: COPY where allowed, else
// (a tenant's role, which PostgreSQL refuses COPY FROM under row-level security) INSERT … SELECT
// FROM unnest, which the policies check for every row.
func (tb *table) bulkWrite(ctx context.Context, tx pgx.Tx, underRLS bool, n int, row func(int) []any) error {
	if n == 0 {
		return nil
	}
	var err error
	if underRLS {
		_, err = tx.Exec(ctx, tb.unnest, tb.arrays(n, row)...)
	} else {
		_, err = tx.CopyFrom(ctx, pgx.Identifier{tb.name}, tb.cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
	}
	if err != nil {
		return fmt.Errorf("write %d rows to %s: %w", n, tb.name, err)
	}
	return nil
}

// insertRows inserts n rows of tb in a transaction: on PostgreSQL with one INSERT … SELECT FROM
// unnest; on SQLite with multi-row statements, far fewer statement executions than one row at a
// time, which is what SQLite's per-statement cost is about.
func (t *Tenant) insertRows(ctx context.Context, tx *sqlx.Tx, tb *table, n int, row func(int) []any) error {
	if n == 0 {
		return nil
	}
	if t.db.dialect == Postgres {
		if _, err := tx.ExecContext(ctx, tb.unnest, tb.arrays(n, row)...); err != nil {
			return fmt.Errorf("insert into %s: %w", tb.name, err)
		}
		return nil
	}
	const perStatement = 64
	var stmt *sqlx.Stmt
	defer func() {
		if stmt != nil {
			stmt.Close()
		}
	}()
	args := make([]any, 0, perStatement*len(tb.cols))
	for i := 0; i < n; i += perStatement {
		k := min(perStatement, n-i)
		if stmt == nil || k != perStatement {
			if stmt != nil {
				stmt.Close()
			}
			tuple := "(" + placeholders(len(tb.cols)) + ")"
			values := strings.Repeat(tuple+",", k-1) + tuple
			var err error
			if stmt, err = tx.PreparexContext(ctx, "INSERT INTO "+tb.name+" ("+strings.Join(tb.cols, ", ")+") VALUES "+values); err != nil {
				return err
			}
		}
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = append(args, row(j)...)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert into %s: %w", tb.name, err)
		}
	}
	return nil
}
