package store_test

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// checkoutTrace is a request of user 42 through three services: the frontend's root span carries
// user.id, the payment service's resource carries k8s.pod.name, and its database call carries the
// table, the order id (an integer) and a feature flag (a boolean).
func checkoutTrace(trace string, start int64, user, pod, table string, order int, beta bool) []store.Span {
	return []store.Span{
		{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("a1"), Service: "frontend", Operation: "POST /checkout", Kind: store.KindServer, IsEntry: true,
			StartNS: start, DurationNS: 50 * ms, HTTPRoute: "/checkout",
			Attributes: []byte(`{"user.id":"` + user + `","http.route":"/checkout"}`), ResourceAttributes: []byte(`{"service.name":"frontend"}`)},
		{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("b1"), ParentSpanID: storetest.SpanID("a1"), Service: "payment", Operation: "POST /pay", Kind: store.KindServer, IsEntry: true,
			StartNS: start + ms, DurationNS: 40 * ms, HTTPRoute: "/pay", Attributes: []byte(`{"http.route":"/pay"}`),
			ResourceAttributes: []byte(`{"service.name":"payment","k8s.pod.name":"` + pod + `"}`)},
		{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("c1"), ParentSpanID: storetest.SpanID("b1"), Service: "payment", Operation: "INSERT", Kind: store.KindClient,
			StartNS: start + 2*ms, DurationNS: 10 * ms, DBSystem: "postgresql",
			Attributes:         []byte(fmt.Sprintf(`{"db.sql.table":%q,"app.order_id":%d,"app.beta":%t}`, table, order, beta)),
			ResourceAttributes: []byte(`{"service.name":"payment","k8s.pod.name":"` + pod + `"}`)},
	}
}

func TestSearchTraces_IndexedAttributesMatchEntryChildAndResourceValuesOfEveryType(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		keys := append([]string{"app.order_id", "app.beta", "k8s.pod.name", "http.route"}, store.DefaultIndexedAttributes...)
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: keys}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		tn, other := db.ForTenant("acme"), db.ForTenant("other")
		var b store.Batch
		b.Spans = append(b.Spans, checkoutTrace("t42", now-10*int64(time.Minute), "42", "pay-7", "payments", 8812, true)...)
		for i := range 20 {
			b.Spans = append(b.Spans, checkoutTrace(fmt.Sprintf("t%d", 100+i), now-int64(i)*int64(time.Minute), fmt.Sprint(100+i), "pay-1", "orders", 1000+i, false)...)
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		// The same values in another tenant must not leak into acme's answers.
		if err := other.InsertBatch(ctx, store.Batch{Spans: checkoutTrace("x42", now-5*int64(time.Minute), "42", "pay-7", "payments", 8812, true)}); err != nil {
			t.Fatal(err)
		}
		from, to := now-int64(time.Hour), now+int64(time.Minute)
		for _, tc := range []struct {
			level, service string
			attrs          map[string]string
			want           string // span ids of the hits
		}{
			{"entry span, string", "", map[string]string{"user.id": "42"}, "t42/a1"},
			{"child span, string", "", map[string]string{"db.sql.table": "payments"}, "t42/a1"},
			{"child span, integer", "", map[string]string{"app.order_id": "8812"}, "t42/a1"},
			{"child span, boolean", "", map[string]string{"app.beta": "true"}, "t42/a1"},
			{"resource of a child", "", map[string]string{"k8s.pod.name": "pay-7"}, "t42/a1"},
			{"two filters", "", map[string]string{"user.id": "42", "db.sql.table": "payments"}, "t42/a1"},
			{"service's request in the trace", "payment", map[string]string{"user.id": "42"}, "t42/b1"},
			{"promoted key: the request's own route", "payment", map[string]string{"http.route": "/checkout"}, ""},
			{"promoted key, own route", "frontend", map[string]string{"http.route": "/checkout", "user.id": "42"}, "t42/a1"},
			{"no match", "", map[string]string{"user.id": "nobody"}, ""},
			{"no match with a service", "payment", map[string]string{"db.sql.table": "nope"}, ""},
			{"values that never meet", "", map[string]string{"user.id": "42", "db.sql.table": "orders"}, ""},
		} {
			q := store.TraceQuery{From: from, To: to, Service: tc.service, Attributes: tc.attrs, Limit: 10}
			hits, err := tn.SearchTraces(ctx, q)
			if err != nil {
				t.Fatalf("%s: %v", tc.level, err)
			}
			var got []string
			for _, h := range hits {
				got = append(got, storetest.Name(h.TraceID)+"/"+storetest.Name(h.SpanID))
			}
			if strings.Join(got, ",") != tc.want {
				t.Errorf("%s %v: hits %v, want %q", tc.level, tc.attrs, got, tc.want)
			}
			c, err := tn.CountTraces(ctx, q)
			if err != nil || c.Hits != len(got) || !c.Exact {
				t.Errorf("%s: count %+v, %v; want %d, exact", tc.level, c, err, len(got))
			}
		}
	})
}

