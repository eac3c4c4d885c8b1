-- +goose Up
-- A tenant's server loads the rules the operator wrote into its ConfigMap, as its own role.
GRANT INSERT, UPDATE, DELETE ON alert_rules TO tracekit_tenant;

-- +goose Down
REVOKE INSERT, UPDATE, DELETE ON alert_rules FROM tracekit_tenant;
