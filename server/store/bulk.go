package store

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
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
		if _, ok := elements[typ]; !ok {
			panic("store: no array encoding for column type " + typ) // a programming error, caught by any test
		}
		t.cols, t.types = append(t.cols, col), append(t.types, typ)
		arrays[i] = "$" + strconv.Itoa(i+1) + "::" + typ + "[]"
	}
	t.unnest = "INSERT INTO " + name + " (" + strings.Join(t.cols, ", ") + ") SELECT * FROM unnest(" + strings.Join(arrays, ", ") + ")"
	return t
}

var spansTable = newTable("spans", "start_ns bigint", "duration_ns bigint", "span_id bigint", "parent_span_id bigint",
	"resource_id bigint", "trace_id uuid", "http_status_code integer", "kind smallint", "status_code smallint",
	"is_entry boolean", "tenant_id text", "service text", "service_version text", "operation text",
	"status_message text", "http_method text", "http_route text", "db_system text", "db_statement text",
	"rpc_service text", "rpc_method text", "peer_service text", "host_name text", "attributes jsonb",
	"events jsonb", // migration 00014
	"links jsonb")  // migration 00015

var llmTable = newTable("llm_calls", "tenant_id text", "trace_id text", "span_id text", "service text",
	"operation text", "provider text", "request_model text", "response_model text", "input_tokens bigint",
	"output_tokens bigint", "cached_input_tokens bigint", "cost_usd float8", "start_ns bigint", "duration_ns bigint",
	"status_code smallint", "error_type text")

var rollupsTable = newTable("metric_rollups", "tenant_id text", "kind smallint", "service text", "name text",
	"res_ns bigint", "bucket_ns bigint", "partial boolean", "n bigint", "errors bigint", "cost_usd float8",
	"input_tokens bigint", "output_tokens bigint", "hist bytea")

// elements appends one value of each column type in PostgreSQL's binary format (what the type's
// send function writes) and reports whether the value is NULL.
var elements = map[string]struct {
	oid    uint32
	append func(buf []byte, v any) ([]byte, bool)
}{
	"text": {pgtype.TextOID, func(b []byte, v any) ([]byte, bool) {
		if v == nil { // emptyNull: an empty promoted text
			return b, true
		}
		return append(b, v.(string)...), false
	}},
	"smallint": {pgtype.Int2OID, func(b []byte, v any) ([]byte, bool) {
		return binary.BigEndian.AppendUint16(b, uint16(v.(int16))), false
	}},
	"integer": {pgtype.Int4OID, func(b []byte, v any) ([]byte, bool) {
		return binary.BigEndian.AppendUint32(b, uint32(v.(int32))), false
	}},
	"bigint": {pgtype.Int8OID, func(b []byte, v any) ([]byte, bool) {
		if v == nil { // a root's parent span id
			return b, true
		}
		return binary.BigEndian.AppendUint64(b, uint64(v.(int64))), false
	}},
	"uuid": {pgtype.UUIDOID, func(b []byte, v any) ([]byte, bool) {
		id := v.([16]byte)
		return append(b, id[:]...), false
	}},
	"boolean": {pgtype.BoolOID, func(b []byte, v any) ([]byte, bool) {
		if v.(bool) {
			return append(b, 1), false
		}
		return append(b, 0), false
	}},
	"float8": {pgtype.Float8OID, func(b []byte, v any) ([]byte, bool) {
		f, ok := v.(float64)
		if p, isPtr := v.(*float64); isPtr && p != nil { // llmRow's cost is nil when unknown
			f, ok = *p, true
		}
		return binary.BigEndian.AppendUint64(b, math.Float64bits(f)), !ok
	}},
	"jsonb": {pgtype.JSONBOID, func(b []byte, v any) ([]byte, bool) {
		if v == nil { // nullJSON: an empty document
			return b, true
		}
		return append(append(b, 1), v.([]byte)...), false // format version 1
	}},
	"bytea": {pgtype.ByteaOID, func(b []byte, v any) ([]byte, bool) { return append(b, v.([]byte)...), false }},
}

// pgArray is a one-dimensional array in PostgreSQL's binary format, sent as it is (arrayCodec).
type pgArray []byte

// arrays turns n rows into one binary array per column, the arguments of tb.unnest. Encoding them
// here costs a type switch per value, where pgx's generic array encoding reflects on every element.
func (tb *table) arrays(n int, row func(int) []any) []any {
	bufs := make([][]byte, len(tb.cols))
	for j, typ := range tb.types {
		// Header: one dimension, no NULLs (patched below), element type, n elements from index 1.
		b := make([]byte, 20, 20+n*16)
		binary.BigEndian.PutUint32(b[0:], 1)
		binary.BigEndian.PutUint32(b[8:], elements[typ].oid)
		binary.BigEndian.PutUint32(b[12:], uint32(n))
		binary.BigEndian.PutUint32(b[16:], 1)
		bufs[j] = b
	}
	for i := 0; i < n; i++ {
		for j, v := range row(i) {
			b := append(bufs[j], 0, 0, 0, 0) // the element's length, set once it is written
			at := len(b)
			b, null := elements[tb.types[j]].append(b, v)
			if null {
				b = b[:at]
				binary.BigEndian.PutUint32(b[at-4:], math.MaxUint32) // -1: NULL
				binary.BigEndian.PutUint32(b[4:], 1)                 // the array has NULLs
			} else {
				binary.BigEndian.PutUint32(b[at-4:], uint32(len(b)-at))
			}
			bufs[j] = b
		}
	}
	args := make([]any, len(bufs))
	for j, b := range bufs {
		args[j] = pgArray(b)
	}
	return args
}

// arrayCodec wraps pgx's codec of an array type so that a pgArray goes out as it is; other values
// take pgx's own encoding.
type arrayCodec struct{ pgtype.Codec }

func (c arrayCodec) PlanEncode(m *pgtype.Map, oid uint32, format int16, value any) pgtype.EncodePlan {
	if _, ok := value.(pgArray); ok && format == pgtype.BinaryFormatCode {
		return rawArray{}
	}
	return c.Codec.PlanEncode(m, oid, format, value)
}

type rawArray struct{}

func (rawArray) Encode(value any, buf []byte) ([]byte, error) {
	return append(buf, value.(pgArray)...), nil
}

// registerArrays makes a new connection send pgArray values of every array type tables use.
func registerArrays(_ context.Context, conn *pgx.Conn) error {
	m := conn.TypeMap()
	for _, e := range elements {
		elem, _ := m.TypeForOID(e.oid)
		array, ok := m.TypeForName("_" + elem.Name)
		if !ok {
			return fmt.Errorf("pgx knows no array type of %s", elem.Name)
		}
		m.RegisterType(&pgtype.Type{Name: array.Name, OID: array.OID, Codec: arrayCodec{array.Codec}})
	}
	return nil
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
