package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// TestMigrate_VersionAndHostInResourceKeepsStoredSpans fills a database at 00015, where each span
// holds its version and host, migrates it forward (00016 moves them to the span's resource for new
// rows only), and checks that every stored span reads back its own version and host through the
// store, that search and version comparison see them, and that spans stored after read back theirs
// while their own columns stay NULL.
func TestMigrate_VersionAndHostInResourceKeepsStoredSpans(t *testing.T) {
	ctx := context.Background()
	dsn, raw := atVersion(t, 15)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	for _, stmt := range []string{
		`INSERT INTO tenants (id, created_ns) VALUES ('team-a', 1)`,
		`SELECT tracekit_ensure_partitions('team-a', NULL, ARRAY[$1::bigint])`,
		`INSERT INTO span_resources (tenant_id, id, attributes) VALUES ('team-a', 42, '{"host.name": "h-res"}')`,
		// 100 spans, one trace each, one in ten a request; half of them of resource 42 (whose version
		// and host the span holds, unlike 00016's), some with an empty version or host.
		`INSERT INTO spans (tenant_id, trace_id, span_id, service, service_version, host_name, operation, is_entry,
				start_ns, duration_ns, resource_id)
			SELECT 'team-a', md5('t' || i)::uuid, i, 'api', CASE WHEN i % 7 = 0 THEN '' ELSE 'v' || (i % 3) END,
				CASE WHEN i % 5 = 0 THEN '' ELSE 'host-' || (i % 2) END, 'GET /', i % 10 = 0, $1 + i * 1000000000, 1000 + i,
				CASE WHEN i % 2 = 0 THEN 42 ELSE 0 END
			FROM generate_series(0::bigint, 99) i`,
	} {
		var args []any
		if stmt[:6] == "SELECT" || stmt[:18] == "INSERT INTO spans " {
			args = []any{day}
		}
		if _, err := raw.ExecContext(ctx, stmt, args...); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	type vh struct{ version, host string }
	before := map[string]vh{}     // trace id -> its span's version and host
	requests := map[string]bool{} // trace ids of requests
	rows, err := raw.QueryContext(ctx, `SELECT replace(trace_id::text, '-', ''), service_version, host_name, is_entry FROM spans`)
	if err != nil {
		t.Fatal(err)
	}
	var traces []string
	for rows.Next() {
		var id string
		var v vh
		var entry bool
		if err := rows.Scan(&id, &v.version, &v.host, &entry); err != nil {
			t.Fatal(err)
		}
		before[id], requests[id] = v, entry
		traces = append(traces, id)
	}
	rows.Close()

	leafFile := `SELECT sum(pg_relation_filenode(relid)::bigint) FROM pg_partition_tree('spans') WHERE isleaf`
	files := storetest.QueryInt(t, dsn, leafFile)

	db := storetest.Open(t, dsn) // migrates the rest of the way
	if n := storetest.QueryInt(t, dsn, leafFile); n != files {
		t.Errorf("the span partitions' files changed while migrating: the spans were rewritten")
	}
	tr := db.ForTenant("team-a")
	// New spans after migrating: a version and host without resource attributes (as the store's
	// callers set them), and stored resource 42's attributes with none (the pre-00016 resource id).
	fresh := []store.Span{
		{TraceID: fmt.Sprintf("%032x", 1001), SpanID: "0000000000000001", Service: "api", ServiceVersion: "v9",
			HostName: "host-new", Operation: "GET /", IsEntry: true, StartNS: day + 5e9, DurationNS: 99},
		{TraceID: fmt.Sprintf("%032x", 1002), SpanID: "0000000000000002", Service: "api", ServiceVersion: "v9",
			Operation: "GET /", IsEntry: true, StartNS: day + 6e9, DurationNS: 98, ResourceAttributes: []byte(`{"host.name": "h-res"}`)},
		{TraceID: fmt.Sprintf("%032x", 1003), SpanID: "0000000000000003", Service: "api", Operation: "GET /",
			IsEntry: true, StartNS: day + 7e9, DurationNS: 97, ResourceAttributes: []byte(`{"host.name": "h-res"}`)},
	}
	if err := tr.InsertBatch(ctx, store.Batch{Spans: fresh}); err != nil {
		t.Fatal(err)
	}
	for _, s := range fresh {
		before[s.TraceID], requests[s.TraceID] = vh{s.ServiceVersion, s.HostName}, true
		traces = append(traces, s.TraceID)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM spans WHERE service_version IS NULL AND host_name IS NULL`); n != len(fresh) {
		t.Errorf("%d spans with NULL version and host, want the %d stored after migrating", n, len(fresh))
	}

	spans, err := tr.SpansOfTraces(ctx, traces)
	if err != nil || len(spans) != len(before) {
		t.Fatalf("SpansOfTraces after migrating: %d spans, want %d; %v", len(spans), len(before), err)
	}
	for _, s := range spans {
		if got := (vh{s.ServiceVersion, s.HostName}); got != before[s.TraceID] {
			t.Errorf("trace %s: version and host %+v after migrating, want %+v", s.TraceID, got, before[s.TraceID])
		}
		tspans, _, err := tr.TraceSpans(ctx, s.TraceID, 10)
		if err != nil || len(tspans) != 1 || tspans[0].ServiceVersion != before[s.TraceID].version {
			t.Errorf("TraceSpans of %s: %+v, %v; want version %q", s.TraceID, tspans, err, before[s.TraceID].version)
		}
	}

	// Search by host and version: the requests whose own values match, old rows and new.
	window := store.TraceQuery{From: day, To: day + store.Day, Service: "api", Limit: 1000}
	for _, f := range []struct{ key, value string }{
		{"host.name", "host-0"}, {"host.name", "host-new"}, {"host.name", ""},
		{"service.version", "v9"}, {"service.version", "v1"}, {"service.version", ""},
	} {
		want := map[string]bool{}
		for id, v := range before {
			if (f.key == "host.name" && v.host == f.value || f.key == "service.version" && v.version == f.value) && requests[id] {
				want[id] = true
			}
		}
		q := window
		q.Attributes = map[string]string{f.key: f.value}
		hits, err := tr.SearchTraces(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]bool{}
		for _, h := range hits {
			got[h.TraceID] = true
			if v := before[h.TraceID].version; h.ServiceVersion != v {
				t.Errorf("hit %s: version %q, want %q", h.TraceID, h.ServiceVersion, v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("search %s=%q: %d requests, want %d", f.key, f.value, len(got), len(want))
		}
		for id := range want {
			if !got[id] {
				t.Errorf("search %s=%q: request %s missing", f.key, f.value, id)
			}
		}
	}

	// Versions compared over old and new requests (the new ones made a second version known).
	want := map[string]int64{}
	for id, v := range before {
		if requests[id] {
			want[v.version]++
		}
	}
	versions, err := tr.ServiceVersions(ctx, "api", day, day+store.Day, 1)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, v := range versions {
		got[v.Key] = v.Requests
		if v.P95TraceID == "" || before[v.P95TraceID].version != v.Key {
			t.Errorf("version %q: p95 request %q is not of that version", v.Key, v.P95TraceID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("requests per version %v, want %v", got, want)
	}
}
