package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

var testEnd = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// A day of traffic is generated and received once, and shared by the tests that inspect it.
var day struct {
	once  sync.Once
	res   Result
	spans []received
	err   error
}

func sendDay(t *testing.T) (Result, []received) {
	t.Helper()
	day.once.Do(func() {
		rc, srv := newReceiver(t)
		day.res, day.err = Run(context.Background(), Options{End: testEnd, Traces: 10000, Seed: 42},
			Sender{URL: srv.URL, APIKey: testAPIKey}, nil)
		day.spans = rc.received()
	})
	if day.err != nil {
		t.Fatalf("Run: %v", day.err)
	}
	return day.res, day.spans
}

func TestRun_ReportsWhatTheReceiverGot(t *testing.T) {
	res, spans := sendDay(t)
	traces := byTrace(spans)
	llm := 0
	for _, s := range spans {
		if s.attr("gen_ai.operation.name") != "" {
			llm++
		}
	}
	if res.Spans != len(spans) || res.Traces != len(traces) || res.LLMCalls != llm {
		t.Errorf("Result = %d spans, %d traces, %d LLM calls; receiver got %d, %d, %d",
			res.Spans, res.Traces, res.LLMCalls, len(spans), len(traces), llm)
	}
	requests := 0
	for _, s := range spans {
		if len(s.span.ParentSpanId) == 0 && len(s.span.Links) == 0 {
			requests++
		}
	}
	if requests != 10000 {
		t.Errorf("sent %d requests' traces, asked for 10000", requests)
	}
}

func TestRun_SameSeedGivesSameSpans(t *testing.T) {
	digest := func(seed int64) string {
		rc, srv := newReceiver(t)
		if _, err := Run(context.Background(), Options{End: testEnd, Traces: 300, Seed: seed, BatchSpans: 500},
			Sender{URL: srv.URL, APIKey: testAPIKey}, nil); err != nil {
			t.Fatalf("Run: %v", err)
		}
		// Batches arrive in any order, so compare the sorted set of spans.
		var lines []string
		for _, s := range rc.received() {
			b, err := proto.MarshalOptions{Deterministic: true}.Marshal(s.span)
			if err != nil {
				t.Fatal(err)
			}
			lines = append(lines, fmt.Sprintf("%v|%s|%x", s.resource, s.scope, b))
		}
		sort.Strings(lines)
		h := sha256.New()
		for _, l := range lines {
			h.Write([]byte(l))
		}
		return hex.EncodeToString(h.Sum(nil))
	}
	a, b, c := digest(7), digest(7), digest(8)
	if a != b {
		t.Error("two runs with seed 7 sent different spans")
	}
	if a == c {
		t.Error("seeds 7 and 8 sent the same spans")
	}
}

