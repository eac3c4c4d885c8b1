-- +goose Up
-- PostgreSQL partitions its per-event tables by tenant and time (see the PostgreSQL migration of the
-- same number); SQLite serves one dev-mode process and keeps its plain tables.
SELECT 1;

-- +goose Down
SELECT 1;
