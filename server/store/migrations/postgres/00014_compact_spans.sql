-- +goose Up
-- Compact span rows, part two (docs/data-model.md, "Bytes per span"): binary ids, columns ordered for
-- alignment, empty promoted texts as NULL, and the unique index on each day partition on (trace_id,
-- span_id) only.
-- - A trace id is a uuid (16 bytes, was 33 as hex text), a span id a bigint (8, was 17): its 64 bits
--   with the top one flipped, so that bigint order is the hex order (the search_traces cursor relies
--   on it; uuid already orders as its hex). A root's parent is NULL. The store converts at the SQL
--   boundary (server/store/ids.go), so ids stay hex strings everywhere else.
-- - Fixed-width columns first, widest first, then the texts: no alignment padding between them.
-- - The texts ingest promotes from attributes (status message, HTTP, DB, RPC, peer) are NULL when
--   empty: a byte each otherwise, and a row has a NULL (its events, mostly) anyway.
-- - The unique index declared on the partitioned table had to hold the partition keys (tenant_id,
--   start_ns) in every entry; one created on each day partition by tracekit_ensure_partitions needs
--   neither. Span inserts use ON CONFLICT DO NOTHING without a target, which it serves, and a resent
--   span keeps its start time, so it lands in the partition holding its first copy.
-- The spans move into a new table: the old one and its partitions are renamed away, the new one's
-- partitions created for their days, the rows copied converted, the old tables dropped.

ALTER TABLE tracekit_partitioned ADD COLUMN leaf_unique text; -- columns of a unique index on each leaf partition
UPDATE tracekit_partitioned SET leaf_unique = 'trace_id, span_id' WHERE table_name = 'spans';

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tracekit_ensure_partitions(tenant text, tbl text, times bigint[]) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
    AS $$
DECLARE
    r record;
    parent text;
    leaf text;
    k bigint;
    width bigint;
    created integer := 0;
BEGIN
    PERFORM tracekit_partition_check(tenant);
    PERFORM pg_advisory_xact_lock(hashtext('tracekit_partitions'), hashtext(tenant));
    FOR r IN SELECT * FROM tracekit_partitioned WHERE tbl IS NULL OR table_name = tbl LOOP
        parent := tracekit_tenant_partition(r.table_name, tenant);
        IF to_regclass(parent) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS) PARTITION BY RANGE (%I)', parent, r.table_name, r.time_column);
            EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES IN (%L)', r.table_name, parent, tenant);
        END IF;
        width := r.width_days::bigint * 86400000000000;
        FOR k IN SELECT DISTINCT floor(t::numeric / width)::bigint FROM unnest(times) t LOOP
            leaf := parent || '_' || to_char(to_timestamp(k * width / 1e9) AT TIME ZONE 'UTC', 'YYYYMMDD');
            IF to_regclass(leaf) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS)', leaf, parent);
                IF r.leaf_unique IS NOT NULL THEN
                    EXECUTE format('CREATE UNIQUE INDEX %I ON %I (%s)', leaf || '_key', leaf, r.leaf_unique);
                END IF;
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                    parent, leaf, k * width, (k + 1) * width);
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT c.relname FROM pg_partition_tree('spans') p JOIN pg_class c ON c.oid = p.relid WHERE p.level > 0 LOOP
        EXECUTE format('ALTER TABLE %I RENAME TO %I', r.relname, r.relname || '_old');
    END LOOP;
END $$;
-- +goose StatementEnd
ALTER TABLE spans RENAME TO spans_old;
DROP INDEX spans_span, spans_entry_time, spans_entry_service_time, spans_entry_service_duration, spans_entry_errors,
    spans_root_duration;

