-- +goose Up
-- Compact span rows (docs/data-model.md, "Bytes per span"). A process's resource attributes
-- (service, version, host, k8s pod, …) are the same on every span it sends: they are stored once per
-- tenant in span_resources, keyed by a hash of their JSON, and a span keeps the 8-byte key. Empty
-- attributes and events are NULL instead of '{}' and '[]'. Nothing reads a span's resource
-- attributes back yet; the table keeps them for when a tool does.
CREATE TABLE span_resources (
    tenant_id  text   NOT NULL,
    id         bigint NOT NULL, -- the first 8 bytes of the MD5 of the attributes JSON, as ingest wrote it
    attributes jsonb  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
ALTER TABLE span_resources ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_resources USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT ON span_resources TO tracekit_tenant;

-- 0: no resource attributes. A constant default adds the column without rewriting the table.
ALTER TABLE spans ADD COLUMN resource_id bigint NOT NULL DEFAULT 0;
INSERT INTO span_resources (tenant_id, id, attributes)
    SELECT DISTINCT tenant_id, ('x' || left(md5(resource_attributes::text), 16))::bit(64)::bigint, resource_attributes
    FROM spans WHERE resource_attributes <> '{}'
    ON CONFLICT DO NOTHING;
UPDATE spans SET resource_id = ('x' || left(md5(resource_attributes::text), 16))::bit(64)::bigint
    WHERE resource_attributes <> '{}';
ALTER TABLE spans DROP COLUMN resource_attributes;
ALTER TABLE spans ALTER COLUMN attributes DROP NOT NULL, ALTER COLUMN attributes DROP DEFAULT,
    ALTER COLUMN events DROP NOT NULL, ALTER COLUMN events DROP DEFAULT;

-- +goose Down
SELECT 'compacted spans are not converted back; restore a backup taken before migration 00009';
