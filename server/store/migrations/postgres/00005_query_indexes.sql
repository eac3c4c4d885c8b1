-- +goose Up
-- Indexes for the MCP tools' orders, each ending in the time column so the window is checked in the
-- index instead of on the heap: a service's slowest requests, failed requests, the slowest traces,
-- and LLM calls by cost, latency or tokens.
DROP INDEX spans_entry_service_duration;
CREATE INDEX spans_entry_service_duration ON spans (tenant_id, service, duration_ns, start_ns) WHERE is_entry;
CREATE INDEX spans_entry_errors ON spans (tenant_id, start_ns, service) WHERE is_entry AND (status_code = 2 OR http_status_code >= 500);
CREATE INDEX spans_root_duration ON spans (tenant_id, duration_ns, start_ns) WHERE is_entry AND parent_span_id = '';
CREATE INDEX llm_calls_cost ON llm_calls (tenant_id, (COALESCE(cost_usd, -1)), id, start_ns);
CREATE INDEX llm_calls_latency ON llm_calls (tenant_id, duration_ns, id, start_ns);
CREATE INDEX llm_calls_tokens ON llm_calls (tenant_id, (input_tokens + output_tokens), id, start_ns);

-- The versions each service has run and when, kept at ingest: comparing versions only reads
-- requests when more than one version served the window.
CREATE TABLE service_versions (
    tenant_id     text   NOT NULL,
    service       text   NOT NULL,
    version       text   NOT NULL,
    first_seen_ns bigint NOT NULL,
    last_seen_ns  bigint NOT NULL,
    PRIMARY KEY (tenant_id, service, version)
);
INSERT INTO service_versions (tenant_id, service, version, first_seen_ns, last_seen_ns)
    SELECT tenant_id, service, service_version, MIN(start_ns), MAX(start_ns) FROM spans GROUP BY tenant_id, service, service_version;
ALTER TABLE service_versions ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON service_versions USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON service_versions TO tracekit_tenant;

-- +goose Down
DROP TABLE service_versions;
DROP INDEX llm_calls_tokens, llm_calls_latency, llm_calls_cost, spans_root_duration, spans_entry_errors, spans_entry_service_duration;
CREATE INDEX spans_entry_service_duration ON spans (tenant_id, service, duration_ns) WHERE is_entry;
