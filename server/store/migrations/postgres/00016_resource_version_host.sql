-- +goose Up
-- A span's service version and host name come from its process, so they repeat on every span of a
-- resource: since this migration they are stored once, in the span's resource (span_resources), and
-- the span's own columns are NULL (no bytes). Rows stored before keep their values and are read from
-- them: readers take the span's column when it is not NULL, else the resource's. No stored row is
-- rewritten, so this is instant at any volume (docs/data-model.md, "Version and host in the
-- resource").
-- Resources stored before have NULL here: their spans carry the two values themselves, and a new
-- span of such a resource with an empty version and host has the same resource id (the id covers the
-- two only when one of them is set; server/store/resources.go), so it reads '' as before.
ALTER TABLE span_resources ADD COLUMN service_version text, ADD COLUMN host_name text;
ALTER TABLE spans ALTER COLUMN service_version DROP NOT NULL, ALTER COLUMN service_version DROP DEFAULT,
    ALTER COLUMN host_name DROP NOT NULL, ALTER COLUMN host_name DROP DEFAULT;

-- +goose Down
SELECT 'spans stored since 00016 hold their version and host in span_resources only; restore a backup taken before migration 00016';