func TestRun_EverySpanBelongsToAWellFormedTrace(t *testing.T) {
	_, spans := sendDay(t)
	for _, s := range spans {
		for _, k := range []string{"service.name", "service.version", "host.name", "telemetry.sdk.language"} {
			if s.resource[k] == "" {
				t.Fatalf("span %q has no resource attribute %s", s.span.Name, k)
			}
		}
		if s.resource["deployment.environment"] != "demo" {
			t.Fatalf("span %q: deployment.environment = %q", s.span.Name, s.resource["deployment.environment"])
		}
		if len(s.span.TraceId) != 16 || len(s.span.SpanId) != 8 || s.span.EndTimeUnixNano < s.span.StartTimeUnixNano {
			t.Fatalf("span %q of %s is malformed", s.span.Name, s.service())
		}
	}
	start, end := uint64(testEnd.Add(-24*time.Hour).UnixNano()), uint64(testEnd.UnixNano())
	bySpanID := map[string]received{}
	for _, s := range spans {
		bySpanID[string(s.span.TraceId)+string(s.span.SpanId)] = s
	}
	for id, tr := range byTrace(spans) {
		byID := map[string]received{}
		for _, s := range tr {
			k := string(s.span.SpanId)
			if _, dup := byID[k]; dup {
				t.Fatalf("trace %s: span ID %x used twice", id, s.span.SpanId)
			}
			byID[k] = s
		}
		roots := 0
		for _, s := range tr {
			if len(s.span.ParentSpanId) == 0 {
				roots++
				if len(s.span.Links) > 0 {
					// A message processed in a trace of its own, linked to the span that produced it.
					p, ok := bySpanID[string(s.span.Links[0].TraceId)+string(s.span.Links[0].SpanId)]
					if s.span.Kind != tracepb.Span_SPAN_KIND_CONSUMER || !ok || p.span.Kind != tracepb.Span_SPAN_KIND_PRODUCER ||
						s.span.StartTimeUnixNano < p.span.EndTimeUnixNano {
						t.Fatalf("trace %s starts at span %q linked to no PRODUCER span that ended before it", id, s.span.Name)
					}
					continue
				}
				if s.service() != "frontend" || s.span.Kind != tracepb.Span_SPAN_KIND_SERVER {
					t.Fatalf("trace %s starts at %s %s span %q, want a frontend SERVER span", id, s.service(), s.span.Kind, s.span.Name)
				}
				if s.span.StartTimeUnixNano < start || s.span.EndTimeUnixNano > end {
					t.Fatalf("trace %s is outside the requested day", id)
				}
				continue
			}
			p, ok := byID[string(s.span.ParentSpanId)]
			if !ok {
				t.Fatalf("trace %s: span %q of %s has a parent outside its trace", id, s.span.Name, s.service())
			}
			if s.span.Kind == tracepb.Span_SPAN_KIND_CONSUMER {
				// A message is consumed after it was produced, however long after.
				if p.span.Kind != tracepb.Span_SPAN_KIND_PRODUCER || s.span.StartTimeUnixNano < p.span.EndTimeUnixNano {
					t.Fatalf("trace %s: CONSUMER span %q does not start after its PRODUCER parent", id, s.span.Name)
				}
			} else if s.span.StartTimeUnixNano < p.span.StartTimeUnixNano || s.span.EndTimeUnixNano > p.span.EndTimeUnixNano {
				t.Fatalf("trace %s: span %q is not within its parent %q", id, s.span.Name, p.span.Name)
			}
			if s.span.Kind == tracepb.Span_SPAN_KIND_SERVER && p.span.Kind != tracepb.Span_SPAN_KIND_CLIENT {
				t.Fatalf("trace %s: SERVER span %q has a %s parent, want the caller's CLIENT span", id, s.span.Name, p.span.Kind)
			}
		}
		if roots != 1 {
			t.Fatalf("trace %s has %d roots", id, roots)
		}
	}
}

func TestRun_AllServicesAppearWithSeveralPods(t *testing.T) {
	_, spans := sendDay(t)
	pods := map[string]map[string]bool{}
	for _, s := range spans {
		if pods[s.service()] == nil {
			pods[s.service()] = map[string]bool{}
		}
		pods[s.service()][s.resource["host.name"]] = true
	}
	for _, name := range []string{"frontend", "api-gateway", "checkout-service", "payment-service", "inventory-service",
		"user-service", "recommendation-service", "llm-gateway", "search-service", "support-assistant", "activity-service"} {
		if len(pods[name]) < 2 {
			t.Errorf("service %s appears on %d pods, want at least 2", name, len(pods[name]))
		}
	}
}

