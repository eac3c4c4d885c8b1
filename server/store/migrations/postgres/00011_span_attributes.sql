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
) PARTITION BY LIST (tenant_id);
-- Partitioned like spans (migration 00008): per tenant, then per day; retention drops the days.
-- Each partition holds one tenant, so the index needs no tenant_id prefix.
CREATE INDEX span_attributes_lookup ON span_attributes (key, value, start_ns) INCLUDE (trace_id);
INSERT INTO tracekit_partitioned VALUES ('span_attributes', 'start_ns', 1, 'retention');

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

-- Row-level security and grants on the parents only: a partition named directly is refused.
ALTER TABLE span_attributes ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attributes USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
ALTER TABLE span_attribute_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attribute_keys USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
ALTER TABLE span_attribute_gaps ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON span_attribute_gaps USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
GRANT SELECT, INSERT, DELETE ON span_attributes, span_attribute_keys, span_attribute_gaps TO tracekit_tenant;

-- +goose Down
DROP TABLE span_attribute_gaps;
DROP TABLE span_attribute_keys;
DELETE FROM tracekit_partitioned WHERE table_name = 'span_attributes';
DROP TABLE span_attributes;
