-- +goose Up
-- PostgreSQL stores resource attributes once per tenant (see the PostgreSQL migration of the same
-- number); SQLite keeps them on each span, as before.
SELECT 1;

-- +goose Down
SELECT 1;