func TestRun_SpansFollowSemanticConventions(t *testing.T) {
	_, spans := sendDay(t)
	counts := map[string]int{}
	for _, s := range spans {
		switch {
		case s.attr("db.system") != "":
			counts["db"]++
			if s.span.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.attr("db.statement") == "" || s.attr("db.operation.name") == "" {
				t.Fatalf("DB span %q of %s lacks kind CLIENT, db.statement or db.operation.name", s.span.Name, s.service())
			}
		case s.span.Kind == tracepb.Span_SPAN_KIND_SERVER:
			counts["server"]++
			if s.attr("http.request.method") == "" || s.attr("http.route") == "" || s.attr("url.path") == "" {
				t.Fatalf("SERVER span %q of %s lacks HTTP attributes", s.span.Name, s.service())
			}
			if _, ok := s.intAttr("http.response.status_code"); !ok {
				t.Fatalf("SERVER span %q of %s has no status code", s.span.Name, s.service())
			}
		case s.span.Kind == tracepb.Span_SPAN_KIND_CLIENT && s.attr("gen_ai.operation.name") == "":
			counts["client"]++
			if s.attr("server.address") == "" || s.attr("peer.service") == "" {
				t.Fatalf("CLIENT span %q of %s lacks server.address or peer.service", s.span.Name, s.service())
			}
		}
		if s.isError() && s.span.Kind == tracepb.Span_SPAN_KIND_SERVER {
			counts["server errors"]++
		}
		for _, e := range s.span.Events {
			if e.Name == "exception" {
				counts["exceptions"]++
			}
		}
		if s.attr("user.id") != "" {
			counts["user.id"]++
		}
	}
	for _, k := range []string{"db", "server", "client", "server errors", "exceptions", "user.id"} {
		if counts[k] == 0 {
			t.Errorf("no %s spans", k)
		}
	}
	// Background errors are a few percent of requests, not zero and not a flood.
	if rate := float64(counts["server errors"]) / float64(counts["server"]); rate < 0.003 || rate > 0.05 {
		t.Errorf("SERVER span error rate is %.4f, want a few per mille to a few percent", rate)
	}
}

func TestRun_LLMSpansCarryGenAIAttributes(t *testing.T) {
	_, spans := sendDay(t)
	models := map[string]bool{}
	var legacy, cached, failed int
	for _, s := range spans {
		op := s.attr("gen_ai.operation.name")
		if op == "" {
			continue
		}
		model := s.attr("gen_ai.request.model")
		models[model] = true
		if s.span.Kind != tracepb.Span_SPAN_KIND_CLIENT || s.span.Name != op+" "+model {
			t.Fatalf("GenAI span %q is %s, want CLIENT named %q", s.span.Name, s.span.Kind, op+" "+model)
		}
		if s.attr("gen_ai.provider.name") == "" {
			legacy++
			if s.attr("gen_ai.system") == "" {
				t.Fatalf("GenAI span %q names no provider", s.span.Name)
			}
		}
		if s.isError() {
			failed++
			if s.attr("error.type") == "" {
				t.Fatalf("failed GenAI span %q has no error.type", s.span.Name)
			}
			continue
		}
		in, okIn := s.intAttr("gen_ai.usage.input_tokens")
		out, okOut := s.intAttr("gen_ai.usage.output_tokens")
		if s.attr("gen_ai.response.model") == "" || !okIn || in <= 0 || (op == "chat" && (!okOut || out <= 0)) {
			t.Fatalf("GenAI span %q lacks its response model or token usage", s.span.Name)
		}
		if c, ok := s.intAttr("gen_ai.usage.cache_read.input_tokens"); ok {
			cached++
			if c > in {
				t.Fatalf("GenAI span %q read %d cached tokens of %d input tokens", s.span.Name, c, in)
			}
		}
	}
	for _, m := range []string{"gpt-4o", "gpt-4o-mini", "claude-sonnet-4", "claude-3-5-haiku", "gemini-2.0-flash",
		"text-embedding-3-small", "llama-3.1-70b-instruct"} {
		if !models[m] {
			t.Errorf("no calls to %s", m)
		}
	}
	if legacy == 0 || cached == 0 || failed == 0 {
		t.Errorf("want some legacy gen_ai.system-only spans (%d), cached input (%d) and failures (%d)", legacy, cached, failed)
	}
}

func TestRun_TrafficFollowsTimeOfDay(t *testing.T) {
	_, spans := sendDay(t)
	perHour := make([]int, 24)
	for _, s := range spans {
		if len(s.span.ParentSpanId) == 0 {
			perHour[time.Unix(0, int64(s.span.StartTimeUnixNano)).UTC().Hour()]++
		}
	}
	quiet, busy := slices.Min(perHour), slices.Max(perHour)
	if quiet == 0 || busy < 3*quiet {
		t.Errorf("traces per hour range from %d to %d, want the busiest hour at least 3x the quietest", quiet, busy)
	}
}

// inWindow splits the spans matching keep into those starting within inc and the rest.
func inWindow(spans []received, inc Incident, keep func(received) bool) (in, out []received) {
	s, e := uint64(inc.Start.UnixNano()), uint64(inc.End.UnixNano())
	for _, sp := range spans {
		if !keep(sp) {
			continue
		}
		if sp.span.StartTimeUnixNano >= s && sp.span.StartTimeUnixNano < e {
			in = append(in, sp)
		} else {
			out = append(out, sp)
		}
	}
	return in, out
}

