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

const stockQuery = "SELECT qty FROM stock WHERE sku = $1"

// chatShop writes 8 hours of api requests, 20 a minute: 10 % are "POST /chat", whose LLM call
// always takes about 1.7 s; 30 % are "GET /orders", which calls stock-service and its database;
// the rest are "GET /home". In minutes [300, 340) the stock query takes 150–300 ms longer.
func chatShop(t *testing.T, tn *store.Tenant) {
	t.Helper()
	rng := rand.New(rand.NewPCG(5, 5))
	lat := func(ms float64) int64 { return int64(ms * 1e6 * math.Exp(0.1*rng.NormFloat64())) }
	var b store.Batch
	for m := 0; m < 8*60; m++ {
		for i := 0; i < 20; i++ {
			at := start.UnixNano() + int64(m)*60e9 + int64(i)*3e9
			id := fmt.Sprintf("%016x%016x", m, i)
			root := store.Span{TraceID: id, SpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: "api-0",
				Operation: "GET /home", Kind: store.KindServer, IsEntry: true, StartNS: at, DurationNS: lat(30), HTTPStatusCode: 200}
			spans := []store.Span{root}
			switch i % 10 {
			case 0:
				llm := store.Span{TraceID: id, SpanID: storetest.SpanID("llm"), ParentSpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: "api-0",
					Operation: "chat gpt-4o-mini", Kind: store.KindClient, StartNS: at + 2e6, DurationNS: lat(1700),
					Attributes: []byte(`{"gen_ai.request.model":"gpt-4o-mini","gen_ai.system":"openai"}`)}
				spans[0].Operation, spans[0].DurationNS = "POST /chat", llm.DurationNS+5e6
				spans = append(spans, llm)
			case 1, 2, 3:
				q := store.Span{TraceID: id, SpanID: storetest.SpanID("q"), ParentSpanID: storetest.SpanID("s"), Service: "stock-service", ServiceVersion: "2.0", HostName: "stock-0",
					Operation: "SELECT stock", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: stockQuery, StartNS: at + 3e6, DurationNS: lat(20)}
				if m >= 300 && m < 340 {
					q.DurationNS += int64(150e6 * (1 + rng.Float64()))
				}
				srv := store.Span{TraceID: id, SpanID: storetest.SpanID("s"), ParentSpanID: storetest.SpanID("c"), Service: "stock-service", ServiceVersion: "2.0", HostName: "stock-0",
					Operation: "GET /stock", Kind: store.KindServer, IsEntry: true, StartNS: at + 2e6, DurationNS: q.DurationNS + 2e6, HTTPStatusCode: 200}
				call := store.Span{TraceID: id, SpanID: storetest.SpanID("c"), ParentSpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: "api-0",
					Operation: "GET /stock", Kind: store.KindClient, PeerService: "stock-service", StartNS: at + 1e6, DurationNS: srv.DurationNS + 2e6}
				spans[0].Operation, spans[0].DurationNS = "GET /orders", call.DurationNS+lat(10)
				spans = append(spans, call, srv, q)
			}
			b.Spans = append(b.Spans, spans...)
		}
	}
	if err := tn.InsertBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// The slow requests of the window are the slow orders and every chat request, whose LLM call was
// always slow: compared with all earlier requests, the LLM call fills four times its usual share of
// the critical path. Compared with earlier requests of the same kind, only the stock query grew.
func TestAnalyze_ComparesSlowRequestsWithEarlierOnesOfTheSameKind(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		chatShop(t, tn)
		id, err := tn.InsertAnomaly(ctx, store.Anomaly{Service: "api", Metric: anomaly.LatencyP95, Severity: "warning",
			StartedNS: start.Add(300 * time.Minute).UnixNano(), EndedNS: start.Add(340 * time.Minute).UnixNano(),
			Baseline: 150, Observed: 1700, Summary: "api is slower."})
		if err != nil {
			t.Fatal(err)
		}
		rep, err := rca.Analyze(ctx, tn, id)
		if err != nil {
			t.Fatal(err)
		}
		cs := causes(t, rep)
		if top := cs[0]; top.Service != "stock-service" || top.Value != stockQuery {
			t.Fatalf("top cause %+v; want the stock query of stock-service\nsummary: %s", top, rep.Summary)
		}
		for _, c := range cs {
			if c.Kind == rca.KindLLMModel {
				t.Errorf("the unchanged LLM call is listed as a cause: %+v", c)
			}
		}
	})
}

// Only GET /orders, 30 % of api's requests, gets slower: the detector flags that route of api, and
// its analysis compares orders with orders and names the stock query two services down.
func TestAnalyze_ExplainsARouteAnomalyByTheDeepestChange(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		chatShop(t, tn)
		rep := analyse(t, tn, "api")
		if !strings.Contains(rep.Summary, "on GET /orders (that route alone)") {
			t.Errorf("summary %q; want the anomaly of GET /orders", rep.Summary)
		}
		if top := causes(t, rep)[0]; top.Service != "stock-service" || top.Value != stockQuery {
			t.Fatalf("top cause %+v; want the stock query of stock-service\nsummary: %s", top, rep.Summary)
		}
	})
}