func TestSearchTraces_KeyPastItsValueLimitIsStillFoundFromTheSpans(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: []string{"user.id"}, MaxValuesPerDay: 5}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		tn := db.ForTenant("acme")
		for i := range 20 {
			// One batch per request: the limit is passed in the middle of the day's data.
			if err := tn.InsertBatch(ctx, store.Batch{Spans: checkoutTrace(fmt.Sprintf("t%02d", i), now-int64(i)*int64(time.Second), fmt.Sprint(i), "p", "orders", i, false)}); err != nil {
				t.Fatal(err)
			}
		}
		for i := range 20 {
			hits, err := tn.SearchTraces(ctx, store.TraceQuery{From: now - int64(time.Hour), To: now + 1, Attributes: map[string]string{"user.id": fmt.Sprint(i)}, Limit: 10})
			if err != nil || len(hits) != 1 || storetest.Name(hits[0].TraceID) != fmt.Sprintf("t%02d", i) {
				t.Errorf("user.id %d: %+v, %v; want trace t%02d", i, hits, err, i)
			}
		}
	})
}

func TestAttributeIndex_RefusesConfigurationItCannotServe(t *testing.T) {
	for _, tc := range []struct {
		ix   store.AttributeIndex
		want string
	}{
		{store.AttributeIndex{Keys: []string{""}}, `key ""`},
		{store.AttributeIndex{Keys: []string{`a"b`}}, "without quotes"},
		{store.AttributeIndex{Keys: make([]string, 65)}, "at most 64"},
		{store.AttributeIndex{Keys: []string{"user.id"}, MaxValuesPerDay: -1}, "positive limit"},
	} {
		if err := tc.ix.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %q", tc.ix, err, tc.want)
		}
	}
}

func TestAttributeSummary_CountsRequestsPerValue(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		now := time.Now().UnixNano()
		tn := db.ForTenant("acme")
		var b store.Batch
		var ids []string
		for i := range 6 {
			id := fmt.Sprintf("t%d", i)
			ids = append(ids, storetest.TraceID(id))
			b.Spans = append(b.Spans, checkoutTrace(id, now-int64(i)*ms, fmt.Sprint(i%2), "p", "orders", i, false)...)
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		keys, err := tn.AttributeSummary(ctx, ids, 3)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]store.AttributeKey{}
		for _, k := range keys {
			got[k.Key] = k
		}
		u := got["user.id"]
		if !u.Indexed || u.Requests != 6 || fmt.Sprint(u.Values) != "[{0 3} {1 3}]" {
			t.Errorf("user.id: %+v", u)
		}
		if o := got["app.order_id"]; o.Indexed || o.Requests != 6 || len(o.Values) != 3 {
			t.Errorf("app.order_id: %+v", o)
		}
	})
}

// A value carried by more requests than CountScan, in a window with as many other requests: the
// count is exact. Counting a sample of the listed traces and extrapolating with the whole window's
// requests doubled it here (at 50 M spans: 576,830 for a user with about 2,000 requests).
func TestCountTraces_AListedValueIsCountedExactlyHoweverManyRequestsCarryIt(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: []string{"user.id"}}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		const busy = store.CountScan + 100
		var b store.Batch
		for i := range 2 * busy {
			user := "busy"
			if i%2 == 1 {
				user = fmt.Sprint("u", i)
			}
			b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("t%05d", i)), SpanID: storetest.SpanID("a1"), Service: "frontend", Operation: "GET /",
				Kind: store.KindServer, IsEntry: true, StartNS: now - int64(i)*int64(time.Second), DurationNS: ms,
				Attributes: []byte(`{"user.id":"` + user + `"}`)})
		}
		tn := db.ForTenant("acme")
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		q := store.TraceQuery{From: now - int64(3*time.Hour), To: now + int64(time.Minute), Attributes: map[string]string{"user.id": "busy"}, Limit: 10}
		if c, err := tn.CountTraces(ctx, q); err != nil || c.Hits != busy || !c.Exact {
			t.Errorf("count of user busy = %+v, %v; want %d, exact", c, err, busy)
		}
		// With a service, the requests of a sample of the listed traces are read and the count says so.
		q.Service = "frontend"
		if c, err := tn.CountTraces(ctx, q); err != nil || c.Hits < busy*95/100 || c.Hits > busy*105/100 || c.Exact || !c.Extrapolated {
			t.Errorf("count of user busy's frontend requests = %+v, %v; want about %d, extrapolated", c, err, busy)
		}
	})
}