func p95(spans []received) float64 {
	d := make([]float64, len(spans))
	for i, s := range spans {
		d[i] = float64(s.span.EndTimeUnixNano - s.span.StartTimeUnixNano)
	}
	slices.Sort(d)
	return d[int(math.Ceil(0.95*float64(len(d))))-1]
}

func errorRate(spans []received) float64 {
	n := 0
	for _, s := range spans {
		if s.isError() {
			n++
		}
	}
	return float64(n) / float64(len(spans))
}

func serverSpan(service, name string) func(received) bool {
	return func(s received) bool {
		return s.service() == service && s.span.Kind == tracepb.Span_SPAN_KIND_SERVER && (name == "" || s.span.Name == name)
	}
}

// cost prices recommendation-service's models the way the ingest does (USD per million tokens).
func cost(s received) float64 {
	prices := map[string][3]float64{"gpt-4o-mini": {0.15, 0.60, 0.075}, "gpt-4o": {2.50, 10, 1.25}}
	p := prices[s.attr("gen_ai.request.model")]
	in, _ := s.intAttr("gen_ai.usage.input_tokens")
	out, _ := s.intAttr("gen_ai.usage.output_tokens")
	cached, _ := s.intAttr("gen_ai.usage.cache_read.input_tokens")
	return (float64(in-cached)*p[0] + float64(out)*p[1] + float64(cached)*p[2]) / 1e6
}

func TestRun_IncidentsAreVisibleInTheData(t *testing.T) {
	res, spans := sendDay(t)
	byID := map[string]Incident{}
	for _, inc := range res.Incidents {
		byID[inc.ID] = inc
	}
	tests := []struct {
		incident string
		check    func(t *testing.T, inc Incident)
	}{
		{"payment-latency-regression", func(t *testing.T, inc Incident) {
			for _, op := range []struct{ service, name string }{
				{"payment-service", "POST /v1/charges"},
				{"frontend", "POST /checkout"},
			} {
				in, out := inWindow(spans, inc, serverSpan(op.service, op.name))
				if r := p95(in) / p95(out); r < 3 {
					t.Errorf("%s %s: p95 in the window is %.1fx outside, want several times", op.service, op.name, r)
				}
			}
			in, out := inWindow(spans, inc, serverSpan("payment-service", ""))
			for _, s := range in {
				if v := s.resource["service.version"]; v != "2.4.0" {
					t.Fatalf("payment-service runs %s in the window, want 2.4.0", v)
				}
			}
			for _, s := range out {
				if v := s.resource["service.version"]; v != "2.3.1" {
					t.Fatalf("payment-service runs %s outside the window, want 2.3.1", v)
				}
			}
			slow, _ := inWindow(spans, inc, func(s received) bool { return s.attr("db.statement") == inc.Cause.Value })
			if len(slow) == 0 || p95(slow) < 1e9 {
				t.Errorf("the cause statement is not slow in the window")
			}
		}},
		{"checkout-errors-inventory-pool", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, serverSpan("inventory-service", ""))
			if ri, ro := errorRate(in), errorRate(out); ri < 0.1 || ri < 10*ro {
				t.Errorf("inventory-service error rate is %.3f in the window and %.4f outside, want high in it", ri, ro)
			}
			in, out = inWindow(spans, inc, serverSpan("frontend", "POST /checkout"))
			if ri, ro := errorRate(in), errorRate(out); ri < 0.4 || ro > 0.05 {
				t.Errorf("frontend POST /checkout error rate is %.3f in the window and %.3f outside", ri, ro)
			}
			pool, _ := inWindow(spans, inc, func(s received) bool {
				return s.service() == "inventory-service" && s.attr("db.system") != "" && slices.ContainsFunc(s.span.Events,
					func(e *tracepb.Span_Event) bool { return anyString(e.Attributes[0].Value) == inc.Cause.Value })
			})
			if len(pool) < 10 {
				t.Errorf("only %d inventory DB spans raised %s in the window", len(pool), inc.Cause.Value)
			}
		}},
		{"llm-cost-spike-recommendations", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, func(s received) bool {
				return s.service() == "recommendation-service" && s.attr("gen_ai.operation.name") == "chat"
			})
			var costIn, costOut float64
			for _, s := range in {
				if m := s.attr("gen_ai.request.model"); m != "gpt-4o" {
					t.Fatalf("recommendation-service calls %s in the window, want gpt-4o", m)
				}
				costIn += cost(s)
			}
			for _, s := range out {
				if m := s.attr("gen_ai.request.model"); m != "gpt-4o-mini" {
					t.Fatalf("recommendation-service calls %s outside the window, want gpt-4o-mini", m)
				}
				costOut += cost(s)
			}
			// Per call: traffic, and so spend per hour, depends on the time of day the window falls on.
			if r := (costIn / float64(len(in))) / (costOut / float64(len(out))); r < 5 {
				t.Errorf("recommendation-service spends %.1fx per call in the window, want several times", r)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.incident, func(t *testing.T) {
			inc, ok := byID[tt.incident]
			if !ok {
				t.Fatalf("no incident %s in %v", tt.incident, res.Incidents)
			}
			tt.check(t, inc)
		})
	}
}

