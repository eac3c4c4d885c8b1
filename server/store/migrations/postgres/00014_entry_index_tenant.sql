-- +goose Up
-- A tenant's partition holds one tenant_id, but its indexes (00008) left the column out, so the
-- tenant_id filter of every query (and of row-level security) had to read each matching row from the
-- heap. CountTraces' per-service count (get_service_metrics, search_traces) read 7,000 heap buffers
-- of an hour instead of a dozen index pages. Carrying tenant_id in this index makes that an
-- index-only scan again, for about 8 bytes per request (docs/benchmarks.md, "Tools no slower").
DROP INDEX spans_entry_service_time;
CREATE INDEX spans_entry_service_time ON spans (service, start_ns) INCLUDE (tenant_id) WHERE is_entry;

-- +goose Down
DROP INDEX spans_entry_service_time;
CREATE INDEX spans_entry_service_time ON spans (service, start_ns) WHERE is_entry;
