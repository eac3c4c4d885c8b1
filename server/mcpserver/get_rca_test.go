package mcpserver_test

import (
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/mcpserver"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func TestAlertsAnomaliesAndRCA_LinkFromAnomalyToCause(t *testing.T) {
	dialects(t, func(t *testing.T, e *env) {
		sh := seedShop(t, e.acme, time.Now())
		s := e.connect(t, e.keyA)
		var alerts struct {
			Alerts []struct {
				Service   string  `json:"service"`
				Condition string  `json:"condition"`
				Value     float64 `json:"value"`
			} `json:"alerts"`
		}
		mustOK(t, "get_active_alerts", call(t, s, "get_active_alerts", nil, &alerts))
		if len(alerts.Alerts) != 1 || alerts.Alerts[0].Condition != "p95_latency_ms > 500 over 5m" || alerts.Alerts[0].Value != 850 {
			t.Errorf("alerts: %+v", alerts)
		}
		var anomalies struct {
			Anomalies []struct {
				ID     string `json:"id"`
				HasRCA bool   `json:"has_rca"`
			} `json:"anomalies"`
			page
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"min_severity": "high"}, &anomalies))
		if len(anomalies.Anomalies) != 2 || anomalies.Anomalies[0].ID != anomalyRef(t, e.acme, sh.errorAnomaly) || anomalies.Next[0].Tool != "get_rca" {
			t.Fatalf("anomalies: %+v", anomalies)
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"min_severity": "critical"}, &anomalies))
		if len(anomalies.Anomalies) != 1 {
			t.Errorf("min_severity critical: %+v", anomalies.Anomalies)
		}
		mustOK(t, "search_anomalies", call(t, s, "search_anomalies", map[string]any{"trace_id": sh.slowestPayment}, &anomalies))
		if len(anomalies.Anomalies) != 2 {
			t.Errorf("anomalies of a trace touching payment and inventory: %+v", anomalies.Anomalies)
		}

		var rca struct {
			Status  string           `json:"status"`
			Summary string           `json:"summary"`
			Causes  []map[string]any `json:"causes"`
			Next    []struct {
				Tool string         `json:"tool"`
				Args map[string]any `json:"args"`
			} `json:"next"`
		}
		txt := mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, sh.paymentAnomaly)}, &rca))
		if rca.Status != "ready" || len(rca.Causes) != 2 || rca.Next[0].Tool != "get_trace_detail" || rca.Next[0].Args["trace_id"] != sh.slowestPayment {
			t.Errorf("rca: %+v\n%s", rca, txt)
		}
		if !strings.Contains(txt, "1. slow DB statement after deploy service=payment-service") || !strings.Contains(txt, "evidence «") {
			t.Errorf("rca text:\n%s", txt)
		}
		// No report stored: the server's analysis engine computes one on demand.
		var computed struct {
			Status string           `json:"status"`
			Causes []map[string]any `json:"causes"`
			page
		}
		txt = mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, sh.errorAnomaly)}, &computed))
		if computed.Status != "computed" || len(computed.Causes) == 0 || computed.Causes[0]["service"] != "inventory-service" || computed.Next[0].Tool != "get_trace_detail" {
			t.Errorf("rca computed on demand: %+v\n%s", computed, txt)
		}
		var again struct{ Status string }
		mustOK(t, "get_rca", call(t, s, "get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, sh.errorAnomaly)}, &again))
		if again.Status != "ready" {
			t.Errorf("a computed analysis was not stored: status %s", again.Status)
		}
	})
}

func TestGetRCA_WithoutAnEngineSaysNotComputedAndSuggestsTheEvidence(t *testing.T) {
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	e := newEnv(t, db)
	sh := seedShop(t, e.acme, time.Now())
	e.url = serve(t, mcpserver.Config{DB: db, Auth: &auth.APIKeys{DB: db}, PublicURL: publicURL})
	var rca struct {
		Status string `json:"status"`
		Causes []any  `json:"causes"`
		page
	}
	mustOK(t, "get_rca", call(t, e.connect(t, e.keyA), "get_rca", map[string]any{"anomaly_id": anomalyRef(t, e.acme, sh.errorAnomaly)}, &rca))
	if rca.Status != "not_computed" || len(rca.Causes) != 0 || rca.Next[0].Tool != "search_traces" || rca.Next[0].Args["status"] != "error" ||
		rca.Next[0].Args["start"] == nil {
		t.Errorf("rca without a report nor an engine: %+v", rca)
	}
}
