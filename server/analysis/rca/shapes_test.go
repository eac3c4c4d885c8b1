package rca_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// explain writes 8 hours of traces, 20 a minute, built by trace (incident true in minutes
// [300, 340)), records a latency anomaly of service over the incident with threshold ms, and
// returns its root causes.
func explain(t *testing.T, tn *store.Tenant, service string, ms float64, trace func(id string, at int64, incident bool, lat func(float64) int64) []store.Span) []rca.Cause {
	t.Helper()
	return explainAnomaly(t, tn, store.Anomaly{Service: service, Metric: anomaly.LatencyP95, Baseline: ms, Observed: 3 * ms}, trace)
}

// explainAnomaly is explain for anomaly a (service, operation, metric and figures), placed on the
// incident's window.
func explainAnomaly(t *testing.T, tn *store.Tenant, a store.Anomaly, trace func(id string, at int64, incident bool, lat func(float64) int64) []store.Span) []rca.Cause {
	t.Helper()
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(9, 9))
	lat := func(ms float64) int64 { return int64(ms * 1e6 * math.Exp(0.1*rng.NormFloat64())) }
	var b store.Batch
	for m := 0; m < 8*60; m++ {
		for i := 0; i < 20; i++ {
			at := start.UnixNano() + int64(m)*60e9 + int64(i)*3e9
			b.Spans = append(b.Spans, trace(fmt.Sprintf("%016x%016x", m, i), at, m >= 300 && m < 340, lat)...)
		}
	}
	if err := tn.InsertBatch(ctx, b); err != nil {
		t.Fatal(err)
	}
	a.Severity, a.Summary = "warning", a.Service+" is slower."
	a.StartedNS, a.EndedNS = start.Add(300*time.Minute).UnixNano(), start.Add(340*time.Minute).UnixNano()
	id, err := tn.InsertAnomaly(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := rca.Analyze(ctx, tn, id)
	if err != nil {
		t.Fatal(err)
	}
	return causes(t, rep)
}

const (
	cacheGet    = "GET title:?"
	titlesQuery = "SELECT * FROM titles WHERE id = $1"
)

// Every cache read fails and catalog reads the database four times per request instead of on half
// of them: the cause is the cache and its fallback, not the database call that now fills the time.
func TestAnalyze_NamesAFailingDependencyAndTheFallbackTakingOver(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		cs := explain(t, db.ForTenant("acme"), "catalog", 20, func(id string, at int64, incident bool, lat func(float64) int64) []store.Span {
			span := func(sid, op string, startNS, dur int64) store.Span {
				return store.Span{TraceID: id, SpanID: storetest.SpanID(sid), ParentSpanID: storetest.SpanID("root"), Service: "catalog", ServiceVersion: "1", HostName: "catalog-0",
					Operation: op, Kind: store.KindClient, StartNS: startNS, DurationNS: dur}
			}
			get := span("get", "GET", at+1e6, lat(1))
			get.DBSystem, get.DBStatement = "redis", cacheGet
			reads := 0
			if id[len(id)-1]%2 == 0 {
				reads = 1 // a cache miss
			}
			if incident {
				get.StatusCode = store.StatusError
				reads = 4
			}
			spans := []store.Span{get}
			end := get.StartNS + get.DurationNS
			for i := range reads {
				q := span(fmt.Sprintf("q%d", i), "SELECT titles", end, lat(10))
				q.DBSystem, q.DBStatement = "postgresql", titlesQuery
				spans = append(spans, q)
				end += q.DurationNS
			}
			root := store.Span{TraceID: id, SpanID: storetest.SpanID("root"), Service: "catalog", ServiceVersion: "1", HostName: "catalog-0", Operation: "GET /titles/{id}",
				Kind: store.KindServer, IsEntry: true, StartNS: at, DurationNS: end + 1e6 - at, HTTPStatusCode: 200}
			return append(spans, root)
		})
		if top := cs[0]; top.Kind != rca.KindFallback || top.Value != cacheGet {
			t.Fatalf("top cause %+v; want the failing cache read and its fallback\nall: %+v", top, cs)
		}
	})
}

