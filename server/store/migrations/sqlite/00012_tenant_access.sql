-- +goose Up
-- Who may sign in to the tenant through the platform's identity providers (see the PostgreSQL
-- migration of the same number).
ALTER TABLE tenants ADD COLUMN access text NOT NULL DEFAULT '[]';

-- +goose Down
ALTER TABLE tenants DROP COLUMN access;
