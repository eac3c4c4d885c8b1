package rca_test

import (
	"context"
	"encoding/json"
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

var start = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

const (
	ordersQuery = "SELECT * FROM orders WHERE customer_id = $1"
	itemsQuery  = "SELECT * FROM items WHERE order_id = $1"
)

// shop writes 8 hours of requests, 20 a minute: api "GET /orders" runs two queries and calls
// stock-service, which reads its cache. incident changes one request's spans in minutes [300, 340).
func shop(t *testing.T, tn *store.Tenant, incident func(rng *rand.Rand, spans []store.Span)) {
	t.Helper()
	rng := rand.New(rand.NewPCG(3, 3))
	lat := func(ms float64) int64 { return int64(ms * 1e6 * math.Exp(0.4*rng.NormFloat64())) }
	var b store.Batch
	for m := 0; m < 8*60; m++ {
		for i := 0; i < 20; i++ {
			at := start.UnixNano() + int64(m)*60e9 + int64(i)*3e9
			id := fmt.Sprintf("%016x%016x", m, i)
			host := fmt.Sprintf("api-%d", rng.IntN(3))
			q1 := store.Span{TraceID: id, SpanID: storetest.SpanID("q1"), ParentSpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: host,
				Operation: "SELECT orders", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: ordersQuery, StartNS: at + 1e6, DurationNS: lat(3)}
			q2 := store.Span{TraceID: id, SpanID: storetest.SpanID("q2"), ParentSpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: host,
				Operation: "SELECT items", Kind: store.KindClient, DBSystem: "postgresql", DBStatement: itemsQuery, StartNS: q1.StartNS + q1.DurationNS, DurationNS: lat(4)}
			call := store.Span{TraceID: id, SpanID: storetest.SpanID("c1"), ParentSpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: host,
				Operation: "GET /stock", Kind: store.KindClient, PeerService: "stock-service", StartNS: q2.StartNS + q2.DurationNS}
			srv := store.Span{TraceID: id, SpanID: storetest.SpanID("s1"), ParentSpanID: storetest.SpanID("c1"), Service: "stock-service", ServiceVersion: "2.0", HostName: "stock-0",
				Operation: "GET /stock", Kind: store.KindServer, IsEntry: true, StartNS: call.StartNS + 2e5, DurationNS: lat(2), HTTPStatusCode: 200}
			call.DurationNS = srv.DurationNS + 4e5
			root := store.Span{TraceID: id, SpanID: storetest.SpanID("root"), Service: "api", ServiceVersion: "1.0", HostName: host, Operation: "GET /orders",
				Kind: store.KindServer, IsEntry: true, StartNS: at, HTTPStatusCode: 200}
			root.DurationNS = call.StartNS + call.DurationNS + 1e6 - at
			spans := []store.Span{root, q1, q2, call, srv}
			if m >= 300 && m < 340 {
				incident(rng, spans)
			}
			b.Spans = append(b.Spans, spans...)
		}
		if len(b.Spans) >= 5000 {
			if err := tn.InsertBatch(context.Background(), b); err != nil {
				t.Fatal(err)
			}
			b = store.Batch{}
		}
	}
	if err := tn.InsertBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// analyse detects the incident's anomaly of service and returns its root-cause analysis.
func analyse(t *testing.T, tn *store.Tenant, service string) store.RCAReport {
	t.Helper()
	ctx := context.Background()
	if _, err := anomaly.Detect(ctx, tn, start.Add(8*time.Hour), anomaly.Config{}); err != nil {
		t.Fatal(err)
	}
	recs, err := tn.AnomalyRecords(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range recs {
		if a.Service == service {
			rep, err := rca.Analyze(ctx, tn, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			stored, err := tn.RCAReport(ctx, a.ID)
			if err != nil || stored.Summary != rep.Summary {
				t.Fatalf("stored report %+v (%v) differs from the returned one", stored, err)
			}
			return rep
		}
	}
	t.Fatalf("no anomaly of %s among %+v", service, recs)
	return store.RCAReport{}
}

func causes(t *testing.T, rep store.RCAReport) []rca.Cause {
	t.Helper()
	var cs []rca.Cause
	if err := json.Unmarshal(rep.Causes, &cs); err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 {
		t.Fatalf("no causes; summary: %s", rep.Summary)
	}
	return cs
}

func TestAnalyze_RanksTheStatementThatGotSlowFirst(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		shop(t, tn, func(rng *rand.Rand, s []store.Span) {
			extra := int64(400e6 * (1 + rng.Float64()))
			s[2].DurationNS += extra // the items query
			for _, i := range []int{3, 4} {
				s[i].StartNS += extra
			}
			s[0].DurationNS += extra
		})
		rep := analyse(t, tn, "api")
		top := causes(t, rep)[0]
		if top.Kind != rca.KindDBStatement || top.Attribute != "db.statement" || top.Value != itemsQuery || top.Confidence < 0.8 || len(top.TraceIDs) == 0 {
			t.Fatalf("top cause %+v; want the items query with high confidence and example traces", top)
		}
		if !strings.Contains(rep.Summary, "SELECT * FROM items") || !strings.Contains(rep.Summary, "Most likely cause") {
			t.Errorf("summary does not name the cause: %s", rep.Summary)
		}
	})
}

func TestAnalyze_TracesErrorsToTheDependencyThatRaisesThem(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		shop(t, tn, func(rng *rand.Rand, s []store.Span) {
			if rng.Float64() < 0.6 {
				s[4].StatusCode, s[4].HTTPStatusCode = store.StatusError, 503
				s[4].Events = []byte(`[{"name":"exception","time_ns":1,"attributes":{"exception.type":"RedisTimeout","exception.message":"i/o timeout"}}]`)
				s[3].StatusCode = store.StatusError
				s[0].StatusCode, s[0].HTTPStatusCode = store.StatusError, 502
			}
		})
		rep := analyse(t, tn, "api")
		top := causes(t, rep)[0]
		if top.Kind != rca.KindDependency || top.Service != "stock-service" || top.Attribute != "exception.type" || top.Value != "RedisTimeout" {
			t.Fatalf("top cause %+v; want stock-service raising RedisTimeout", top)
		}
		// stock-service's own failures are an anomaly too: the caller's report points at it.
		if !strings.Contains(rep.Summary, "of stock-service, where the cause lies") {
			t.Errorf("summary does not point at stock-service's anomaly: %s", rep.Summary)
		}
	})
}

func TestAnalyze_BlamesTheHostWhenOnlyOnePodIsSlow(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		tn := db.ForTenant("acme")
		shop(t, tn, func(rng *rand.Rand, s []store.Span) {
			if s[0].HostName != "api-1" {
				return
			}
			// Everything api does on this pod runs slow: its own time and its client spans.
			extra := int64(0)
			for _, i := range []int{1, 2} {
				s[i].StartNS += extra
				d := s[i].DurationNS * 6
				extra += d - s[i].DurationNS
				s[i].DurationNS = d
			}
			for _, i := range []int{3, 4} {
				s[i].StartNS += extra
			}
			self := int64(150e6 * (1 + rng.Float64()))
			s[0].DurationNS += extra + self
		})
		top := causes(t, analyse(t, tn, "api"))[0]
		if top.Kind != rca.KindHost || top.Attribute != "host.name" || top.Value != "api-1" {
			t.Fatalf("top cause %+v; want host api-1", top)
		}
	})
}
