-- +goose Up
-- Time partitioning (docs/data-model.md, "Partitions"). Each per-event table is partitioned by
-- LIST (tenant_id), and each tenant's partition by RANGE of its time column, so a tenant's retention
-- drops whole partitions of its own (no row DELETEs, no vacuum) and its queries prune to its own
-- tables and the days of their window. Partitions are created by tracekit_ensure_partitions (the
-- server ahead of time, ingest on demand) and dropped by tracekit_drop_partitions, both SECURITY
-- DEFINER so that a tenant's role can manage its own partitions but never read or write one by name:
-- partitions get no grants, so only queries through the parent (and its row-level security) reach them.

-- The tables partitioned this way. A later migration registers its own table with one INSERT after
-- creating it "PARTITION BY LIST (tenant_id)" (with RLS and grants on the parent only).
CREATE TABLE tracekit_partitioned (
    table_name  text PRIMARY KEY,
    time_column text    NOT NULL,
    width_days  integer NOT NULL CHECK (width_days > 0), -- a partition holds [k*width, (k+1)*width) days since 1970
    -- Which horizon drops the table's partitions: the tenant's retention, or rollup retention.
    expires     text    NOT NULL CHECK (expires IN ('retention', 'rollups'))
);
INSERT INTO tracekit_partitioned VALUES
    ('spans', 'start_ns', 1, 'retention'),
    ('llm_calls', 'start_ns', 1, 'retention'),
    ('snapshots', 'captured_ns', 1, 'retention'),
    ('metric_rollups', 'bucket_ns', 7, 'rollups');
GRANT SELECT ON tracekit_partitioned TO tracekit_tenant;

-- The tenant a caller may manage partitions of: a tenant role only its own, the owner any.
-- +goose StatementBegin
CREATE FUNCTION tracekit_partition_check(tenant text) RETURNS void
    LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public
    AS $$
DECLARE own text;
BEGIN
    SELECT id INTO own FROM tenants WHERE db_role = session_user;
    IF own IS NOT NULL AND own <> tenant THEN
        RAISE EXCEPTION 'role % manages the partitions of tenant %, not %', session_user, own, tenant
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END $$;
-- +goose StatementEnd

-- The name of a tenant's partition of a table (tenant ids may be 63 bytes, so a hash, not the id).
-- +goose StatementBegin
CREATE FUNCTION tracekit_tenant_partition(tbl text, tenant text) RETURNS text
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT tbl || '_t' || left(md5(tenant), 12) $$;
-- +goose StatementEnd

-- Creates, if missing, the partitions of tbl (all registered tables when NULL) that hold the given
-- unix-nanosecond times for tenant; returns how many it created. Serialised per tenant by an
-- advisory lock, so concurrent ingest of the same new day creates it once.
-- Partitions are created and then attached: ATTACH PARTITION takes only a SHARE UPDATE EXCLUSIVE lock
-- on the parent, which reads and writes of the tenant (and, for a new tenant, of every tenant) do not
-- wait for, where CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on it.
-- +goose StatementBegin
CREATE FUNCTION tracekit_ensure_partitions(tenant text, tbl text, times bigint[]) RETURNS integer
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
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%s) TO (%s)',
                    parent, leaf, k * width, (k + 1) * width);
                created := created + 1;
            END IF;
        END LOOP;
    END LOOP;
    RETURN created;
END $$;
-- +goose StatementEnd

-- Drops tenant's partitions of tbl that hold only times before before_ns; returns their names.
-- +goose StatementBegin
CREATE FUNCTION tracekit_drop_partitions(tenant text, tbl text, before_ns bigint) RETURNS SETOF text
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = public
    AS $$
DECLARE
    width bigint;
    leaf text;
