package store

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Span and trace ids are hex strings in Go and in SQLite. PostgreSQL stores a trace id as uuid and a
// span id as bigint (migration 00014): the id's 64 bits with the top one flipped, so that bigint order
// is the hex order, as uuid order is; the search_traces cursor and ORDER BY span_id rely on it. A
// root's parent is NULL there, "" here. The helpers below are the only place the two meet: SQL reads
// the hex back with traceHex and spanHex, arguments go through spanArg (trace ids as hex strings,
// which pgx sends as uuid).

// spanFlip is the top bit of a span id, as a PostgreSQL bigint expression.
const spanFlip = "(-9223372036854775807 - 1)"

// traceHex is the expression reading trace id column col as hex.
func (t *Tenant) traceHex(col string) string {
	if t.db.dialect == Postgres {
		return "replace(" + col + "::text, '-', '')"
	}
	return col
}

// spanHex is the expression reading span id column col as hex ("" for a NULL parent).
func (t *Tenant) spanHex(col string) string {
	if t.db.dialect == Postgres {
		return "COALESCE(lpad(to_hex(" + col + " # " + spanFlip + "), 16, '0'), '')"
	}
	return col
}

// isRoot is the condition selecting spans without a parent.
func (t *Tenant) isRoot() string {
	if t.db.dialect == Postgres {
		return "parent_span_id IS NULL"
	}
	return "parent_span_id = ''"
}

// spanArg is span id id as the span_id column holds it.
func (t *Tenant) spanArg(id string) (any, error) {
	if t.db.dialect != Postgres {
		return id, nil
	}
	return spanInt(id)
}

// spanArgs is spanArg of each id.
func (t *Tenant) spanArgs(ids []string) ([]any, error) {
	out := make([]any, len(ids))
	for i, id := range ids {
		var err error
		if out[i], err = t.spanArg(id); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// spanInt is PostgreSQL's bigint of a hex span id.
func spanInt(id string) (int64, error) {
	var b [8]byte
	if len(id) != 16 {
		return 0, fmt.Errorf("span id %q is not 16 hex digits (an 8-byte OTLP span id, hex-encoded)", id)
	}
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return 0, fmt.Errorf("span id %q is not 16 hex digits (an 8-byte OTLP span id, hex-encoded)", id)
	}
	return int64(binary.BigEndian.Uint64(b[:]) ^ 1<<63), nil
}

// traceBytes is PostgreSQL's uuid of a hex trace id.
func traceBytes(id string) ([16]byte, error) {
	var b [16]byte
	if len(id) != 32 {
		return b, fmt.Errorf("trace id %q is not 32 hex digits (a 16-byte OTLP trace id, hex-encoded)", id)
	}
	if _, err := hex.Decode(b[:], []byte(id)); err != nil {
		return b, fmt.Errorf("trace id %q is not 32 hex digits (a 16-byte OTLP trace id, hex-encoded)", id)
	}
	return b, nil
}

// checkIDs reports the first span whose ids PostgreSQL cannot store (ingest accepts only 16-byte
// trace and 8-byte span ids, so this is a caller's mistake).
func checkIDs(spans []Span) error {
	for i := range spans {
		s := &spans[i]
		if _, err := traceBytes(s.TraceID); err != nil {
			return err
		}
		if _, err := spanInt(s.SpanID); err != nil {
			return err
		}
		if s.ParentSpanID != "" {
			if _, err := spanInt(s.ParentSpanID); err != nil {
				return fmt.Errorf("parent of span %s: %w", s.SpanID, err)
			}
		}
	}
	return nil
}

// storedTraces keeps the trace ids a span can be stored under: on PostgreSQL only 32 hex digits, so
// any other id finds nothing, as it does on SQLite, instead of failing the query.
func (t *Tenant) storedTraces(ids []string) []string {
	if t.db.dialect != Postgres {
		return ids
	}
	out := ids[:0:0]
	for _, id := range ids {
		if _, err := traceBytes(id); err == nil {
			out = append(out, id)
		}
	}
	return out
}
