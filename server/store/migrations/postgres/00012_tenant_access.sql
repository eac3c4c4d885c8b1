-- +goose Up
-- Who may sign in to the tenant through the platform's identity providers, and with which tool
-- groups (TraceKitTenant spec.access, written by the operator; read by `tracekit auth` at every
-- company sign-in and refresh). A JSON array of rules; empty admits nobody through company sign-in.
ALTER TABLE tenants ADD COLUMN access jsonb NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE tenants DROP COLUMN access;