BEGIN
    PERFORM tracekit_partition_check(tenant);
    SELECT width_days::bigint * 86400000000000 INTO width FROM tracekit_partitioned WHERE table_name = tbl;
    IF width IS NULL THEN
        RAISE EXCEPTION 'table % is not time-partitioned (see tracekit_partitioned)', tbl;
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('tracekit_partitions'), hashtext(tenant));
    FOR leaf IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = to_regclass(tracekit_tenant_partition(tbl, tenant))
          -- CASE, so that the date is parsed only from a day partition's name: with a week of
          -- partitions PostgreSQL scans pg_class before the join and would parse goose_db_version.
          AND CASE WHEN c.relname ~ '_[0-9]{8}$'
              THEN (extract(epoch FROM to_date(right(c.relname, 8), 'YYYYMMDD'))::bigint * 1000000000 + width) <= before_ns END
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', leaf);
        RETURN NEXT leaf;
    END LOOP;
END $$;
-- +goose StatementEnd

-- Drops all of a tenant's partitions (deleting the tenant). Owner only.
-- +goose StatementBegin
CREATE FUNCTION tracekit_drop_tenant_partitions(tenant text) RETURNS void
    LANGUAGE plpgsql SET search_path = public
    AS $$
DECLARE r record;
BEGIN
    FOR r IN SELECT table_name FROM tracekit_partitioned LOOP
        EXECUTE format('DROP TABLE IF EXISTS %I', tracekit_tenant_partition(r.table_name, tenant));
    END LOOP;
END $$;
-- +goose StatementEnd

