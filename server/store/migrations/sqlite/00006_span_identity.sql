-- +goose Up
-- A span is stored once per tenant (see the PostgreSQL migration); the unique index replaces the
-- (tenant_id, trace_id) index, which is its prefix.
DELETE FROM spans WHERE rowid NOT IN (SELECT min(rowid) FROM spans GROUP BY tenant_id, trace_id, span_id);
CREATE UNIQUE INDEX spans_span ON spans (tenant_id, trace_id, span_id);
DROP INDEX spans_trace;

-- +goose Down
CREATE INDEX spans_trace ON spans (tenant_id, trace_id);
DROP INDEX spans_span;
