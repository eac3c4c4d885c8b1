-- +goose Up
-- The attribute index (see the PostgreSQL migration).
CREATE TABLE span_attributes (
    tenant_id text    NOT NULL,
    key       text    NOT NULL,
    value     text    NOT NULL,
    start_ns  integer NOT NULL,
    trace_id  text    NOT NULL
);
CREATE INDEX span_attributes_lookup ON span_attributes (tenant_id, key, value, start_ns, trace_id);
CREATE INDEX span_attributes_start ON span_attributes (start_ns);

CREATE TABLE span_attribute_keys (
    tenant_id text    NOT NULL,
    key       text    NOT NULL,
    since_ns  integer NOT NULL,
    PRIMARY KEY (tenant_id, key)
);

CREATE TABLE span_attribute_gaps (
    tenant_id text    NOT NULL,
    key       text    NOT NULL,
    from_ns   integer NOT NULL,
    to_ns     integer NOT NULL,
    PRIMARY KEY (tenant_id, key, from_ns)
);

-- +goose Down
DROP TABLE span_attribute_gaps;
DROP TABLE span_attribute_keys;
DROP TABLE span_attributes;
