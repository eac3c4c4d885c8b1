package mcpserver_test

import (
	"strings"
	"testing"
	"time"
)

func TestListServices_JudgesHealthAgainstThePreviousWindow(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		// The seed's own hour: "since 1h" would lose its first request (a failed one) when the
		// minute turns between seeding and the call.
		hour := map[string]any{"start": sh.now.Add(-time.Hour).Format(time.RFC3339), "end": sh.now.Format(time.RFC3339)}
		s := e.connect(t, e.keyA)
		var out struct {
			Services []struct {
				Name     string  `json:"name"`
				Version  string  `json:"version"`
				Health   string  `json:"health"`
				Reason   string  `json:"reason"`
				Requests int64   `json:"requests"`
				ErrorPct float64 `json:"error_pct"`
				P95MS    float64 `json:"p95_ms"`
				Change   struct {
					P95Pct float64 `json:"p95_pct"`
				} `json:"change"`
			} `json:"services"`
			page
		}
		txt := mustOK(t, "list_services", call(t, s, "list_services", hour, &out))
		health := map[string]string{}
		for _, svc := range out.Services {
			health[svc.Name] = svc.Health
		}
		if len(out.Services) != 4 || out.Services[0].Health != "critical" || health["frontend"] != "critical" && health["frontend"] != "degraded" {
			t.Errorf("verdicts: %v\n%s", health, txt)
		}
		for _, svc := range out.Services {
			switch svc.Name {
			case "payment-service":
				if svc.Health != "critical" || !strings.Contains(svc.Reason, "p95") || svc.Change.P95Pct < 100 || svc.Version != "1.5.0" {
					t.Errorf("payment-service: %+v", svc)
				}
			case "inventory-service":
				if svc.Health != "critical" || !strings.Contains(svc.Reason, "errors") || svc.ErrorPct < 9 || svc.ErrorPct > 11 {
					t.Errorf("inventory-service: %+v", svc)
				}
			}
		}
		if out.Window.From == "" || len(out.Next) == 0 {
			t.Errorf("window or suggestions missing: %+v", out.page)
		}
		ids := pageAll(t, s, "list_services", map[string]any{"start": hour["start"], "end": hour["end"], "limit": 1}, "services", "name")
		if len(ids) != 4 {
			t.Errorf("paging services one by one: %v", ids)
		}
	})
}
