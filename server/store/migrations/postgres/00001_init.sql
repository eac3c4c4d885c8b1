-- +goose Up
-- Times are unix nanoseconds (bigint) in both dialects, so one Go type fits both drivers.

CREATE TABLE tenants (
    id              text PRIMARY KEY,
    display_name    text   NOT NULL DEFAULT '',
    db_role         text   UNIQUE,
    price_overrides jsonb  NOT NULL DEFAULT '{}',
    created_ns      bigint NOT NULL
);

-- The tenant a connection belongs to, from the login role. Tenant roles see only their own tenants row,
-- so this needs no SECURITY DEFINER; STABLE lets the planner use it as an index key.
-- +goose StatementBegin
CREATE FUNCTION tracekit_current_tenant() RETURNS text
    LANGUAGE sql STABLE
    AS $$ SELECT id FROM tenants WHERE db_role = current_user $$;
-- +goose StatementEnd

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
    kind                smallint NOT NULL DEFAULT 0,
    -- a request into a service: a root span, or a SERVER/CONSUMER span.
    is_entry            boolean  NOT NULL,
    start_ns            bigint   NOT NULL,
    duration_ns         bigint   NOT NULL,
    status_code         smallint NOT NULL DEFAULT 0,
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
    attributes          jsonb    NOT NULL DEFAULT '{}',
    resource_attributes jsonb    NOT NULL DEFAULT '{}',
    events              jsonb    NOT NULL DEFAULT '[]'
);
-- Hash, not btree: trace ids are random, and random btree inserts were two thirds of ingest cost
-- in PostgreSQL; lookups are equality only (IN lists use a bitmap scan).
CREATE INDEX spans_trace ON spans USING hash (trace_id);
CREATE INDEX spans_entry_time ON spans (tenant_id, start_ns) WHERE is_entry;
CREATE INDEX spans_entry_service_time ON spans (tenant_id, service, start_ns) WHERE is_entry;
CREATE INDEX spans_entry_service_duration ON spans (tenant_id, service, duration_ns) WHERE is_entry;
CREATE INDEX spans_start_brin ON spans USING brin (start_ns);

CREATE TABLE services (
    tenant_id     text   NOT NULL,
    name          text   NOT NULL,
    version       text   NOT NULL DEFAULT '',
    first_seen_ns bigint NOT NULL,
    last_seen_ns  bigint NOT NULL,
    PRIMARY KEY (tenant_id, name)
);

CREATE TABLE llm_calls (
    id                  bigserial PRIMARY KEY,
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
    cost_usd            double precision,
    start_ns            bigint   NOT NULL,
    duration_ns         bigint   NOT NULL,
    status_code         smallint NOT NULL DEFAULT 0,
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
    threshold      double precision NOT NULL,
    window_seconds integer NOT NULL,
    severity       text    NOT NULL,
    enabled        boolean NOT NULL DEFAULT true,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE alerts (
    id           bigserial PRIMARY KEY,
    tenant_id    text   NOT NULL,
    rule_id      text   NOT NULL,
    state        text   NOT NULL,
    started_ns   bigint NOT NULL,
    resolved_ns  bigint NOT NULL DEFAULT 0,
    value        double precision NOT NULL,
    threshold    double precision NOT NULL,
    last_eval_ns bigint NOT NULL,
    message      text   NOT NULL DEFAULT ''
);
-- At most one firing alert per rule: a second evaluator cannot double-fire.
CREATE UNIQUE INDEX alerts_one_firing ON alerts (tenant_id, rule_id) WHERE state = 'firing';
CREATE INDEX alerts_time ON alerts (tenant_id, started_ns);

CREATE TABLE anomalies (
    id         bigserial PRIMARY KEY,
    tenant_id  text   NOT NULL,
    service    text   NOT NULL,
    operation  text   NOT NULL DEFAULT '',
    metric     text   NOT NULL,
    severity   text   NOT NULL,
    started_ns bigint NOT NULL,
    ended_ns   bigint NOT NULL DEFAULT 0,
    baseline   double precision NOT NULL,
    observed   double precision NOT NULL,
    score      double precision NOT NULL,
    summary    text   NOT NULL DEFAULT ''
);
CREATE INDEX anomalies_time ON anomalies (tenant_id, started_ns);
CREATE INDEX anomalies_service_time ON anomalies (tenant_id, service, started_ns);

CREATE TABLE rca_reports (
    tenant_id  text   NOT NULL,
    anomaly_id bigint NOT NULL,
    created_ns bigint NOT NULL,
    summary    text   NOT NULL,
    causes     jsonb  NOT NULL DEFAULT '[]',
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
    id            bigserial PRIMARY KEY,
    tenant_id     text   NOT NULL,
    breakpoint_id text   NOT NULL,
    service       text   NOT NULL,
    trace_id      text   NOT NULL DEFAULT '',
    span_id       text   NOT NULL DEFAULT '',
    captured_ns   bigint NOT NULL,
    variables     jsonb  NOT NULL DEFAULT '{}',
    stack         jsonb  NOT NULL DEFAULT '[]'
);
CREATE INDEX snapshots_time ON snapshots (tenant_id, captured_ns);
CREATE INDEX snapshots_breakpoint ON snapshots (tenant_id, breakpoint_id, captured_ns);
CREATE INDEX snapshots_trace ON snapshots (tenant_id, trace_id);

-- Row-level security: the second lock on the door. Table owners (the migrating role) bypass it;
-- tenant roles created by ProvisionTenant see and write only their own rows.
ALTER TABLE tenants ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_self ON tenants USING (db_role = current_user);
ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON api_keys USING (tenant_id = tracekit_current_tenant());
ALTER TABLE spans ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON spans USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE services ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON services USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE llm_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON llm_calls USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE alert_rules ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON alert_rules USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE alerts ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON alerts USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE anomalies ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON anomalies USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE rca_reports ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON rca_reports USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE breakpoints ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON breakpoints USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON snapshots USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());

-- Tenant roles are members of this group; grants are made once, here, not per tenant.
-- +goose StatementBegin
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'tracekit_tenant') THEN
        CREATE ROLE tracekit_tenant NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL; -- created meanwhile by a migration of another database in the same cluster
END $$;
-- +goose StatementEnd
GRANT SELECT ON tenants, api_keys, alert_rules TO tracekit_tenant;
GRANT SELECT, INSERT, UPDATE, DELETE ON spans, services, llm_calls, alerts, anomalies, rca_reports, breakpoints, snapshots TO tracekit_tenant;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO tracekit_tenant;
GRANT EXECUTE ON FUNCTION tracekit_current_tenant() TO tracekit_tenant;

-- +goose Down
DROP TABLE snapshots, breakpoints, rca_reports, anomalies, alerts, alert_rules, llm_calls, services, spans, api_keys;
DROP FUNCTION tracekit_current_tenant();
DROP TABLE tenants;