func TestIncidents_AreApartAndEndAnHourBeforeEnd(t *testing.T) {
	tests := []struct {
		end time.Time
		d   time.Duration
	}{
		{testEnd, 24 * time.Hour},
		{time.Date(2026, 3, 8, 5, 17, 0, 0, time.UTC), 24 * time.Hour},
		{time.Date(2026, 7, 1, 21, 40, 0, 0, time.FixedZone("PDT", -7*3600)), 72 * time.Hour},
		{testEnd, 12 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.end, tt.d), func(t *testing.T) {
			incs := newSchedule(tt.end, tt.d).incidents()
			earliest := tt.end.Add(-min(tt.d, 24*time.Hour))
			for i, inc := range incs {
				if !inc.Start.Before(inc.End) || inc.Start.Before(earliest) {
					t.Errorf("%s runs %s to %s, outside the last 24h before %s", inc.ID, inc.Start, inc.End, tt.end)
				}
				if gap := min(tt.d, 24*time.Hour) / 24 * 40 / 60; i > 0 && inc.Start.Sub(incs[i-1].End) < gap {
					t.Errorf("%s starts %s after %s ends, want at least %s", inc.ID, inc.Start.Sub(incs[i-1].End), incs[i-1].ID, gap)
				}
			}
			if last := incs[len(incs)-1].End; tt.end.Sub(last) < min(tt.d, 24*time.Hour)/24 {
				t.Errorf("the last incident ends %s before the end", tt.end.Sub(last))
			}
		})
	}
}

func TestWriteIncidents_WritesJSONThatReadsBack(t *testing.T) {
	want := newSchedule(testEnd, 24*time.Hour).incidents()
	path := filepath.Join(t.TempDir(), "incidents.json")
	if err := WriteIncidents(path, want); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []Incident
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got[2].Cause.Value != want[2].Cause.Value || !got[0].Start.Equal(want[0].Start) {
		t.Errorf("read back %+v, want %+v", got, want)
	}
}

func TestGenerate_BatchesStayNearTheBatchSize(t *testing.T) {
	g := newGenerator(Options{End: testEnd, Duration: 24 * time.Hour, Traces: 2000, BatchSpans: 300})
	var sizes []int
	if err := g.run(context.Background(), func(b *batch) error {
		sizes = append(sizes, b.spans)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, n := range sizes {
		// A batch closes with the trace that fills it; no trace is anywhere near 100 spans.
		if n > 300+100 || (n < 300 && i != len(sizes)-1) {
			t.Fatalf("batch %d has %d spans, want about 300", i, n)
		}
	}
}

// BenchmarkGenerate measures generating a default day (without sending it).
func BenchmarkGenerate(b *testing.B) {
	for b.Loop() {
		g := newGenerator(Options{End: testEnd, Duration: DefaultDuration, Traces: DefaultTraces, BatchSpans: DefaultBatchSpans})
		if err := g.run(context.Background(), func(*batch) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}
