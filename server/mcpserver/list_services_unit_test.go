package mcpserver

import (
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

func TestVerdict(t *testing.T) {
	keys := deriveKeys([]byte("secret"))
	stats := func(requests, errors int64, p95ms int64) store.RequestStats {
		return store.RequestStats{Requests: requests, Errors: errors, Percentiles: store.Percentiles{P50NS: p95ms * 5e5, P95NS: p95ms * 1e6}}
	}
	ongoing := func(severity string) []store.Anomaly {
		return []store.Anomaly{{ID: 7, Metric: "error_rate", Severity: severity, Observed: 0.3, Baseline: 0.01}}
	}
	for _, tc := range []struct {
		name      string
		now, prev store.RequestStats
		anomalies []store.Anomaly
		health    string
		reason    string
	}{
		{name: "nothing at all", health: "idle", reason: "no incoming requests"},
		{name: "traffic stopped", prev: stats(50, 0, 100), health: "no_traffic", reason: "no requests in this window, 50 in the previous one"},
		{name: "an ongoing anomaly without requests", anomalies: ongoing("medium"), health: "degraded", reason: "; no requests in this window"},
		{name: "steady", now: stats(100, 1, 100), prev: stats(100, 1, 100), health: "ok", reason: "p95 +0% vs previous window"},
		{name: "too few requests to judge", now: stats(10, 5, 900), health: "ok", reason: "too few requests (10) to judge"},
		{name: "errors at 5% are critical", now: stats(100, 6, 100), prev: stats(100, 0, 100), health: "critical", reason: "6.0% errors (6 of 100)"},
		{name: "errors rising to 3% are degraded", now: stats(200, 6, 100), prev: stats(200, 0, 100), health: "degraded", reason: "errors"},
		{name: "the usual error level is not news", now: stats(200, 6, 100), prev: stats(200, 6, 100), health: "ok"},
		{name: "a handful of errors is not a trend", now: stats(40, 4, 100), prev: stats(40, 0, 100), health: "ok"},
		{name: "p95 doubled", now: stats(100, 0, 250), prev: stats(100, 0, 100), health: "critical", reason: "up 150%"},
		{name: "p95 up half", now: stats(100, 0, 160), prev: stats(100, 0, 100), health: "degraded", reason: "up 60%"},
		{name: "traffic down 90%", now: stats(20, 0, 100), prev: stats(200, 0, 100), health: "degraded", reason: "traffic down 90%"},
		{name: "an ongoing high anomaly", now: stats(100, 0, 100), prev: stats(100, 0, 100), anomalies: ongoing("high"), health: "critical",
			reason: "ongoing anomaly " + keys.anomalyRef(7)},
		{name: "an ended anomaly is counted, not judged", now: stats(100, 0, 100), prev: stats(100, 0, 100),
			anomalies: []store.Anomaly{{ID: 3, Severity: "critical", EndedNS: 1}}, health: "ok"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := verdict(keys, "api", "1.0", tc.now, tc.prev, tc.anomalies, 10*time.Minute)
			if r.Health != tc.health || !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("%s: %q; want %s: …%q…", r.Health, r.Reason, tc.health, tc.reason)
			}
			if r.Anomalies != len(tc.anomalies) || r.PerMin != float64(tc.now.Requests)/10 {
				t.Errorf("anomalies %d, per minute %v", r.Anomalies, r.PerMin)
			}
		})
	}
}
