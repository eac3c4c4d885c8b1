-- +goose Up
-- Span links, as in the PostgreSQL migration of the same number: a JSON array, NULL when none.
ALTER TABLE spans ADD COLUMN links text;

-- +goose Down
ALTER TABLE spans DROP COLUMN links;