// A value carried by hundreds of requests over three hours, by a span that starts up to 12 minutes
// after or before the request searched (so the index lists the traces in another order than their
// requests): paging
// newest first returns every matching request once, in order, with and without a service and with
// a filter only a few of them pass; the counts agree.
func TestSearchTraces_PagesAValueWithManyTracesNewestFirst(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if err := db.SetAttributeIndex(store.AttributeIndex{Keys: []string{"user.id"}}); err != nil {
			t.Fatal(err)
		}
		now := time.Now().UnixNano()
		from, to := now-int64(3*time.Hour), now+int64(time.Minute)
		var b store.Batch
		type hit struct {
			id    string
			start int64
		}
		want := map[string][]hit{}
		for i := range 450 {
			user := "busy"
			if i%5 == 4 {
				user = fmt.Sprint("u", i)
			}
			trace := fmt.Sprintf("t%04d", i)
			start := now - int64(i)*25*int64(time.Second)
			child := start + int64(i%7)*2*int64(time.Minute)
			var status int16
			if i%9 == 0 {
				status = 2
			}
			rootAttrs, childAttrs := `{}`, `{"user.id":"`+user+`"}`
			if i%3 == 0 { // the payment request starts up to 12 minutes after the value's span
				rootAttrs, childAttrs = childAttrs, rootAttrs
			}
			b.Spans = append(b.Spans,
				store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("a1"), Service: "frontend", Operation: "GET /", Kind: store.KindServer, IsEntry: true,
					StartNS: start, DurationNS: 20 * int64(time.Minute), StatusCode: status, Attributes: []byte(rootAttrs)},
				store.Span{TraceID: storetest.TraceID(trace), SpanID: storetest.SpanID("b1"), ParentSpanID: storetest.SpanID("a1"), Service: "payment", Operation: "POST /pay", Kind: store.KindServer, IsEntry: true,
					StartNS: child, DurationNS: ms, Attributes: []byte(childAttrs)})
			if user != "busy" {
				continue
			}
			if start >= from {
				want["root"] = append(want["root"], hit{trace + "/a1", start})
				if status == 2 {
					want["errors"] = append(want["errors"], hit{trace + "/a1", start})
				}
			}
			if child >= from && child < to {
				want["payment"] = append(want["payment"], hit{trace + "/b1", child})
			}
		}
		tn := db.ForTenant("acme")
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			q    store.TraceQuery
		}{
			{"root", store.TraceQuery{}},
			{"errors", store.TraceQuery{ErrorsOnly: true}},
			{"payment", store.TraceQuery{Service: "payment"}},
		} {
			q := tc.q
			q.From, q.To, q.Attributes, q.Limit = from, to, map[string]string{"user.id": "busy"}, 11
			var got []store.TraceHit
			for page := 0; page < 100; page++ {
				hits, err := tn.SearchTraces(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, hits...)
				if len(hits) < q.Limit {
					break
				}
				last := hits[len(hits)-1].Key(false)
				q.After = &last
			}
			var ids, wantIDs []string
			for _, h := range got {
				ids = append(ids, storetest.Name(h.TraceID)+"/"+storetest.Name(h.SpanID))
			}
			slices.SortFunc(want[tc.name], func(a, b hit) int { return cmp.Or(cmp.Compare(b.start, a.start), strings.Compare(b.id, a.id)) })
			for _, h := range want[tc.name] {
				wantIDs = append(wantIDs, h.id)
			}
			if strings.Join(ids, ",") != strings.Join(wantIDs, ",") {
				t.Errorf("%s: %d requests over the pages, want %d newest first:\n%v\n%v", tc.name, len(ids), len(wantIDs), ids, wantIDs)
			}
			q.After = nil
			if c, err := tn.CountTraces(ctx, q); err != nil || c.Hits != len(want[tc.name]) || !c.Exact {
				t.Errorf("%s: count %+v, %v; want %d, exact", tc.name, c, err, len(want[tc.name]))
			}
		}
	})
}
