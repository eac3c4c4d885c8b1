-- +goose Up
-- Per-minute and per-hour aggregates of requests and LLM calls; see the PostgreSQL migration.
CREATE TABLE metric_rollups (
    tenant_id     text    NOT NULL,
    kind          integer NOT NULL,
    service       text    NOT NULL,
    name          text    NOT NULL,
    res_ns        bigint  NOT NULL,
    bucket_ns     bigint  NOT NULL,
    partial       integer NOT NULL,
    n             bigint  NOT NULL,
    errors        bigint  NOT NULL,
    cost_usd      REAL    NOT NULL DEFAULT 0,
    input_tokens  bigint  NOT NULL DEFAULT 0,
    output_tokens bigint  NOT NULL DEFAULT 0,
    hist          blob    NOT NULL
);
CREATE INDEX metric_rollups_time ON metric_rollups (tenant_id, res_ns, bucket_ns);
CREATE INDEX metric_rollups_service ON metric_rollups (tenant_id, service, res_ns, bucket_ns);
CREATE INDEX metric_rollups_partial ON metric_rollups (tenant_id, bucket_ns) WHERE partial = true;
CREATE UNIQUE INDEX metric_rollups_merged ON metric_rollups (tenant_id, kind, service, name, res_ns, bucket_ns) WHERE partial = false;

CREATE TABLE analysis_jobs (
    tenant_id   text   NOT NULL,
    job         text   NOT NULL,
    tick_ns     bigint NOT NULL,
    done_ns     bigint NOT NULL DEFAULT 0,
    progress_ns bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, job)
);

CREATE TABLE alert_rule_state (
    tenant_id    text   NOT NULL,
    rule_id      text   NOT NULL,
    last_eval_ns bigint NOT NULL,
    last_value   REAL,
    evaluations  bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, rule_id)
);

ALTER TABLE breakpoints ADD COLUMN last_hit_ns bigint NOT NULL DEFAULT 0;

-- +goose Down
ALTER TABLE breakpoints DROP COLUMN last_hit_ns;
DROP TABLE alert_rule_state;
DROP TABLE analysis_jobs;
DROP TABLE metric_rollups;
