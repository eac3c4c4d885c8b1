package demo

import (
	"slices"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func TestRun_MoreIncidentsAreVisibleInTheData(t *testing.T) {
	res, spans := sendDay(t)
	byID := map[string]Incident{}
	for _, inc := range res.Incidents {
		byID[inc.ID] = inc
	}
	if len(res.Incidents) != 11 {
		t.Fatalf("%d incidents, want 11", len(res.Incidents))
	}
	tests := []struct {
		incident string
		check    func(t *testing.T, inc Incident)
	}{
		{"account-profile-slow", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, serverSpan("api-gateway", inc.Operation))
			if r := p95(in) / p95(out); r < 3 {
				t.Errorf("api-gateway %s p95 in the window is %.1fx outside, want at least 3x", inc.Operation, r)
			}
			all, rest := inWindow(spans, inc, serverSpan("api-gateway", ""))
			if r := p95(all) / p95(rest); r > 1.5 {
				t.Errorf("the gateway's p95 over all routes grew %.1fx; the incident should show on its routes only", r)
			}
		}},
		{"cart-stock-lock-wait", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, serverSpan("api-gateway", inc.Operation))
			if r := p95(in) / p95(out); r < 3 {
				t.Errorf("api-gateway %s p95 in the window is %.1fx outside, want at least 3x", inc.Operation, r)
			}
			all, rest := inWindow(spans, inc, serverSpan("api-gateway", ""))
			if r := p95(all) / p95(rest); r > 1.5 {
				t.Errorf("the gateway's p95 over all routes grew %.1fx; the incident should show on its route only", r)
			}
		}},
		{"cache-outage-fallback", func(t *testing.T, inc Incident) {
			gets, _ := inWindow(spans, inc, func(s received) bool {
				return s.attr("server.address") == cacheRedis.host && s.attr("db.operation.name") == "GET"
			})
			if len(gets) == 0 || errorRate(gets) < 1 {
				t.Errorf("%d cache GETs in the window, error rate %.2f; want all failing", len(gets), errorRate(gets))
			}
			perRequest := func(spans []received) float64 {
				reqs, calls := 0, 0
				for _, s := range spans {
					switch {
					case serverSpan("inventory-service", "")(s):
						reqs++
					case s.service() == "inventory-service" && s.attr("server.address") == inventoryReplica.host:
						calls++
					}
				}
				return float64(calls) / float64(reqs)
			}
			in, out := inWindow(spans, inc, func(s received) bool { return s.service() == "inventory-service" })
			if b, a := perRequest(out), perRequest(in); a < 5*b {
				t.Errorf("inventory-service made %.1f replica calls per request in the window and %.1f outside; want a jump", a, b)
			}
		}},
		{"activity-consumer-lag", func(t *testing.T, inc Incident) {
			byID := map[string]received{}
			for _, s := range spans {
				byID[string(s.span.SpanId)] = s
			}
			// A consumer's producer is its parent, or the span it links to (product views).
			producer := func(s received) (received, bool) {
				if len(s.span.Links) > 0 {
					return byID[string(s.span.Links[0].SpanId)], true
				}
				return byID[string(s.span.ParentSpanId)], false
			}
			var lastMinutes, before []float64
			linked := 0
			for _, s := range spans {
				if s.span.Kind != tracepb.Span_SPAN_KIND_CONSUMER {
					continue
				}
				p, viaLink := producer(s)
				at, lag := int64(p.span.StartTimeUnixNano), float64(s.span.StartTimeUnixNano-p.span.EndTimeUnixNano)
				switch {
				case at >= inc.End.Add(-10*time.Minute).UnixNano() && at < inc.End.UnixNano():
					lastMinutes = append(lastMinutes, lag)
					if viaLink {
						linked++
					}
				case at < inc.Start.UnixNano():
					before = append(before, lag)
				}
			}
			if len(lastMinutes) == 0 || slices.Min(lastMinutes) < 60e9 || slices.Max(before) > 5e9 {
				t.Errorf("%d messages at the incident's end waited at least %.0fs; before it at most %.1fs; want minutes against moments",
					len(lastMinutes), slices.Min(append(lastMinutes, 0))/1e9, slices.Max(before)/1e9)
			}
			if linked == 0 || linked == len(lastMinutes) {
				t.Errorf("%d of the %d consumers at the incident's end link to their producer; want some linked and some children", linked, len(lastMinutes))
			}
		}},
		{"llm-provider-slow", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, serverSpan("support-assistant", inc.Operation))
			if r := p95(in) / p95(out); r < 1.5 {
				t.Errorf("support-assistant p95 in the window is %.1fx outside, want much higher", r)
			}
			slow, _ := inWindow(spans, inc, func(s received) bool {
				return s.service() == "llm-gateway" && s.attr("peer.service") == inc.Cause.Value
			})
			if len(slow) == 0 || p95(slow) < 10e9 {
				t.Errorf("llm-gateway calls to %s are not slow in the window", inc.Cause.Value)
			}
		}},
		{"search-rerank-regression", func(t *testing.T, inc Incident) {
			in, out := inWindow(spans, inc, serverSpan("search-service", "GET /v1/search"))
			for _, s := range in {
				if v := s.resource["service.version"]; v != searchBadVersion {
					t.Fatalf("search-service runs %s in the window, want %s", v, searchBadVersion)
				}
			}
			for _, s := range out {
				if v := s.resource["service.version"]; v == searchBadVersion {
					t.Fatalf("search-service runs %s outside the window", v)
				}
			}
			if r := p95(in) / p95(out); r < 3 {
				t.Errorf("search p95 in the window is %.1fx outside, want several times", r)
			}
		}},
		{"inventory-noisy-neighbour", func(t *testing.T, inc Incident) {
			onHost := func(want bool) func(received) bool {
				return func(s received) bool {
					return serverSpan("inventory-service", "")(s) && (s.resource["host.name"] == inc.Cause.Value) == want
				}
			}
			noisy, _ := inWindow(spans, inc, onHost(true))
			others, _ := inWindow(spans, inc, onHost(false))
			if len(noisy) == 0 || p95(noisy) < 3*p95(others) {
				t.Errorf("inventory requests on %s are not much slower than on the other pods in the window", inc.Cause.Value)
			}
		}},
		{"user-service-retry-storm", func(t *testing.T, inc Incident) {
			hours := inc.End.Sub(inc.Start).Hours()
			in, out := inWindow(spans, inc, serverSpan("user-service", inc.Operation))
			if r := (float64(len(in)) / hours) / (float64(len(out)) / (24 - hours)); r < 2.5 {
				t.Errorf("user-service history calls per hour are %.1fx in the window, want several times", r)
			}
			resent, _ := inWindow(spans, inc, func(s received) bool {
				return s.service() == "recommendation-service" && s.span.Kind == tracepb.Span_SPAN_KIND_CLIENT && hasInt(s, "http.request.resend_count")
			})
			if len(resent) < 50 {
				t.Errorf("only %d resent history calls in the window", len(resent))
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

func hasInt(s received, key string) bool {
	_, ok := s.intAttr(key)
	return ok
}
