-- +goose Up
-- A random secret per tenant, created by the tenant's server on first use (see the PostgreSQL
-- migration of the same number).
CREATE TABLE tenant_secrets (
    tenant_id  text    PRIMARY KEY REFERENCES tenants(id) ON DELETE CASCADE,
    secret     text    NOT NULL,
    created_ns integer NOT NULL
);

-- +goose Down
DROP TABLE tenant_secrets;