CREATE TABLE spans (
    start_ns         bigint   NOT NULL,
    duration_ns      bigint   NOT NULL,
    span_id          bigint   NOT NULL, -- the id's 64 bits with the top one flipped
    parent_span_id   bigint, -- NULL: a root
    resource_id      bigint   NOT NULL DEFAULT 0,
    trace_id         uuid     NOT NULL,
    http_status_code integer  NOT NULL DEFAULT 0,
    kind             smallint NOT NULL DEFAULT 0,
    status_code      smallint NOT NULL DEFAULT 0,
    -- a request into a service: a root span, or a SERVER/CONSUMER span.
    is_entry         boolean  NOT NULL,
    tenant_id        text     NOT NULL,
    service          text     NOT NULL,
    service_version  text     NOT NULL DEFAULT '',
    operation        text     NOT NULL,
    status_message   text, -- NULL: empty
    http_method      text, -- NULL: empty
    http_route       text, -- NULL: empty
    db_system        text, -- NULL: empty
    db_statement     text, -- NULL: empty
    rpc_service      text, -- NULL: empty
    rpc_method       text, -- NULL: empty
    peer_service     text, -- NULL: empty
    host_name        text     NOT NULL DEFAULT '',
    attributes       jsonb,
    events           jsonb
) PARTITION BY LIST (tenant_id);
CREATE INDEX spans_entry_time ON spans (start_ns) WHERE is_entry;
-- tenant_id is constant in a tenant's partition, but queries (and row-level security) filter on it:
-- carried here, counting a service's requests is an index-only scan.
CREATE INDEX spans_entry_service_time ON spans (service, start_ns) INCLUDE (tenant_id) WHERE is_entry;
CREATE INDEX spans_entry_service_duration ON spans (service, duration_ns, start_ns) WHERE is_entry;
CREATE INDEX spans_entry_errors ON spans (start_ns, service) WHERE is_entry AND (status_code = 2 OR http_status_code >= 500);
CREATE INDEX spans_root_duration ON spans (duration_ns, start_ns) WHERE is_entry AND parent_span_id IS NULL;

SELECT tracekit_ensure_partitions(tenant_id, 'spans', array_agg(DISTINCT start_ns / 86400000000000 * 86400000000000))
    FROM spans_old GROUP BY tenant_id;
INSERT INTO spans (start_ns, duration_ns, span_id, parent_span_id, resource_id, trace_id, http_status_code, kind,
        status_code, is_entry, tenant_id, service, service_version, operation, status_message,
        http_method, http_route, db_system, db_statement, rpc_service, rpc_method, peer_service,
        host_name, attributes, events)
    SELECT start_ns, duration_ns, ('x' || span_id)::bit(64)::bigint # (-9223372036854775807 - 1),
        CASE WHEN parent_span_id <> '' THEN ('x' || parent_span_id)::bit(64)::bigint # (-9223372036854775807 - 1) END,
        resource_id, trace_id::uuid, http_status_code, kind, status_code, is_entry, tenant_id,
        service, service_version, operation, NULLIF(status_message, ''),
        NULLIF(http_method, ''), NULLIF(http_route, ''), NULLIF(db_system, ''), NULLIF(db_statement, ''),
        NULLIF(rpc_service, ''), NULLIF(rpc_method, ''), NULLIF(peer_service, ''), host_name, attributes, events
    FROM spans_old;
DROP TABLE spans_old;

ALTER TABLE spans ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON spans USING (tenant_id = (SELECT tracekit_current_tenant())) WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()));
GRANT SELECT, INSERT, UPDATE, DELETE ON spans TO tracekit_tenant;

-- The attribute index names traces as spans do (attribute filters compare the two).
ALTER TABLE span_attributes ALTER COLUMN trace_id TYPE uuid USING trace_id::uuid;

-- The rewritten tables start without statistics, and autovacuum never analyzes a partitioned table
-- itself: on a 50 M-span tenant search_traces timed out after the upgrade until these ran (33 s there).
ANALYZE spans;
ANALYZE span_attributes;

-- +goose Down
SELECT 'spans (binary ids, NULL texts) are not converted back; restore a backup taken before migration 00014';
