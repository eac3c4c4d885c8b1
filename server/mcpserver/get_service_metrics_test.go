package mcpserver_test

import (
	"testing"
	"time"
)

func TestGetServiceMetrics_ReturnsASeriesAndPerOperationStats(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var out struct {
			Step   string                   `json:"step"`
			Total  struct{ Requests int64 } `json:"total"`
			Series []struct {
				T        string  `json:"t"`
				Requests int64   `json:"requests"`
				P95MS    float64 `json:"p95_ms"`
			} `json:"series"`
			Operations []struct{ Operation string } `json:"operations"`
		}
		txt := mustOK(t, "get_service_metrics", call(t, s, "get_service_metrics",
			map[string]any{"service": "inventory-service", "since": "3h", "step": "30m", "by_operation": true}, &out))
		// The window starts on a multiple of the step: 6 or 7 buckets cover 3 hours.
		if out.Step != "30m" || len(out.Series) < 6 || len(out.Series) > 7 || out.Total.Requests != shopTraces || len(out.Operations) != 1 {
			t.Fatalf("metrics: %+v\n%s", out, txt)
		}
		var sum int64
		for _, p := range out.Series {
			sum += p.Requests
		}
		if sum != shopTraces {
			t.Errorf("series sums to %d requests, want %d", sum, shopTraces)
		}
		mustOK(t, "get_service_metrics", call(t, s, "get_service_metrics", map[string]any{"service": "payment-service", "since": "24h", "step": "1m"}, &out))
		if len(out.Series) > 100 || out.Step == "1m" {
			t.Errorf("a too fine step was not coarsened to the budget: step %s, %d points", out.Step, len(out.Series))
		}
	})
}
