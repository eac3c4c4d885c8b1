-- +goose Up
-- A span is stored once per tenant: exporters resend a batch whose answer they did not get, and
-- several writers may carry the same span. Duplicates stored before this migration are removed.
-- The unique btree also serves lookups by trace id (tenant_id, trace_id prefix), so the hash index
-- on trace_id is no longer needed.
DELETE FROM spans a USING spans b
    WHERE a.tenant_id = b.tenant_id AND a.trace_id = b.trace_id AND a.span_id = b.span_id AND a.ctid > b.ctid;
CREATE UNIQUE INDEX spans_span ON spans (tenant_id, trace_id, span_id);
DROP INDEX spans_trace;

-- +goose Down
CREATE INDEX spans_trace ON spans USING hash (trace_id);
DROP INDEX spans_span;
