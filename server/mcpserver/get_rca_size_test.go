package mcpserver_test

import (
	"context"
	"slices"
	"testing"

	"github.com/tracekit/tracekit/server/analysis/analysistest"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// maxRCATokens is what a default get_rca answer may cost an assistant: a root-cause analysis is
// read in full, next to the anomaly list and a trace or two.
const maxRCATokens = 2500

// TestGetRCA_EveryDemoAnomalyFitsInTheRCABudget asks for the root-cause analysis of every anomaly
// of the demo day, with default arguments, and measures each answer (text and structured content).
func TestGetRCA_EveryDemoAnomalyFitsInTheRCABudget(t *testing.T) {
	db := storetest.Open(t, storetest.PostgresDSN(t))
	e := newDemoEnv(t, db)
	s := e.connect(t, e.key)
	tn := db.ForTenant(analysistest.Tenant)
	recs, err := tn.AnomalyRecords(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < len(e.res.Incidents) {
		t.Fatalf("%d anomalies for %d incidents", len(recs), len(e.res.Incidents))
	}
	var sizes []int
	for _, a := range recs {
		var out struct {
			Status string `json:"status"`
		}
		res := call(t, s, "get_rca", map[string]any{"anomaly_id": anomalyRef(t, tn, a.ID)}, &out)
		mustOK(t, "get_rca", res)
		n := answerTokens(res)
		sizes = append(sizes, n)
		if n > maxRCATokens || out.Status != "computed" {
			t.Errorf("get_rca of %s's %s anomaly: %s, %d tokens; want computed in at most %d", a.Service, a.Metric, out.Status, n, maxRCATokens)
		}
	}
	slices.Sort(sizes)
	t.Logf("get_rca answers of %d anomalies, in tokens: median %d, max %d", len(sizes), sizes[len(sizes)/2], sizes[len(sizes)-1])
}