REVOKE EXECUTE ON FUNCTION tracekit_partition_check(text), tracekit_ensure_partitions(text, text, bigint[]),
    tracekit_drop_partitions(text, text, bigint), tracekit_drop_tenant_partitions(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION tracekit_ensure_partitions(text, text, bigint[]), tracekit_drop_partitions(text, text, bigint)
    TO tracekit_tenant;

-- The tables move into partitioned ones: renamed, recreated partitioned with their indexes (without
-- the tenant_id prefix, since each partition holds one tenant; the unique ones must hold the
-- partition keys), rows copied into partitions created for them, old tables dropped.
ALTER TABLE spans RENAME TO spans_unpartitioned;
ALTER TABLE llm_calls RENAME TO llm_calls_unpartitioned;
ALTER TABLE snapshots RENAME TO snapshots_unpartitioned;
ALTER TABLE metric_rollups RENAME TO metric_rollups_unpartitioned;
DROP INDEX spans_span, spans_entry_time, spans_entry_service_time, spans_entry_service_duration, spans_entry_errors,
    spans_root_duration, spans_start_brin, llm_calls_time, llm_calls_trace, llm_calls_cost, llm_calls_latency,
    llm_calls_tokens, snapshots_time, snapshots_breakpoint, snapshots_trace, metric_rollups_time,
    metric_rollups_service, metric_rollups_partial, metric_rollups_merged;
ALTER SEQUENCE llm_calls_id_seq OWNED BY NONE;
ALTER SEQUENCE snapshots_id_seq OWNED BY NONE;

CREATE TABLE spans (LIKE spans_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
-- A resent span keeps its start time, so the start in the key still finds it.
CREATE UNIQUE INDEX spans_span ON spans (trace_id, span_id, tenant_id, start_ns);
CREATE INDEX spans_entry_time ON spans (start_ns) WHERE is_entry;
-- tenant_id is constant in a tenant's partition, but queries (and row-level security) filter on it:
-- carried here, counting a service's requests is an index-only scan (7,211 heap buffers an hour
-- without it; docs/data-model.md).
CREATE INDEX spans_entry_service_time ON spans (service, start_ns) INCLUDE (tenant_id) WHERE is_entry;
CREATE INDEX spans_entry_service_duration ON spans (service, duration_ns, start_ns) WHERE is_entry;
CREATE INDEX spans_entry_errors ON spans (start_ns, service) WHERE is_entry AND (status_code = 2 OR http_status_code >= 500);
CREATE INDEX spans_root_duration ON spans (duration_ns, start_ns) WHERE is_entry AND parent_span_id = '';

CREATE TABLE llm_calls (LIKE llm_calls_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
ALTER SEQUENCE llm_calls_id_seq OWNED BY llm_calls.id;
CREATE INDEX llm_calls_id ON llm_calls (id);
CREATE INDEX llm_calls_time ON llm_calls (start_ns);
CREATE INDEX llm_calls_trace ON llm_calls (trace_id);
CREATE INDEX llm_calls_cost ON llm_calls ((COALESCE(cost_usd, -1)), id, start_ns);
CREATE INDEX llm_calls_latency ON llm_calls (duration_ns, id, start_ns);
CREATE INDEX llm_calls_tokens ON llm_calls ((input_tokens + output_tokens), id, start_ns);

CREATE TABLE snapshots (LIKE snapshots_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
ALTER SEQUENCE snapshots_id_seq OWNED BY snapshots.id;
CREATE INDEX snapshots_id ON snapshots (id);
CREATE INDEX snapshots_time ON snapshots (captured_ns);
CREATE INDEX snapshots_breakpoint ON snapshots (breakpoint_id, captured_ns);
CREATE INDEX snapshots_trace ON snapshots (trace_id);

CREATE TABLE metric_rollups (LIKE metric_rollups_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (tenant_id);
CREATE INDEX metric_rollups_time ON metric_rollups (res_ns, bucket_ns);
CREATE INDEX metric_rollups_service ON metric_rollups (service, res_ns, bucket_ns);
CREATE INDEX metric_rollups_partial ON metric_rollups (bucket_ns) WHERE partial;
-- One merged row per series and bucket: a second compactor fails instead of double-counting.
CREATE UNIQUE INDEX metric_rollups_merged ON metric_rollups (tenant_id, kind, service, name, res_ns, bucket_ns) WHERE NOT partial;

SELECT tracekit_ensure_partitions(tenant_id, 'spans', array_agg(DISTINCT start_ns / 86400000000000 * 86400000000000))
    FROM spans_unpartitioned GROUP BY tenant_id;
SELECT tracekit_ensure_partitions(tenant_id, 'llm_calls', array_agg(DISTINCT start_ns / 86400000000000 * 86400000000000))
    FROM llm_calls_unpartitioned GROUP BY tenant_id;
SELECT tracekit_ensure_partitions(tenant_id, 'snapshots', array_agg(DISTINCT captured_ns / 86400000000000 * 86400000000000))
    FROM snapshots_unpartitioned GROUP BY tenant_id;
SELECT tracekit_ensure_partitions(tenant_id, 'metric_rollups', array_agg(DISTINCT bucket_ns / 86400000000000 * 86400000000000))
    FROM metric_rollups_unpartitioned GROUP BY tenant_id;
INSERT INTO spans SELECT * FROM spans_unpartitioned;
INSERT INTO llm_calls SELECT * FROM llm_calls_unpartitioned;
INSERT INTO snapshots SELECT * FROM snapshots_unpartitioned;
INSERT INTO metric_rollups SELECT * FROM metric_rollups_unpartitioned;
DROP TABLE spans_unpartitioned, llm_calls_unpartitioned, snapshots_unpartitioned, metric_rollups_unpartitioned;

-- Row-level security and grants on the parents only: a partition named directly is refused.
ALTER TABLE spans ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON spans USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE llm_calls ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON llm_calls USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE snapshots ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON snapshots USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
ALTER TABLE metric_rollups ENABLE ROW LEVEL SECURITY;
CREATE POLICY tenant_rows ON metric_rollups USING (tenant_id = tracekit_current_tenant()) WITH CHECK (tenant_id = tracekit_current_tenant());
GRANT SELECT, INSERT, UPDATE, DELETE ON spans, llm_calls, snapshots, metric_rollups TO tracekit_tenant;

-- +goose Down
SELECT 'partitioned tables are not converted back; restore a backup taken before migration 00008';
