-- +goose Up
-- PostgreSQL only (partition retention); SQLite has no partitions.
SELECT 1;

-- +goose Down
SELECT 1;
