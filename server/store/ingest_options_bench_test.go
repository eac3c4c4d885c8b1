package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// BenchmarkTenantIngestOptions compares the ways a tenant's own role can write 1,000-span batches
// under row-level security (PostgreSQL refuses it COPY FROM) with the owner's COPY, one connection,
// one transaction per batch; b.N is batches. Besides spans/s it reports the CPU per span of the
// PostgreSQL backend (from /proc, so PostgreSQL must run on this host) and of this process, which a
// busy machine disturbs far less than spans/s. The options, in docs/benchmarks.md:
//
//   - owner-copy: COPY as the database owner (not subject to row-level security);
//   - multirow: 64-row INSERT … VALUES … ON CONFLICT DO NOTHING RETURNING (the tenant path until
//     migration 00010);
//   - unnest-on-conflict: one INSERT … SELECT FROM unnest(one array per column) ON CONFLICT DO
//     NOTHING RETURNING;
//   - unnest: the same without ON CONFLICT (InsertBatch's first attempt: a batch that hits the
//     unique index is written again skipping the stored spans);
//   - temp-copy: COPY into a temporary table, then INSERT … SELECT from it;
//   - definer: COPY into an unlogged staging table, then a SECURITY DEFINER function that checks
//     the rows' tenant moves them.
//
// Each runs with the policy calling tracekit_current_tenant() per row ("per-row") and once per
// statement ("once", migration 00010). Results are logged per option: run it with -v.
func BenchmarkTenantIngestOptions(b *testing.B) {
	ctx := context.Background()
	dsn, tenantDSN := optionsDatabase(b)
	owner, err := pgx.Connect(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer owner.Close(ctx)
	for _, stmt := range []string{
		`CREATE UNLOGGED TABLE spans_stage (LIKE spans)`,
		`ALTER TABLE spans_stage ADD COLUMN txid bigint NOT NULL DEFAULT txid_current()`,
		`CREATE INDEX ON spans_stage (txid)`,
		`GRANT INSERT ON spans_stage TO tracekit_tenant`,
		// The caller's tenant comes from session_user: inside the function current_user is the owner.
		`CREATE FUNCTION bench_move_spans() RETURNS SETOF bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $f$
		DECLARE tenant text; tx bigint := txid_current();
		BEGIN
			SELECT id INTO tenant FROM tenants WHERE db_role = session_user;
			IF tenant IS NULL OR EXISTS (SELECT 1 FROM spans_stage s WHERE s.txid = tx AND s.tenant_id <> tenant) THEN
				RAISE EXCEPTION 'staged spans of another tenant' USING ERRCODE = '42501';
			END IF;
			RETURN QUERY WITH moved AS (DELETE FROM spans_stage s WHERE s.txid = tx RETURNING s.*)
				INSERT INTO spans SELECT ` + strings.Join(spansTable.cols, ", ") + ` FROM moved
				ON CONFLICT DO NOTHING RETURNING 1::bigint;
		END $f$`,
		`GRANT EXECUTE ON FUNCTION bench_move_spans() TO tracekit_tenant`,
	} {
		if _, err := owner.Exec(ctx, stmt); err != nil {
			b.Fatalf("%s: %v", stmt, err)
		}
	}
	const onConflict = " ON CONFLICT (tenant_id, trace_id, span_id) DO NOTHING RETURNING trace_id, span_id"
	copyTo := func(ctx context.Context, tx pgx.Tx, t *Tenant, table string, spans []Span) error {
		_, err := tx.CopyFrom(ctx, pgx.Identifier{table}, spansTable.cols, pgx.CopyFromSlice(len(spans), func(i int) ([]any, error) { return t.spanRow(&spans[i]), nil }))
		return err
	}
	options := []struct {
		name  string
		owner bool
		write func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error
	}{
		{"owner-copy", true, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			return copyTo(ctx, tx, t, "spans", spans)
		}},
		{"multirow", false, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			tuple := "(" + placeholders(len(spansTable.cols)) + ")"
			for i := 0; i < len(spans); i += 64 {
				k := min(64, len(spans)-i)
				var args []any
				for j := i; j < i+k; j++ {
					args = append(args, t.spanRow(&spans[j])...)
				}
				q := "INSERT INTO spans (" + strings.Join(spansTable.cols, ", ") + ") VALUES " + strings.Repeat(tuple+",", k-1) + tuple + onConflict
				if err := drain(tx.Query(ctx, dollars(q), args...)); err != nil {
					return err
				}
			}
			return nil
		}},
		{"unnest-on-conflict", false, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			return drain(tx.Query(ctx, spansTable.unnest+onConflict, spansTable.arrays(len(spans), func(i int) []any { return t.spanRow(&spans[i]) })...))
		}},
		{"unnest", false, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			_, err := tx.Exec(ctx, spansTable.unnest, spansTable.arrays(len(spans), func(i int) []any { return t.spanRow(&spans[i]) })...)
			return err
		}},
		{"temp-copy", false, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			if _, err := tx.Exec(ctx, `CREATE TEMP TABLE IF NOT EXISTS stage (LIKE spans) ON COMMIT DELETE ROWS`); err != nil {
				return err
			}
			if err := copyTo(ctx, tx, t, "stage", spans); err != nil {
				return err
			}
			return drain(tx.Query(ctx, "INSERT INTO spans SELECT * FROM stage"+onConflict))
		}},
		{"definer", false, func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error {
			if err := copyTo(ctx, tx, t, "spans_stage", spans); err != nil {
				return err
			}
			return drain(tx.Query(ctx, "SELECT bench_move_spans()"))
		}},
	}
	tn := &Tenant{db: &DB{dialect: Postgres}, id: "bench"}
	type run struct {
		name, policy string
		write        func(ctx context.Context, tx pgx.Tx, t *Tenant, spans []Span) error
		conn         *pgx.Conn
		pid          string
		wall, pg, me time.Duration
	}
	var runs []*run
	for _, policy := range []string{"owner", "once", "per-row"} { // grouped: the policy changes twice a round
		for _, o := range options {
			if o.owner != (policy == "owner") {
				continue
			}
			connect := tenantDSN
			if o.owner {
				connect = dsn
			}
			conn, err := pgx.Connect(ctx, connect)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close(ctx)
			if err := registerArrays(ctx, conn); err != nil {
				b.Fatal(err)
			}
			var pid int
			if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
				b.Fatal(err)
			}
			runs = append(runs, &run{name: o.name, policy: policy, write: o.write, conn: conn, pid: strconv.Itoa(pid)})
		}
	}
	setPolicy := func(policy string) {
		tenant := "(SELECT tracekit_current_tenant())"
		if policy == "per-row" {
			tenant = "tracekit_current_tenant()"
		}
		if _, err := owner.Exec(ctx, fmt.Sprintf("ALTER POLICY tenant_rows ON spans USING (tenant_id = %s) WITH CHECK (tenant_id = %s)", tenant, tenant)); err != nil {
			b.Fatal(err)
		}
	}
	// Round-robin, one batch per option per round: a machine getting busier, or the table growing,
	// favours no option.
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j, r := range runs {
			if j == 0 || r.policy != runs[j-1].policy {
				setPolicy(r.policy)
			}
			spans := optionsBatch(1000)
			pg0, me0, t0 := cpuOf(r.pid), cpuOf("self"), time.Now()
			tx, err := r.conn.Begin(ctx)
			if err != nil {
				b.Fatal(err)
			}
			if err := r.write(ctx, tx, tn, spans); err != nil {
				b.Fatalf("%s: %v", r.name, err)
			}
			if err := tx.Commit(ctx); err != nil {
				b.Fatal(err)
			}
			r.wall += time.Since(t0)
			r.pg += cpuOf(r.pid) - pg0
			r.me += cpuOf("self") - me0
		}
	}
	b.StopTimer()
	setPolicy("once")
	n := float64(b.N * 1000)
	for _, r := range runs {
		b.Logf("%-19s %-8s %7.0f spans/s  PostgreSQL %5.1f µs/span  client %5.1f µs/span", r.name, r.policy,
			n/r.wall.Seconds(), float64(r.pg.Microseconds())/n, float64(r.me.Microseconds())/n)
	}
}

