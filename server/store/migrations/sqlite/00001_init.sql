-- +goose Up
-- SQLite serves one process in dev mode; tenant scoping is the store's WHERE clauses.
-- Times are unix nanoseconds in both dialects, so one Go type fits both drivers.

CREATE TABLE tenants (
    id              text PRIMARY KEY,
    display_name    text   NOT NULL DEFAULT '',
    db_role         text   UNIQUE,
    price_overrides text   NOT NULL DEFAULT '{}',
    created_ns      bigint NOT NULL
);

CREATE TABLE api_keys (
    id           text   PRIMARY KEY,
    tenant_id    text   NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         text   NOT NULL DEFAULT '',
    prefix       text   NOT NULL,
    hash         text   NOT NULL UNIQUE,
    scopes       text   NOT NULL DEFAULT 'read,ingest',
    created_ns   bigint NOT NULL,
    revoked_ns   bigint NOT NULL DEFAULT 0
);
CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

CREATE TABLE spans (
    tenant_id           text     NOT NULL,
    trace_id            text     NOT NULL,
    span_id             text     NOT NULL,
    parent_span_id      text     NOT NULL DEFAULT '',
    service             text     NOT NULL,
    service_version     text     NOT NULL DEFAULT '',
    operation           text     NOT NULL,
    kind                integer NOT NULL DEFAULT 0,
    -- a request into a service: a root span, or a SERVER/CONSUMER span.
    is_entry            integer  NOT NULL,
    start_ns            bigint   NOT NULL,
    duration_ns         bigint   NOT NULL,
    status_code         integer NOT NULL DEFAULT 0,
    status_message      text     NOT NULL DEFAULT '',
    http_method         text     NOT NULL DEFAULT '',
    http_route          text     NOT NULL DEFAULT '',
    http_status_code    integer  NOT NULL DEFAULT 0,
    db_system           text     NOT NULL DEFAULT '',
    db_statement        text     NOT NULL DEFAULT '',
    rpc_service         text     NOT NULL DEFAULT '',
    rpc_method          text     NOT NULL DEFAULT '',
    peer_service        text     NOT NULL DEFAULT '',
    host_name           text     NOT NULL DEFAULT '',
    attributes          text     NOT NULL DEFAULT '{}',
    resource_attributes text     NOT NULL DEFAULT '{}',
    events              text     NOT NULL DEFAULT '[]'
);
CREATE INDEX spans_trace ON spans (tenant_id, trace_id);
CREATE INDEX spans_entry_time ON spans (tenant_id, start_ns) WHERE is_entry = true;
CREATE INDEX spans_entry_service_time ON spans (tenant_id, service, start_ns) WHERE is_entry = true;
CREATE INDEX spans_entry_service_duration ON spans (tenant_id, service, duration_ns) WHERE is_entry = true;
CREATE INDEX spans_start ON spans (start_ns);

