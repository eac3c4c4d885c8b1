-- +goose Up
-- Key expiry, tool groups, creator and last use; the audit trail (see the PostgreSQL migration of the
-- same number).
ALTER TABLE api_keys ADD COLUMN expires_ns   integer NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN tool_groups  text    NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN created_by   text    NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN last_used_ns integer NOT NULL DEFAULT 0;

CREATE TABLE audit_events (
    id         integer PRIMARY KEY AUTOINCREMENT,
    tenant_id  text    NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    at_ns      integer NOT NULL,
    actor      text    NOT NULL,
    method     text    NOT NULL DEFAULT '',
    action     text    NOT NULL,
    target     text    NOT NULL DEFAULT '',
    detail     text    NOT NULL DEFAULT '',
    ip         text    NOT NULL DEFAULT '',
    user_agent text    NOT NULL DEFAULT ''
);
CREATE INDEX audit_events_tenant_at ON audit_events (tenant_id, at_ns);

-- +goose Down
DROP TABLE audit_events;
ALTER TABLE api_keys DROP COLUMN last_used_ns;
ALTER TABLE api_keys DROP COLUMN created_by;
ALTER TABLE api_keys DROP COLUMN tool_groups;
ALTER TABLE api_keys DROP COLUMN expires_ns;
