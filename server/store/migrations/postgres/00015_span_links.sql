-- +goose Up
-- Span links (OTLP): the spans another span refers to outside its parent. Messaging consumers that
-- start a new trace per message or batch link to the producers' spans, and queue lag is read
-- through these links. A JSON array, NULL when the span has none (nearly all spans).
ALTER TABLE spans ADD COLUMN links jsonb;

-- +goose Down
ALTER TABLE spans DROP COLUMN links;
