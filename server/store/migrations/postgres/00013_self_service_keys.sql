-- +goose Up
-- Self-service API keys: a tenant's members create and revoke their team's keys on the tenant's
-- server (<tenant URL>/keys), which connects as the tenant's role. Keys gain an expiry, the tool groups
-- they are limited to, who created them and when they were last used; every action lands in an
-- append-only audit trail the tenant may read and add to but never change.
ALTER TABLE api_keys ADD COLUMN expires_ns   bigint NOT NULL DEFAULT 0; -- 0: never
ALTER TABLE api_keys ADD COLUMN tool_groups  text   NOT NULL DEFAULT ''; -- comma-separated; '': every group
ALTER TABLE api_keys ADD COLUMN created_by   text   NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_used_ns bigint NOT NULL DEFAULT 0;
DROP POLICY tenant_rows ON api_keys;
CREATE POLICY tenant_rows ON api_keys USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
GRANT INSERT, UPDATE (revoked_ns, last_used_ns) ON api_keys TO tracekit_tenant;

CREATE TABLE audit_events (
    id         bigserial PRIMARY KEY,
    tenant_id  text   NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at_ns      bigint NOT NULL,
    actor      text   NOT NULL, -- who: e.g. "api key key_ab12 (tk_Ab12Cd, ci)"
    method     text   NOT NULL DEFAULT '', -- how they signed in: api_key, oauth, …
    action     text   NOT NULL, -- what: apikey.create, apikey.revoke, signin.refused
    target     text   NOT NULL DEFAULT '',
    detail     text   NOT NULL DEFAULT '',
    ip         text   NOT NULL DEFAULT '', -- from where
    user_agent text   NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at_ns);
ALTER TABLE audit_events ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON audit_events USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
GRANT SELECT, INSERT ON audit_events TO tracekit_tenant;
GRANT USAGE ON SEQUENCE audit_events_id_seq TO tracekit_tenant;

-- +goose Down
DROP TABLE audit_events;
REVOKE INSERT, UPDATE ON api_keys FROM tracekit_tenant;
DROP POLICY tenant_rows ON api_keys;
CREATE POLICY tenant_rows ON api_keys USING (tenant_id = (SELECT tracekit_current_tenant()));
ALTER TABLE api_keys DROP COLUMN last_used_ns, DROP COLUMN created_by, DROP COLUMN tool_groups, DROP COLUMN expires_ns;
