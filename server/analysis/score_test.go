package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/analysis/analysistest"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/demo"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// slack around an incident within which an anomaly of any service counts as part of it: effects
// propagate to callers, and a window that ends just after the incident still sees it.
const slack = 15 * time.Minute

type scored struct {
	inc      demo.Incident
	anomaly  *store.AnomalyRecord
	top      rca.Cause
	detected bool
	correct  bool
}

// causeMatches: the top cause names the labelled service and, when the label has one, the same
// attribute and value.
func causeMatches(c rca.Cause, want demo.Cause) bool {
	if c.Service != want.Service {
		return false
	}
	return want.Attribute == "" || c.Attribute == want.Attribute && (want.Value == "" || c.Value == want.Value)
}

func endOf(a store.AnomalyRecord, now int64) int64 {
	if a.EndedNS != 0 {
		return a.EndedNS
	}
	return now
}

// TestDemoIncidents_DetectedAndExplained runs the analysis over a day of demo traffic and scores it
// against the demo's labelled incidents: every incident must produce an anomaly of its service, at
// most one anomaly a day may match no incident, and the top root cause of at least 90 % of the
// incidents' anomalies must be the injected one. Run with -v to see the table.
func TestDemoIncidents_DetectedAndExplained(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		opts := demo.Options{Seed: 1, Duration: 24 * time.Hour}
		res := analysistest.LoadDemo(t, db, opts)
		tn := db.ForTenant(analysistest.Tenant)
		now := analysistest.End.Add(10 * time.Minute)
		engine := newEngine(t, analysis.Config{DB: db, Now: func() time.Time { return now }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err := engine.Tick(ctx, tn); err != nil {
			t.Fatal(err)
		}
		anomalies, err := tn.AnomalyRecords(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}

		var rows []scored
		for _, inc := range res.Incidents {
			rows = append(rows, score(t, tn, inc, anomalies, now))
		}
		var false_ []store.AnomalyRecord
		for _, a := range anomalies {
			related := false
			for _, inc := range res.Incidents {
				if a.StartedNS < inc.End.Add(slack).UnixNano() && endOf(a, now.UnixNano()) > inc.Start.Add(-slack).UnixNano() {
					related = true
				}
			}
			if !related {
				false_ = append(false_, a)
			}
		}

		var b strings.Builder
		fmt.Fprintf(&b, "\n%-32s %-14s %-24s %-9s %-13s %-16s %-10s %s\n", "INCIDENT", "CAUSE", "SERVICE", "DETECTED", "WINDOW", "METRIC", "SEVERITY", "TOP CAUSE (confidence)")
		detected, correct := 0, 0
		for _, r := range rows {
			window, metric, severity, top, ok := "-", "-", "-", "-", "no"
			if r.detected {
				detected++
				a := r.anomaly
				window = time.Unix(0, a.StartedNS).UTC().Format("15:04") + "-" + time.Unix(0, endOf(*a, now.UnixNano())).UTC().Format("15:04")
				metric, severity, ok = a.Metric, a.Severity, "yes"
				top = fmt.Sprintf("%s %s %s=%s (%.2f)", r.top.Kind, r.top.Service, r.top.Attribute, short(r.top.Value, 40), r.top.Confidence)
				if r.correct {
					correct++
					top = "✓ " + top
				} else {
					top = "✗ " + top
				}
			}
			fmt.Fprintf(&b, "%-32s %-14s %-24s %-9s %-13s %-16s %-10s %s\n", r.inc.ID, r.inc.Cause.Type, r.inc.Service, ok, window, metric, severity, top)
		}
		for _, a := range false_ {
			fmt.Fprintf(&b, "false anomaly: %s %s %s from %s\n", a.Service, a.Metric, a.Severity, time.Unix(0, a.StartedNS).UTC().Format(time.RFC3339))
		}
		days := opts.Duration.Hours() / 24
		recall := float64(detected) / float64(len(rows))
		accuracy := float64(correct) / float64(len(rows))
		fmt.Fprintf(&b, "recall %.0f%% (%d/%d), false anomalies %.1f per day (%d), RCA top-1 %.0f%% (%d/%d), %d anomalies in all",
			100*recall, detected, len(rows), float64(len(false_))/days, len(false_), 100*accuracy, correct, len(rows), len(anomalies))
		t.Log(b.String())

		if len(rows) < 7 {
			t.Errorf("only %d labelled incidents; the demo should inject seven kinds", len(rows))
		}
		if recall < 1 {
			t.Errorf("recall %.0f%%, want every incident detected", 100*recall)
		}
		if float64(len(false_))/days > 1 {
			t.Errorf("%d false anomalies in %.0f day(s), want at most one a day", len(false_), days)
		}
		if accuracy < 0.9 {
			t.Errorf("RCA ranks the injected cause first for %.0f%% of incidents, want at least 90%%", 100*accuracy)
		}
	})
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// score matches an incident with the anomaly of its service that overlaps it most and reads that
// anomaly's top cause as get_rca would (the stored report, computed on demand when missing).
func score(t *testing.T, tn *store.Tenant, inc demo.Incident, anomalies []store.AnomalyRecord, now time.Time) scored {
	t.Helper()
	ctx := context.Background()
	row := scored{inc: inc}
	best := int64(0)
	for i, a := range anomalies {
		if a.Service != inc.Service {
			continue
		}
		overlap := min(endOf(a, now.UnixNano()), inc.End.UnixNano()) - max(a.StartedNS, inc.Start.UnixNano())
		if overlap > best {
			best, row.anomaly = overlap, &anomalies[i]
		}
	}
	if row.anomaly == nil {
		return row
	}
	row.detected = true
	rep, err := tn.RCAReport(ctx, row.anomaly.ID)
	if errors.Is(err, store.ErrNotFound) {
		rep, err = rca.Analyze(ctx, tn, row.anomaly.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	var causes []rca.Cause
	if err := json.Unmarshal(rep.Causes, &causes); err != nil {
		t.Fatal(err)
	}
	if len(causes) > 0 {
		row.top = causes[0]
		row.correct = causeMatches(row.top, inc.Cause)
	}
	return row
}
