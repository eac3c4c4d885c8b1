-- +goose Up
-- A random secret per tenant, created by the tenant's server on first use. Every replica derives
-- the same keys from it without configuration: the MCP server seals its paging cursors and turns
-- anomaly ids into opaque, tenant-scoped ones with them.
CREATE TABLE tenant_secrets (
    tenant_id  text   PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    secret     text   NOT NULL, -- hex
    created_ns bigint NOT NULL
);
ALTER TABLE tenant_secrets ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON tenant_secrets USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT ON tenant_secrets TO tracekit_tenant;

-- +goose Down
DROP TABLE tenant_secrets;
