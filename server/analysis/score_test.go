package analysis_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis"
	"github.com/tracekit/tracekit/server/analysis/analysistest"
	"github.com/tracekit/tracekit/server/analysis/anomaly"
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
	delay    time.Duration // from the incident's start to the end of the first window showing it
	// the public API's (api-gateway's) anomaly during the incident, and whether its top cause names
	// the root service
	gateway, gatewayCorrect bool
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
// against the demo's labelled incidents: every incident must produce an anomaly of its service
// within 15 minutes of its onset (5 for one route of the public API), no service may have two
// anomalies starting during one incident, no anomaly may match no incident, the top root cause of at least
// 90 % of the incidents' anomalies must be the injected one, and every anomaly of the public API
// (api-gateway) during an incident must name the incident's root service first, and no anomaly
// overlapping an incident may start more than maxLead before it or end more than maxOverrun after
// it. Run with -v to see the table and the anomalies' ranges.
func TestDemoIncidents_DetectedAndExplained(t *testing.T) {
	for _, seed := range demoSeeds() {
		t.Run(fmt.Sprintf("seed%d", seed), func(t *testing.T) { scoreDemo(t, seed) })
	}
}

// demoSeeds are the demo days scored: 1 by default, 1 to 3 with TRACEKIT_DEMO_SEEDS=3.
func demoSeeds() []int64 {
	n, _ := strconv.Atoi(os.Getenv("TRACEKIT_DEMO_SEEDS"))
	seeds := []int64{1}
	for s := int64(2); s <= int64(n); s++ {
		seeds = append(seeds, s)
	}
	return seeds
}

func scoreDemo(t *testing.T, seed int64) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		// Twice the default traffic: at the default, a route with 5 % of the gateway's requests
		// sees about one request a minute at the busiest time, too few to judge within 5 minutes.
		// TRACEKIT_DEMO_DAYS=2 puts a quiet day without incidents before the scored one: a control
		// for false anomalies.
		days, _ := strconv.Atoi(os.Getenv("TRACEKIT_DEMO_DAYS"))
		days = max(days, 1)
		opts := demo.Options{Seed: seed, Duration: time.Duration(days) * 24 * time.Hour, Traces: 2 * days * demo.DefaultTraces}
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

		// What an on-call engineer sees first: the public API's anomaly during an incident, whose
		// root-cause analysis must name the incident's root service.
		gateway, gatewayRoot, prompt := 0, 0, 0
		for _, r := range rows {
			if r.gateway {
				gateway++
				if r.gatewayCorrect {
					gatewayRoot++
				}
			}
			if r.detected && r.delay <= 5*time.Minute {
				prompt++
			}
		}
		var b strings.Builder
		fmt.Fprintf(&b, "\n%-32s %-14s %-24s %-9s %-6s %-13s %-16s %-10s %-8s %s\n", "INCIDENT", "CAUSE", "SERVICE", "DETECTED", "DELAY", "WINDOW", "METRIC", "SEVERITY", "GATEWAY", "TOP CAUSE (confidence)")
		detected, correct := 0, 0
		for _, r := range rows {
			window, metric, severity, top, ok, delay, gw := "-", "-", "-", "-", "no", "-", "-"
			if r.gateway {
				gw = map[bool]string{true: "✓ root", false: "✗"}[r.gatewayCorrect]
			}
			if r.detected {
				detected++
				a := r.anomaly
				window = time.Unix(0, a.StartedNS).UTC().Format("15:04") + "-" + time.Unix(0, endOf(*a, now.UnixNano())).UTC().Format("15:04")
				metric, severity, ok, delay = a.Metric, a.Severity, "yes", r.delay.Round(time.Minute).String()
				top = fmt.Sprintf("%s %s %s=%s (%.2f)", r.top.Kind, r.top.Service, r.top.Attribute, short(r.top.Value, 40), r.top.Confidence)
				if r.correct {
					correct++
					top = "✓ " + top
				} else {
					top = "✗ " + top
				}
			}
			fmt.Fprintf(&b, "%-32s %-14s %-24s %-9s %-6s %-13s %-16s %-10s %-8s %s\n", r.inc.ID, r.inc.Cause.Type, r.inc.Service, ok, delay, window, metric, severity, gw, top)
		}
		for _, a := range false_ {
			fmt.Fprintf(&b, "false anomaly: %s %s %s from %s\n", a.Service, a.Metric, a.Severity, time.Unix(0, a.StartedNS).UTC().Format(time.RFC3339))
		}
		recall := float64(detected) / float64(len(rows))
		accuracy := float64(correct) / float64(len(rows))
		fmt.Fprintf(&b, "recall %.0f%% (%d/%d), within 5 minutes %d, false anomalies %.1f per day (%d), RCA top-1 %.0f%% (%d/%d), "+
			"public API's anomaly names the root %d/%d, %d anomalies in all",
			100*recall, detected, len(rows), prompt, float64(len(false_))/float64(days), len(false_), 100*accuracy, correct, len(rows),
			gatewayRoot, gateway, len(anomalies))
		t.Log(b.String())

		if len(rows) < 7 {
			t.Errorf("only %d labelled incidents; the demo should inject seven kinds", len(rows))
		}
		if recall < 1 {
			t.Errorf("recall %.0f%%, want every incident detected", 100*recall)
		}
		if len(false_) > 0 {
			t.Errorf("%d false anomalies in %d day(s), want none", len(false_), days)
		}
		if gatewayRoot < gateway {
			t.Errorf("the public API's anomaly names the root service first in %d of %d incidents, want all", gatewayRoot, gateway)
		}
		for _, r := range rows {
			// One route of the public API slowed or failing: the first window ending after the onset
			// must show it (issue 16). Others may need a window or two more where traffic is thin.
			want := 15 * time.Minute
			if r.inc.Service == "api-gateway" && r.inc.Operation != "" {
				want = 5 * time.Minute
			}
			if r.detected && r.delay > want {
				t.Errorf("%s detected %s after its onset, want within %s", r.inc.ID, r.delay, want)
			}
		}
		// One incident is one anomaly per service an on-call engineer sees, open while it lasts: a
		// second anomaly of the same service starting during the incident splits it.
		for _, inc := range res.Incidents {
			starts := map[string][]string{}
			for _, a := range anomalies {
				if a.StartedNS >= inc.Start.Add(-5*time.Minute).UnixNano() && a.StartedNS < inc.End.UnixNano() {
					starts[a.Service] = append(starts[a.Service], time.Unix(0, a.StartedNS).UTC().Format("15:04"))
				}
			}
			for service, at := range starts {
				if len(at) > 1 {
					t.Errorf("%s: %d anomalies of %s start during it (at %s), want one", inc.ID, len(at), service, strings.Join(at, ", "))
				}
			}
		}
		// An anomaly's time range is the incident's as an on-call engineer reads it: it starts no
		// earlier than the onset (less a little placement noise) and ends once the service is normal
		// again, not when the route test's hour-long window forgets the incident.
		for _, inc := range res.Incidents {
			var spans []string
			for _, a := range anomalies {
				lead, overrun, ok := bounds(a, res.Incidents, inc, now)
				if !ok {
					continue
				}
				spans = append(spans, fmt.Sprintf("%s %+d/%+d", a.Service, -int(lead.Minutes()), int(overrun.Minutes())))
				if lead > maxLead {
					t.Errorf("%s: the anomaly of %s starts %s before the incident, want at most %s", inc.ID, a.Service, lead, maxLead)
				}
				if overrun > maxOverrun {
					t.Errorf("%s: the anomaly of %s ends %s after the incident, want at most %s", inc.ID, a.Service, overrun, maxOverrun)
				}
			}
			t.Logf("%s %s-%s, anomalies' start/end less the incident's (minutes): %s", inc.ID,
				inc.Start.UTC().Format("15:04"), inc.End.UTC().Format("15:04"), strings.Join(spans, ", "))
		}
		if accuracy < 0.9 {
			t.Errorf("RCA ranks the injected cause first for %.0f%% of incidents, want at least 90%%", 100*accuracy)
		}
	})
}