CREATE TABLE services (
    tenant_id     text   NOT NULL,
    name          text   NOT NULL,
    version       text   NOT NULL DEFAULT '',
    first_seen_ns bigint NOT NULL,
    last_seen_ns  bigint NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE llm_calls (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id           text     NOT NULL,
    trace_id            text     NOT NULL,
    span_id             text     NOT NULL,
    service             text     NOT NULL,
    operation           text     NOT NULL DEFAULT '',
    provider            text     NOT NULL DEFAULT '',
    request_model       text     NOT NULL DEFAULT '',
    response_model      text     NOT NULL DEFAULT '',
    input_tokens        bigint   NOT NULL DEFAULT 0,
    output_tokens       bigint   NOT NULL DEFAULT 0,
    cached_input_tokens bigint   NOT NULL DEFAULT 0,
    -- NULL when the model is not in the price table: unknown is not free.
    cost_usd            REAL,
    start_ns            bigint   NOT NULL,
    duration_ns         bigint   NOT NULL,
    status_code         integer NOT NULL DEFAULT 0,
    error_type          text     NOT NULL DEFAULT ''
);
CREATE INDEX llm_calls_time ON llm_calls (tenant_id, start_ns);
CREATE INDEX llm_calls_trace ON llm_calls (tenant_id, trace_id);

CREATE TABLE alert_rules (
    tenant_id      text    NOT NULL,
    id             text    NOT NULL,
    service        text    NOT NULL DEFAULT '',
    metric         text    NOT NULL,
    comparison     text    NOT NULL,
    threshold      REAL NOT NULL,
    window_seconds integer NOT NULL,
    severity       text    NOT NULL,
    enabled        integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id    text   NOT NULL,
    rule_id      text   NOT NULL,
    state        text   NOT NULL,
    started_ns   bigint NOT NULL,
    resolved_ns  bigint NOT NULL DEFAULT 0,
    value        REAL NOT NULL,
    threshold    REAL NOT NULL,
    last_eval_ns bigint NOT NULL,
    message      text   NOT NULL DEFAULT ''
);
-- At most one firing alert per rule: a second evaluator cannot double-fire.
CREATE UNIQUE INDEX alerts_one_firing ON alerts (tenant_id, rule_id) WHERE state = 'firing';
CREATE INDEX alerts_time ON alerts (tenant_id, started_ns);

CREATE TABLE anomalies (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id  text   NOT NULL,
    service    text   NOT NULL,
    operation  text   NOT NULL DEFAULT '',
    metric     text   NOT NULL,
    severity   text   NOT NULL,
    started_ns bigint NOT NULL,
    ended_ns   bigint NOT NULL DEFAULT 0,
    baseline   REAL NOT NULL,
    observed   REAL NOT NULL,
    score      REAL NOT NULL,
    summary    text   NOT NULL DEFAULT ''
);
CREATE INDEX anomalies_time ON anomalies (tenant_id, started_ns);
CREATE INDEX anomalies_service_time ON anomalies (tenant_id, service, started_ns);

CREATE TABLE rca_reports (
    tenant_id  text   NOT NULL,
    anomaly_id bigint NOT NULL,
    created_ns bigint NOT NULL,
    summary    text   NOT NULL,
    causes     text   NOT NULL DEFAULT '[]',
    PRIMARY KEY (tenant_id, anomaly_id)
);

CREATE TABLE breakpoints (
    tenant_id  text    NOT NULL,
    id         text    NOT NULL,
    service    text    NOT NULL,
    file       text    NOT NULL,
    line       integer NOT NULL,
    condition  text    NOT NULL DEFAULT '',
    hit_limit  integer NOT NULL DEFAULT 0,
    hit_count  integer NOT NULL DEFAULT 0,
    expires_ns bigint  NOT NULL DEFAULT 0,
    created_ns bigint  NOT NULL,
    deleted_ns bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX breakpoints_service ON breakpoints (tenant_id, service);

CREATE TABLE snapshots (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id     text   NOT NULL,
    breakpoint_id text   NOT NULL,
    service       text   NOT NULL,
    trace_id      text   NOT NULL DEFAULT '',
    span_id       text   NOT NULL DEFAULT '',
    captured_ns   bigint NOT NULL,
    variables     text   NOT NULL DEFAULT '{}',
    stack         text   NOT NULL DEFAULT '[]'
);
CREATE INDEX snapshots_time ON snapshots (tenant_id, captured_ns);
CREATE INDEX snapshots_breakpoint ON snapshots (tenant_id, breakpoint_id, captured_ns);
CREATE INDEX snapshots_trace ON snapshots (tenant_id, trace_id);

-- +goose Down
DROP TABLE snapshots;
DROP TABLE breakpoints;
DROP TABLE rca_reports;
DROP TABLE anomalies;
DROP TABLE alerts;
DROP TABLE alert_rules;
DROP TABLE llm_calls;
DROP TABLE services;
DROP TABLE spans;
DROP TABLE api_keys;
DROP TABLE tenants;
