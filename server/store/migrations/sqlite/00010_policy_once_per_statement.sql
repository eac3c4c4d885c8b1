-- +goose Up
-- PostgreSQL only (row-level security policies); SQLite has none.
SELECT 1;

-- +goose Down
SELECT 1;
