-- +goose Up
-- Per-minute and per-hour aggregates of requests and LLM calls, so metrics, alerts and anomaly
-- detection never scan raw spans. Ingest appends one partial row per (series, minute) of each batch in
-- the batch's transaction, without touching rows other batches write; a compactor merges them.
CREATE TABLE metric_rollups (
    tenant_id     text     NOT NULL,
    kind          smallint NOT NULL, -- 1: requests (entry spans), 2: LLM calls
    service       text     NOT NULL,
    name          text     NOT NULL, -- the operation; for LLM calls the requested model
    res_ns        bigint   NOT NULL, -- 60e9 (minute) or 3600e9 (hour)
    bucket_ns     bigint   NOT NULL,
    -- Written by ingest, not yet merged. An hourly row sums the non-partial minute rows of its hour.
    partial       boolean  NOT NULL,
    n             bigint   NOT NULL,
    errors        bigint   NOT NULL,
    cost_usd      double precision NOT NULL DEFAULT 0,
    input_tokens  bigint   NOT NULL DEFAULT 0,
    output_tokens bigint   NOT NULL DEFAULT 0,
    hist          bytea    NOT NULL -- durations, server/sketch encoding
);
CREATE INDEX metric_rollups_time ON metric_rollups (tenant_id, res_ns, bucket_ns);
CREATE INDEX metric_rollups_service ON metric_rollups (tenant_id, service, res_ns, bucket_ns);
CREATE INDEX metric_rollups_partial ON metric_rollups (tenant_id, bucket_ns) WHERE partial;
-- One merged row per series and bucket: a second compactor fails instead of double-counting.
CREATE UNIQUE INDEX metric_rollups_merged ON metric_rollups (tenant_id, kind, service, name, res_ns, bucket_ns) WHERE NOT partial;

-- Background jobs run once per tick per tenant, whichever replica claims the tick first.
CREATE TABLE analysis_jobs (
    tenant_id   text   NOT NULL,
    job         text   NOT NULL,
    tick_ns     bigint NOT NULL,           -- latest claimed tick
    done_ns     bigint NOT NULL DEFAULT 0, -- latest tick whose results were committed
    progress_ns bigint NOT NULL DEFAULT 0, -- how far the job has processed data
    PRIMARY KEY (tenant_id, job)
);

-- The evaluator's memory of each rule, across restarts and replicas.
CREATE TABLE alert_rule_state (
    tenant_id    text   NOT NULL,
    rule_id      text   NOT NULL,
    last_eval_ns bigint NOT NULL,
    last_value   double precision, -- NULL when the window had no data
    evaluations  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, rule_id)
);

-- When a breakpoint last captured: tells a user whether the agents are picking it up.
ALTER TABLE breakpoints ADD COLUMN last_hit_ns bigint NOT NULL DEFAULT 0;

ALTER TABLE metric_rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON metric_rollups USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE analysis_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON analysis_jobs USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE alert_rule_state ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON alert_rule_state USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON metric_rollups, analysis_jobs, alert_rule_state TO tracekit_tenant;

-- +goose Down
ALTER TABLE breakpoints DROP COLUMN last_hit_ns;
DROP TABLE alert_rule_state, analysis_jobs, metric_rollups;