// render's own code (the handler, the template, the serializer) runs 2.5× slower; its database call
// does not: the service itself is starved.
func TestAnalyze_NamesAServiceWhoseOwnCodeIsSlowerEverywhere(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		cs := explain(t, db.ForTenant("acme"), "render", 60, func(id string, at int64, incident bool, lat func(float64) int64) []store.Span {
			slow := func(ms float64) int64 {
				if incident {
					ms *= 2.5
				}
				return lat(ms)
			}
			span := func(sid, op string, startNS, dur int64) store.Span {
				return store.Span{TraceID: id, SpanID: storetest.SpanID(sid), ParentSpanID: storetest.SpanID("root"), Service: "render", ServiceVersion: "1", HostName: "render-0",
					Operation: op, Kind: store.KindInternal, StartNS: startNS, DurationNS: dur}
			}
			q := span("q", "SELECT pages", at+slow(5), lat(5))
			q.Kind, q.DBSystem, q.DBStatement = store.KindClient, "postgresql", "SELECT body FROM pages WHERE id = $1"
			tpl := span("tpl", "template", q.StartNS+q.DurationNS, slow(20))
			ser := span("ser", "serialize", tpl.StartNS+tpl.DurationNS, slow(10))
			root := store.Span{TraceID: id, SpanID: storetest.SpanID("root"), Service: "render", ServiceVersion: "1", HostName: "render-0", Operation: "GET /page",
				Kind: store.KindServer, IsEntry: true, StartNS: at, HTTPStatusCode: 200}
			root.DurationNS = ser.StartNS + ser.DurationNS + slow(5) - at
			return []store.Span{root, q, tpl, ser}
		})
		if top := cs[0]; top.Kind != rca.KindSelfTime || top.Service != "render" {
			t.Fatalf("top cause %+v; want render's own code slower everywhere\nall: %+v", top, cs)
		}
	})
}

// billing consumes order events; its processing gets slower and the queue backs up to minutes. The
// wait is in no span, so the report states it as a cause of its own, whether billing's span descends
// from the producer's or (a batch consumer) starts a trace of its own linked to it, and whether the
// anomaly is billing's latency or its queue lag.
func TestAnalyze_StatesTheQueueLagOfAConsumerFallingBehind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		linked bool
		metric string
	}{{"child/latency", false, anomaly.LatencyP95}, {"linked/latency", true, anomaly.LatencyP95}, {"linked/queue_lag", true, anomaly.QueueLag}} {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Dialects(t, func(t *testing.T, db *store.DB) {
				a := store.Anomaly{Service: "billing", Operation: "order-events process", Metric: tc.metric, Baseline: 20, Observed: 60}
				if tc.metric == anomaly.QueueLag {
					a.Baseline, a.Observed = 50, 60000
				}
				cs := explainAnomaly(t, db.ForTenant("acme"), a, func(id string, at int64, incident bool, lat func(float64) int64) []store.Span {
					wait, work := lat(50), lat(5)
					if incident {
						wait, work = lat(60000), lat(100)
					}
					root := store.Span{TraceID: id, SpanID: storetest.SpanID("root"), Service: "orders", Operation: "POST /orders", Kind: store.KindServer, IsEntry: true,
						StartNS: at, DurationNS: 20e6, HTTPStatusCode: 200}
					pub := store.Span{TraceID: id, SpanID: storetest.SpanID("pub"), ParentSpanID: storetest.SpanID("root"), Service: "orders", Operation: "order-events publish",
						Kind: store.KindProducer, StartNS: at + 5e6, DurationNS: 3e6}
					sub := store.Span{TraceID: id, SpanID: storetest.SpanID("sub"), ParentSpanID: storetest.SpanID("pub"), Service: "billing", Operation: "order-events process",
						Kind: store.KindConsumer, IsEntry: true, StartNS: pub.StartNS + pub.DurationNS + wait, DurationNS: work}
					if tc.linked {
						sub.TraceID, sub.ParentSpanID = "c"+id[1:], ""
						sub.Links = []byte(`[{"trace_id":"` + id + `","span_id":"` + storetest.SpanID("pub") + `"}]`)
					}
					return []store.Span{root, pub, sub}
				})
				for _, c := range cs {
					if c.Kind == rca.KindQueueLag && c.Service == "billing" && c.Figures[0].Anomalous >= 30000 && c.Figures[0].Baseline < 100 &&
						strings.Contains(c.Description, `orders "order-events publish"`) {
						return
					}
				}
				t.Fatalf("no queue lag from orders' producer among the causes: %+v", cs)
			})
		})
	}
}
