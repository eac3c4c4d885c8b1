-- +goose Up
-- PostgreSQL grants tenant roles write access to alert_rules here; SQLite has no roles.
SELECT 1;

-- +goose Down
SELECT 1;
