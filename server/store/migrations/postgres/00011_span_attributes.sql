-- +goose Up
-- The attribute index: one row per (trace, indexed key, value) seen in an ingest batch, so an
-- equality filter reads only the traces that carry the value (docs/data-model.md, "Attribute
-- index"). Values are text as the filter compares them: strings as they are, numbers and booleans
-- as JSON writes them.
CREATE TABLE span_attributes (
    tenant_id text   NOT NULL,
    key       text   NOT NULL,
    value     text   NOT NULL,
    start_ns  bigint NOT NULL,
    trace_id  text   NOT NULL
);
CREATE INDEX span_attributes_lookup ON span_attributes (tenant_id, key, value, start_ns) INCLUDE (trace_id);
CREATE INDEX span_attributes_start_brin ON span_attributes USING brin (start_ns);

-- The keys a tenant's spans are indexed by, and since when (data before since_ns is not in the
-- index, so filters on older windows read the spans instead).
CREATE TABLE span_attribute_keys (
    tenant_id text   NOT NULL,
    key       text   NOT NULL,
    since_ns  bigint NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

-- Time ranges in which a key's index is incomplete: the key passed its distinct-value limit there.
CREATE TABLE span_attribute_gaps (
    tenant_id text   NOT NULL,
    key       text   NOT NULL,
    from_ns   bigint NOT NULL,
    to_ns     bigint NOT NULL,
    PRIMARY KEY (tenant_id, key, from_ns)
);

ALTER TABLE span_attributes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attributes USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE span_attribute_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attribute_keys USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE span_attribute_gaps ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attribute_gaps USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT, DELETE ON span_attributes, span_attribute_keys, span_attribute_gaps TO tracekit_tenant;

-- +goose Down
DROP TABLE span_attribute_gaps;
DROP TABLE span_attribute_keys;
DROP TABLE span_attributes;