// optionsDatabase creates a migrated database with the tenant "bench" and returns its URL and that
// of the tenant's role; both are dropped when b ends. (storetest cannot be imported from package
// store.)
func optionsDatabase(b *testing.B) (dsn, tenantDSN string) {
	ctx := context.Background()
	admin := "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	if env := os.Getenv("TRACEKIT_TEST_POSTGRES"); env != "" {
		admin = env
	}
	c, err := pgx.Connect(ctx, admin)
	if err != nil {
		b.Fatalf("PostgreSQL is required: %v", err)
	}
	defer c.Close(ctx)
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix)
	name := "tracekit_bench_" + hex.EncodeToString(suffix)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		b.Fatal(err)
	}
	dsn = strings.Replace(admin, "/postgres?", "/"+name+"?", 1)
	var role string
	b.Cleanup(func() {
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close(ctx)
		for _, stmt := range []string{"DROP DATABASE " + name + " WITH (FORCE)", "DROP ROLE IF EXISTS " + quoteIdent(role)} {
			if _, err := c.Exec(ctx, stmt); err != nil {
				b.Error(err)
			}
		}
	})
	db, err := Open(ctx, dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	creds, err := db.Admin().ProvisionTenant(ctx, TenantSpec{ID: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	role = creds.Role
	if tenantDSN, err = creds.DSN(dsn); err != nil {
		b.Fatal(err)
	}
	return dsn, tenantDSN
}

// optionsBatch is n spans of new traces, shaped like hack/ingestbench's.
func optionsBatch(n int) []Span {
	spans := make([]Span, n)
	id := make([]byte, 24)
	now := time.Now().UnixNano()
	for i := range spans {
		_, _ = rand.Read(id)
		h := hex.EncodeToString(id)
		spans[i] = Span{TraceID: h[:32], SpanID: h[32:], Service: "checkout", ServiceVersion: "1.0.0", Operation: "SELECT orders",
			Kind: KindClient, IsEntry: i%10 == 0, StartNS: now - int64(i)*1e6, DurationNS: 1e6, DBSystem: "postgresql",
			DBStatement: "SELECT * FROM orders WHERE id = $1", HostName: "checkout-7d9f",
			Attributes:         []byte(`{"db.system":"postgresql","db.statement":"SELECT * FROM orders WHERE id = $1"}`),
			ResourceAttributes: []byte(`{"service.name":"checkout","service.version":"1.0.0","host.name":"checkout-7d9f"}`)}
	}
	return spans
}

func drain(rows pgx.Rows, err error) error {
	if err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// dollars numbers ? placeholders $1, $2, … for pgx.
func dollars(q string) string {
	var out strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			out.WriteString("$" + strconv.Itoa(n))
			continue
		}
		out.WriteRune(r)
	}
	return out.String()
}

// cpuOf is the user+system CPU time of /proc/<pid> ("self" for this process).
func cpuOf(pid string) time.Duration {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}
