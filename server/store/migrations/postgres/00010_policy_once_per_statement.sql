-- +goose Up
-- The tenant policies compare tenant_id with (SELECT tracekit_current_tenant()): an initplan, run
-- once per statement. The bare call ran the function's query for every row checked, which cost a
-- tenant's own role 6–10 µs of PostgreSQL CPU per span ingested (docs/benchmarks.md). Every
-- tenant_rows policy still in the old form is rewritten, whichever migration created it.
-- +goose StatementBegin
DO $$
DECLARE p record;
BEGIN
    FOR p IN SELECT tablename, with_check FROM pg_policies
        WHERE schemaname = current_schema() AND policyname = 'tenant_rows' AND qual = '(tenant_id = tracekit_current_tenant())'
    LOOP
        EXECUTE format('ALTER POLICY tenant_rows ON %I USING (tenant_id = (SELECT tracekit_current_tenant()))', p.tablename)
            || CASE WHEN p.with_check IS NULL THEN '' ELSE ' WITH CHECK (tenant_id = (SELECT tracekit_current_tenant()))' END;
    END LOOP;
END $$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE p record;
BEGIN
    FOR p IN SELECT tablename, with_check FROM pg_policies
        WHERE schemaname = current_schema() AND policyname = 'tenant_rows' AND qual = '(tenant_id = ( SELECT tracekit_current_tenant() AS tracekit_current_tenant))'
    LOOP
        EXECUTE format('ALTER POLICY tenant_rows ON %I USING (tenant_id = tracekit_current_tenant())', p.tablename)
            || CASE WHEN p.with_check IS NULL THEN '' ELSE ' WITH CHECK (tenant_id = tracekit_current_tenant())' END;
    END LOOP;
END $$;
-- +goose StatementEnd
