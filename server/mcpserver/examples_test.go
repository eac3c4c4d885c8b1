package mcpserver_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/analysistest"
	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// demoEnv is the demo day (fixed seed and end, so every run sees the same spans) loaded through the
// OTLP receiver, with anomalies detected as the analysis job would, served by an MCP endpoint whose
// clock stands at the end of the day: "the last 24 hours" are the demo's.
type demoEnv struct {
	*env
	res demo.Result
	key string
}

func newDemoEnv(t *testing.T, db *store.DB) *demoEnv {
	t.Helper()
	ctx := context.Background()
	res := analysistest.LoadDemo(t, db, demo.Options{Seed: 1})
	now := analysistest.End
	if _, err := anomaly.Detect(ctx, db.ForTenant(analysistest.Tenant), now, anomaly.Config{}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, analysistest.Tenant, "assistant", []string{store.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, mcpserver.Config{DB: db, Auth: &auth.APIKeys{DB: db}, PublicURL: publicURL, Now: func() time.Time { return now },
		RCA: mcpserver.RCAFunc(rca.Analyze)})
	return &demoEnv{env: &env{url: url, db: db}, res: res, key: key}
}

// TestExampleQuestions_AreAnsweredFromTheDemoInAtMostThreeCalls asks the four questions of issue 3 as
// an assistant would, following the answers' own suggestions, and checks that the answer is in the
// tool output.
func TestExampleQuestions_AreAnsweredFromTheDemoInAtMostThreeCalls(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newDemoEnv(t, db)
		s := e.connect(t, e.key)
		tn := db.ForTenant(analysistest.Tenant)
		var sizes []int
		ask := func(t *testing.T, tool string, args map[string]any, out any) string {
			t.Helper()
			res := call(t, s, tool, args, out)
			sizes = append(sizes, answerTokens(res))
			if answerTokens(res) > 4000 {
				t.Errorf("%s: %d tokens, over the default budget", tool, answerTokens(res))
			}
			return mustOK(t, tool, res)
		}

		t.Run("how are my services performing", func(t *testing.T) {
			known, err := tn.Services(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			var now struct {
				Services []struct{ Name, Health, Reason string } `json:"services"`
				page
			}
			ask(t, "list_services", nil, &now)
			if now.Total != len(known) || now.Returned != now.Total || !hasCall(now.page, "search_anomalies") {
				t.Errorf("list_services covers %d of %d services: %+v", now.Total, len(known), now)
			}
			var day struct {
				Services []struct {
					Name      string `json:"name"`
					Reason    string `json:"reason"`
					Anomalies int    `json:"anomalies"`
				} `json:"services"`
			}
			ask(t, "list_services", map[string]any{"since": "24h"}, &day)
			for _, svc := range day.Services {
				if svc.Name == "payment-service" && (svc.Anomalies == 0 || !strings.Contains(svc.Reason, "anomalies")) {
					t.Errorf("the day's payment-service incidents are not mentioned: %+v", svc)
				}
			}
		})

		t.Run("slowest payment-service requests and the cause", func(t *testing.T) {
			inc := incident(t, e.res, "payment-latency-regression")
			var found struct {
				Versions []struct {
					Version     string `json:"version"`
					First, Last string
					P95Trace    string `json:"p95_trace"`
				} `json:"versions"`
				page
			}
			ask(t, "search_traces", map[string]any{"service": "payment-service", "sort": "duration", "since": "24h"}, &found)
			if !strings.Contains(found.Note, "regression") || len(found.Next) == 0 || found.Next[0].Tool != "get_trace_detail" {
				t.Fatalf("no regression pointed at: %q %+v", found.Note, found.Next)
			}
			var slowVersion string
			for _, v := range found.Versions {
				if v.P95Trace == found.Next[0].Args["trace_id"] {
					slowVersion = v.Version
					if first, _ := time.Parse(time.RFC3339, v.First); first.Before(inc.Start) || first.After(inc.End) {
						t.Errorf("the slow version %s started at %s, outside the incident %s – %s", v.Version, v.First, inc.Start, inc.End)
					}
				}
			}
			var detail struct {
				SelfTime []struct {
					Service   string `json:"service"`
					Statement string `json:"statement"`
				} `json:"top_self_time"`
			}
			txt := ask(t, "get_trace_detail", found.Next[0].Args, &detail)
			if top := detail.SelfTime[0]; top.Service != inc.Cause.Service || top.Statement != inc.Cause.Value {
				t.Errorf("the p95 request of %s spends its time in %+v, want the statement %q\n%s", slowVersion, top, inc.Cause.Value, txt)
			}
		})

		t.Run("LLM spend by model and the service using most tokens", func(t *testing.T) {
			from, to := analysistest.End.Add(-24*time.Hour).UnixNano(), analysistest.End.UnixNano()
			costliest := argmax(t, tn, from, to, store.LLMByModel, func(g store.LLMGroup) float64 { return g.CostUSD })
			hungriest := argmax(t, tn, from, to, store.LLMByService, func(g store.LLMGroup) float64 { return float64(g.InputTokens + g.OutputTokens) })
			txt := ask(t, "get_llm_stats", map[string]any{"since": "24h"}, nil)
			if !strings.Contains(txt, "Most cost by model: "+costliest+",") || !strings.Contains(txt, "Most tokens by service: "+hungriest+",") {
				t.Errorf("want %s as the costliest model and %s as the top token user:\n%s", costliest, hungriest, txt)
			}
			var byService struct {
				Groups []struct{ Key string } `json:"groups"`
			}
			ask(t, "get_llm_stats", map[string]any{"since": "24h", "group_by": "service"}, &byService)
			if len(byService.Groups) == 0 {
				t.Error("no breakdown by service")
			}
		})

		t.Run("recent errors or anomalies and their root cause", func(t *testing.T) {
			inc := incident(t, e.res, "checkout-errors-inventory-pool")
			var found struct {
				Anomalies []struct {
					ID      string `json:"id"`
					Service string `json:"service"`
					Metric  string `json:"metric"`
					Started string `json:"started"`
				} `json:"anomalies"`
				page
			}
			// The burst is the day's oldest incident and answers are newest first within a token
			// budget, so the assistant may take the next page: still three calls with get_rca.
			var id string
			args := map[string]any{"since": "24h"}
			for calls := 0; id == "" && calls < 2; calls++ {
				ask(t, "search_anomalies", args, &found)
				for _, a := range found.Anomalies {
					started, _ := time.Parse(time.RFC3339, a.Started)
					if a.Service == inc.Service && strings.Contains(a.Metric, "error") && !started.Before(inc.Start.Add(-5*time.Minute)) && started.Before(inc.End) {
						id = a.ID
					}
				}
				if found.NextCursor == "" {
					break
				}
				args["cursor"] = found.NextCursor
			}
			if id == "" {
				t.Fatalf("the %s error burst of %s is not among the anomalies: %+v", inc.Service, inc.Start, found.Anomalies)
			}
			var rca struct {
				Status string           `json:"status"`
				Causes []map[string]any `json:"causes"`
				page
			}
			txt := ask(t, "get_rca", map[string]any{"anomaly_id": id}, &rca)
			if rca.Status != "computed" || len(rca.Causes) == 0 {
				t.Fatalf("get_rca: %s\n%s", rca.Status, txt)
			}
			if top := rca.Causes[0]; top["service"] != inc.Cause.Service || top["value"] != inc.Cause.Value {
				t.Errorf("top cause %v, want %s %s=%s\n%s", top, inc.Cause.Service, inc.Cause.Attribute, inc.Cause.Value, txt)
			}
			if len(rca.Next) == 0 || rca.Next[0].Tool != "get_trace_detail" {
				t.Errorf("no example trace suggested: %+v", rca.Next)
			}
		})

		t.Run("which trace processed the message a request published", func(t *testing.T) {
			// activity-service reads product views in batches, each in a trace of its own linked to the
			// gateway's publish span: from one such trace to its producer's, which names it back.
			var found struct {
				Traces []struct {
					TraceID string `json:"trace_id"`
					Root    string `json:"root"`
				} `json:"traces"`
			}
			ask(t, "search_traces", map[string]any{"service": "activity-service", "operation": "user-activity process", "since": "24h"}, &found)
			consumerTrace := ""
			for _, r := range found.Traces {
				if r.Root == "" && consumerTrace == "" {
					consumerTrace = r.TraceID // a trace of its own: a linked consumer
				}
			}
			if consumerTrace == "" {
				t.Fatalf("no activity-service trace of its own among %+v", found.Traces)
			}
			var consumerDetail struct {
				QueueLag struct {
					ProducerTraceID string `json:"producer_trace_id"`
				} `json:"queue_lag"`
			}
			ask(t, "get_trace_detail", map[string]any{"trace_id": consumerTrace}, &consumerDetail)
			producer := consumerDetail.QueueLag.ProducerTraceID
			if producer == "" {
				t.Fatalf("consumer trace %s names no producer trace", consumerTrace)
			}
			var producerDetail struct {
				Consumers []struct {
					TraceID string `json:"trace_id"`
					Service string `json:"service"`
				} `json:"consumers"`
			}
			txt := ask(t, "get_trace_detail", map[string]any{"trace_id": producer}, &producerDetail)
			named := false
			for _, c := range producerDetail.Consumers {
				named = named || (c.TraceID == consumerTrace && c.Service == "activity-service")
			}
			if !named || !strings.Contains(txt, "consumed← activity-service") {
				t.Errorf("producer trace %s does not name its consumer %s: %+v\n%s", producer, consumerTrace, producerDetail.Consumers, txt)
			}
		})

		slices.Sort(sizes)
		t.Logf("answer sizes in tokens (text + structured): median %d, max %d, %v", sizes[len(sizes)/2], sizes[len(sizes)-1], sizes)
		if sizes[len(sizes)/2] > 2000 {
			t.Errorf("median answer of %d tokens exceeds 2,000", sizes[len(sizes)/2])
		}
	})
}

func incident(t *testing.T, res demo.Result, id string) demo.Incident {
	t.Helper()
	for _, inc := range res.Incidents {
		if inc.ID == id {
			return inc
		}
	}
	t.Fatalf("the demo has no incident %q", id)
	return demo.Incident{}
}

func hasCall(p page, tool string) bool {
	for _, c := range p.Next {
		if c.Tool == tool {
			return true
		}
	}
	return false
}

// argmax returns the key of the group with the largest value, computed from the store directly.
func argmax(t *testing.T, tn *store.Tenant, from, to int64, groupBy string, value func(store.LLMGroup) float64) string {
	t.Helper()
	groups, err := tn.LLMStats(context.Background(), store.LLMQuery{From: from, To: to}, groupBy)
	if err != nil || len(groups) == 0 {
		t.Fatalf("LLM stats by %s: %v", groupBy, err)
	}
	best := groups[0]
	for _, g := range groups {
		if value(g) > value(best) {
			best = g
		}
	}
	return best.Key
}
