-- +goose Up
-- PostgreSQL only (its per-tenant partitions); SQLite's index has leading tenant_id already.
SELECT 1;

-- +goose Down
SELECT 1;
