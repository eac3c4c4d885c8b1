-- +goose Up
-- Retention parsed a date from the name of every relation the catalog query read: with a week of a
-- tenant's partitions PostgreSQL scanned all of pg_class before joining, and retention failed
-- ("invalid value "_ver" for "YYYY"") on the first table whose name is not a day.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tracekit_drop_partitions(tenant text, tbl text, before_ns bigint) RETURNS SETOF text
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
          -- CASE, so that the date is parsed only from a day partition's name: PostgreSQL may test
          -- this condition on every relation before the join (a hash join over pg_class).
          AND CASE WHEN c.relname ~ '_[0-9]{8}$'
              THEN (extract(epoch FROM to_date(right(c.relname, 8), 'YYYYMMDD'))::bigint * 1000000000 + width) <= before_ns END
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', leaf);
        RETURN NEXT leaf;
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION tracekit_drop_partitions(tenant text, tbl text, before_ns bigint) RETURNS SETOF text
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
          AND (extract(epoch FROM to_date(right(c.relname, 8), 'YYYYMMDD'))::bigint * 1000000000 + width) <= before_ns
        ORDER BY c.relname
    LOOP
        EXECUTE format('DROP TABLE %I', leaf);
        RETURN NEXT leaf;
    END LOOP;
END $$;
-- +goose StatementEnd