// The most an anomaly may start before its incident's onset and end after the incident (a
// consumer's backlog takes a while to drain, and callers' anomalies end a window or two later).
const maxLead, maxOverrun = 5 * time.Minute, 30 * time.Minute

// bounds says how long before inc an anomaly overlapping it starts and how long after it ends
// (now when still open), against the earliest start and latest end of the incidents it overlaps
// (inc among them); ok is false when it does not overlap inc.
func bounds(a store.AnomalyRecord, incidents []demo.Incident, inc demo.Incident, now time.Time) (lead, overrun time.Duration, ok bool) {
	end := endOf(a, now.UnixNano())
	overlaps := func(i demo.Incident) bool { return a.StartedNS < i.End.UnixNano() && end > i.Start.UnixNano() }
	if !overlaps(inc) {
		return 0, 0, false
	}
	first, last := inc.Start, inc.End
	for _, i := range incidents {
		if overlaps(i) {
			first, last = minTime(first, i.Start), maxTime(last, i.End)
		}
	}
	return first.Sub(time.Unix(0, a.StartedNS)), time.Unix(0, end).Sub(last), true
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// score matches an incident with the anomaly of its service that overlaps it most, reads that
// anomaly's top cause and detection delay, and the top cause of the public API's anomaly, if any.
func score(t *testing.T, tn *store.Tenant, inc demo.Incident, anomalies []store.AnomalyRecord, now time.Time) scored {
	t.Helper()
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
	if d, err := anomaly.ParseDetails(row.anomaly.Details); err == nil {
		first := int64(math.MaxInt64)
		for _, m := range d {
			first = min(first, m.DetectedNS)
		}
		row.delay = time.Duration(first - inc.Start.UnixNano())
	}
	row.top, row.correct = topCause(t, tn, *row.anomaly, inc)
	for _, a := range anomalies {
		if a.Service == "api-gateway" && a.StartedNS < inc.End.UnixNano() && endOf(a, now.UnixNano()) > inc.Start.UnixNano() {
			row.gateway = true
			top, _ := topCause(t, tn, a, inc)
			row.gatewayCorrect = row.gatewayCorrect || top.Service == inc.Cause.Service
		}
	}
	return row
}

// topCause reads an anomaly's top cause as get_rca would (the stored report, computed on demand
// when missing) and says whether it is the incident's injected cause.
func topCause(t *testing.T, tn *store.Tenant, a store.AnomalyRecord, inc demo.Incident) (rca.Cause, bool) {
	t.Helper()
	ctx := context.Background()
	rep, err := tn.RCAReport(ctx, a.ID)
	if errors.Is(err, store.ErrNotFound) {
		rep, err = rca.Analyze(ctx, tn, a.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
	var causes []rca.Cause
	if err := json.Unmarshal(rep.Causes, &causes); err != nil {
		t.Fatal(err)
	}
	if len(causes) == 0 {
		return rca.Cause{}, false
	}
	return causes[0], causeMatches(causes[0], inc.Cause)
}
