package alerting_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tracekit/tracekit/server/analysis/alerting"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var base = int64(1_750_000_000) / 3600 * 3600 * 1e9

// seed writes 10 requests a minute to checkout for 60 minutes; in minutes [20, 30) 8 of 10 fail.
func seed(t *testing.T, tn *store.Tenant) {
	t.Helper()
	var b store.Batch
	for m := 0; m < 60; m++ {
		for i := 0; i < 10; i++ {
			s := store.Span{TraceID: storetest.TraceID(fmt.Sprintf("%02d%02d", m, i)), SpanID: storetest.SpanID("1"), Service: "checkout", Operation: "POST /checkout",
				IsEntry: true, StartNS: base + int64(m)*store.Minute + int64(i)*1e9, DurationNS: 20e6}
			if m >= 20 && m < 30 && i < 8 {
				s.StatusCode = store.StatusError
			}
			b.Spans = append(b.Spans, s)
		}
	}
	if err := tn.InsertBatch(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// dialects runs fn against a new PostgreSQL database and a new SQLite file, by DSN, so a test can
// open several handles (replicas) on one database.
func dialects(t *testing.T, fn func(t *testing.T, dsn string)) {
	t.Run("postgres", func(t *testing.T) { fn(t, storetest.PostgresDSN(t)) })
	t.Run("sqlite", func(t *testing.T) { fn(t, storetest.SQLiteDSN(t)) })
}

var rules = []store.AlertRule{
	{ID: "checkout-errors", Service: "checkout", Metric: alerting.ErrorRate, Comparison: ">", Threshold: 0.5, WindowSeconds: 300, Severity: "critical", Enabled: true},
	{ID: "checkout-slow", Service: "checkout", Metric: alerting.P95, Comparison: ">", Threshold: 1000, WindowSeconds: 300, Severity: "high", Enabled: true},
}

func TestEvaluate_TwoReplicasEvaluateEachRuleOncePerTickAndFireOnce(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		replicas := []*store.DB{storetest.Open(t, dsn), storetest.Open(t, dsn)}
		tn := replicas[0].ForTenant("acme")
		for _, r := range rules {
			if err := tn.PutAlertRule(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
		seed(t, tn)

		// Both replicas wake for every tick at the same moment.
		const ticks = 45
		ran := make([][2]bool, ticks)
		for i := 0; i < ticks; i++ {
			tick := base + int64(i+1)*store.Minute
			var wg sync.WaitGroup
			for r, db := range replicas {
				wg.Go(func() {
					ok, _, err := alerting.Evaluate(ctx, db.ForTenant("acme"), tick)
					if err != nil {
						t.Error(err)
					}
					ran[i][r] = ok
				})
			}
			wg.Wait()
			if ran[i][0] == ran[i][1] {
				t.Fatalf("tick %d: replica 0 ran %v, replica 1 ran %v; want exactly one", i+1, ran[i][0], ran[i][1])
			}
		}
		states, err := tn.AlertRuleStates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) != 2 {
			t.Fatalf("state of %d rules, want 2", len(states))
		}
		for _, s := range states {
			if s.Evaluations != ticks {
				t.Errorf("rule %s evaluated %d times in %d ticks", s.RuleID, s.Evaluations, ticks)
			}
		}
		// A restarted replica does not redo a tick that was done.
		if ok, _, err := alerting.Evaluate(ctx, storetest.Open(t, dsn).ForTenant("acme"), base+10*store.Minute); ok || err != nil {
			t.Fatalf("re-evaluating a past tick: ran=%v err=%v", ok, err)
		}

		hist, err := tn.AlertHistory(ctx, "checkout-errors")
		if err != nil {
			t.Fatal(err)
		}
		// Five-minute windows exceed 50 % errors from the one ending at minute 24 (minutes 20-23 fail:
		// 32/50) through the one ending at minute 31; at 32 only three failing minutes remain (24/50).
		if len(hist) != 1 || hist[0].State != store.AlertResolved || hist[0].StartedNS != base+24*store.Minute ||
			hist[0].ResolvedNS != base+32*store.Minute {
			t.Fatalf("checkout-errors episodes: %+v; want one, firing 24m to 32m", hist)
		}
		if !strings.Contains(hist[0].Message, "error rate of checkout") {
			t.Errorf("message %q", hist[0].Message)
		}
		if h, _ := tn.AlertHistory(ctx, "checkout-slow"); len(h) != 0 {
			t.Errorf("checkout-slow fired: %+v", h)
		}
	})
}

func TestEvaluate_FiringAlertCarriesSinceValueAndThresholdAcrossRestarts(t *testing.T) {
	dialects(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		tn := storetest.Open(t, dsn).ForTenant("acme")
		if err := tn.PutAlertRule(ctx, rules[0]); err != nil {
			t.Fatal(err)
		}
		seed(t, tn)
		for m := int64(20); m <= 27; m++ {
			if _, _, err := alerting.Evaluate(ctx, tn, base+m*store.Minute); err != nil {
				t.Fatal(err)
			}
		}
		active, err := tn.ActiveAlerts(ctx, "", "")
		if err != nil || len(active) != 1 {
			t.Fatalf("active alerts %+v (%v), want one", active, err)
		}
		a := active[0]
		if a.StartedNS != base+24*store.Minute || a.Value != 0.8 || a.Threshold != 0.5 || a.LastEvalNS != base+27*store.Minute {
			t.Fatalf("firing alert %+v: want since 24m, value 0.8, threshold 0.5, evaluated at 27m", a.Alert)
		}
		// Another process (a restart) continues the same episode rather than firing a new one.
		other := storetest.Open(t, dsn).ForTenant("acme")
		if _, _, err := alerting.Evaluate(ctx, other, base+28*store.Minute); err != nil {
			t.Fatal(err)
		}
		if h, _ := tn.AlertHistory(ctx, rules[0].ID); len(h) != 1 || h[0].State != store.AlertFiring {
			t.Fatalf("after restart: %+v", h)
		}
	})
}

func TestLoadRules_ReadsTheFileAndRejectsARuleItCannotEvaluate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "alert-rules.json")
	os.WriteFile(path, []byte(`[{"id":"p95","service":"checkout","metric":"latency_p95_ms","comparison":">","threshold":800,"window_seconds":300,"severity":"critical","enabled":false},
		{"id":"spend","metric":"llm_cost_usd","comparison":">=","threshold":5,"window_seconds":3600,"severity":"medium"}]`), 0o600)
	rules, err := alerting.LoadRules(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 2 || rules[0].Enabled || !rules[1].Enabled || rules[1].Metric != alerting.LLMCost {
		t.Errorf("rules %+v: want p95 disabled, spend enabled by default", rules)
	}
	// The resource's spelling is the operator's to translate (controllers.serverAlertRule).
	os.WriteFile(path, []byte(`[{"id":"p95","metric":"latency_p95","comparison":"gt","threshold":800,"window_seconds":300,"severity":"warning"}]`), 0o600)
	if _, err := alerting.LoadRules(path); err == nil || !strings.Contains(err.Error(), `unknown metric "latency_p95"`) {
		t.Errorf("want the unknown metric named, got %v", err)
	}
}
