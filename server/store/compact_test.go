package store_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// CompactPartitions rebuilds the indexes of a day that is over, once, and only as the tables' owner;
// every span reads back the same, and a late or resent span still meets the rebuilt unique index.
func TestCompactPartitions_RebuildsClosedDaysOnceAndKeepsRows(t *testing.T) {
	ctx := context.Background()
	admin, dsn, tenantDSN := storetest.TwoTenants(t)
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixNano()
	var b store.Batch
	for i := range 600 { // two days of traces of three spans
		at := day + int64(i%2)*store.Day + int64(i)*int64(time.Second)
		for j, parent := range []string{"", "1", "1"} {
			s := store.Span{TraceID: storetest.TraceID(fmt.Sprint("t", i)), SpanID: storetest.SpanID(fmt.Sprint(j + 1)),
				Service: "api", Operation: "GET /", IsEntry: parent == "", StartNS: at + int64(j), DurationNS: 1e6,
				DBStatement: "SELECT 1", Attributes: []byte(`{"k":"v"}`)}
			if parent != "" {
				s.ParentSpanID = storetest.SpanID(parent)
			}
			b.Spans = append(b.Spans, s)
		}
	}
	a := admin.ForTenant("team-a")
	if err := a.InsertBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := admin.ForTenant("team-b").InsertBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	read := func() map[string][]store.TraceSpan {
		out := map[string][]store.TraceSpan{}
		for _, i := range []int{0, 1, 298, 599} {
			id := storetest.TraceID(fmt.Sprint("t", i))
			spans, _, err := a.TraceSpans(ctx, id, 100)
			if err != nil || len(spans) != 3 {
				t.Fatalf("trace %d: %d spans, %v", i, len(spans), err)
			}
			out[id] = spans
		}
		return out
	}
	before := read()

	pod, err := store.Open(ctx, tenantDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pod.Close()
	if done, err := pod.ForTenant("team-a").CompactPartitions(ctx, day+store.Day); err != nil || len(done) != 0 {
		t.Errorf("as the tenant role: rebuilt %v, %v; want nothing to do", done, err)
	}

	done, err := a.CompactPartitions(ctx, day+store.Day)
	if err != nil {
		t.Fatal(err)
	}
	var spanIndexes int
	for _, idx := range done {
		if storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_index WHERE indexrelid = '`+idx+`'::regclass
				AND indrelid::regclass::text LIKE '%\_20261120'`) != 1 {
			t.Errorf("rebuilt %s, want only the indexes of 2026-11-20, the day that is over", idx)
		}
		if strings.HasPrefix(idx, "spans_") {
			spanIndexes++
		}
	}
	if spanIndexes != 6 { // the unique index and the five partial ones
		t.Errorf("rebuilt %v, want the six indexes of the day's spans partition among them", done)
	}
	if n := storetest.QueryInt(t, dsn, `SELECT count(*) FROM pg_class WHERE 'fillfactor=100' = ANY (reloptions)`); n != len(done) {
		t.Errorf("%d indexes packed, want the %d rebuilt (not team-b's, not today's)", n, len(done))
	}
	if again, err := a.CompactPartitions(ctx, day+store.Day); err != nil || len(again) != 0 {
		t.Errorf("second run rebuilt %v, %v; want nothing", again, err)
	}
	if got := read(); !reflect.DeepEqual(got, before) {
		t.Errorf("spans read back differently after the rebuild:\n%v\nwant\n%v", got, before)
	}
	// A resent batch stores nothing twice; a late span joins the closed day.
	late := b.Spans[0]
	late.SpanID = storetest.SpanID("late")
	b.Spans = append(b.Spans, late)
	if err := a.InsertBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := storetest.Count(t, dsn, "spans", "team-a"); got != 1801 {
		t.Errorf("%d spans after resending, want 1801", got)
	}
	if got := storetest.Count(t, dsn, "spans", "team-b"); got != 1800 {
		t.Errorf("team-b has %d spans, want 1800", got)
	}
}
