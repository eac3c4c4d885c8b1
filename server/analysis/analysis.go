// Package analysis runs the background work of a tenant server: merging metric rollups, evaluating
// alert rules, detecting anomalies and analysing their root causes. Every replica runs it; each job
// claims its ticks in the database, so a tick runs once however many replicas there are.
package analysis

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tracekit/tracekit/server/analysis/alerting"
	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/store"
)

// Config is what Run needs. Zero values take the defaults noted.
type Config struct {
	DB *store.DB
	// Tenant restricts the work to one tenant (a tenant pod); empty means every tenant in DB.
	Tenant string
	Logger *slog.Logger
	// RulesFile, when set, replaces each tenant's alert rules by the rules in this JSON file at start
	// (dev mode; in a cluster the operator writes the rules from the tenant's spec).
	RulesFile string
	// DemoRules gives tenants without rules the rules that watch the demo shop (dev mode).
	DemoRules bool
	// MinuteRetention and HourRetention bound the rollups kept (default 8 days and 90 days).
	MinuteRetention, HourRetention time.Duration
	Anomaly                        anomaly.Config
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Jobs claimed per tick.
const (
	compactionJob = "compaction"
	// rcaAfter is how long an anomaly must have lasted before its first root-cause analysis: enough
	// anomalous requests to compare.
	rcaAfter = 10 * time.Minute
)

// Run does the background work every 20 seconds until ctx ends. Errors of one tenant's tick are
// logged and retried at the next tick; Run returns only ctx's error or a configuration error.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	var rules []store.AlertRule
	if cfg.RulesFile != "" {
		var err error
		if rules, err = alerting.LoadRules(cfg.RulesFile); err != nil {
			return err
		}
	}
	seeded := map[string]bool{}
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	for {
		tenants, err := cfg.tenants(ctx)
		if err != nil {
			cfg.Logger.Warn("list tenants for analysis", "err", err)
		}
		for _, id := range tenants {
			t := cfg.DB.ForTenant(id)
			if !seeded[id] {
				if err := cfg.seedRules(ctx, t, rules); err != nil {
					cfg.Logger.Warn("alert rules not loaded", "tenant", id, "err", err)
				} else {
					seeded[id] = true
				}
			}
			if err := cfg.Tick(ctx, t); err != nil && ctx.Err() == nil {
				cfg.Logger.Warn("analysis tick failed; retrying at the next one", "tenant", id, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

func (cfg Config) withDefaults() Config {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinuteRetention == 0 {
		cfg.MinuteRetention = 8 * 24 * time.Hour
	}
	if cfg.HourRetention == 0 {
		cfg.HourRetention = 90 * 24 * time.Hour
	}
	return cfg
}

func (cfg Config) tenants(ctx context.Context) ([]string, error) {
	if cfg.Tenant != "" {
		return []string{cfg.Tenant}, nil
	}
	infos, err := cfg.DB.ListTenants(ctx)
	ids := make([]string, len(infos))
	for i, t := range infos {
		ids[i] = t.ID
	}
	return ids, err
}

func (cfg Config) seedRules(ctx context.Context, t *store.Tenant, rules []store.AlertRule) error {
	if rules == nil && cfg.DemoRules {
		existing, err := t.AlertRules(ctx)
		if err != nil || len(existing) > 0 {
			return err
		}
		rules = alerting.DemoRules()
	}
	for _, r := range rules {
		if err := t.PutAlertRule(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// Tick runs each job once for tenant t, if no replica has run it for the current tick.
func (cfg Config) Tick(ctx context.Context, t *store.Tenant) error {
	cfg = cfg.withDefaults()
	now := cfg.Now()
	minute := now.Add(-30 * time.Second).Truncate(time.Minute).UnixNano()
	var errs []error
	if ok, err := t.ClaimTick(ctx, compactionJob, minute); err != nil {
		errs = append(errs, err)
	} else if ok {
		if _, err := t.CompactRollups(ctx, now.UnixNano(), int64(cfg.MinuteRetention), int64(cfg.HourRetention)); err != nil {
			errs = append(errs, err)
		}
	}
	// Alert windows end at a whole minute half a minute ago, so late spans of that minute are in.
	if _, err := alerting.Evaluate(ctx, t, minute); err != nil {
		errs = append(errs, err)
	}
	res, err := anomaly.Detect(ctx, t, now, cfg.Anomaly)
	if err != nil {
		errs = append(errs, err)
	}
	for _, id := range res.Changed {
		if err := cfg.explain(ctx, t, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// explain analyses an anomaly that the detector created or changed: once it has lasted rcaAfter,
// and again when it ends, so the stored report covers the whole episode.
func (cfg Config) explain(ctx context.Context, t *store.Tenant, id int64) error {
	a, err := t.AnomalyRecord(ctx, id)
	if err != nil {
		return err
	}
	if a.EndedNS == 0 {
		if _, err := t.RCAReport(ctx, id); err == nil || a.LastSeenNS-a.StartedNS < int64(rcaAfter) {
			return nil
		}
	}
	rep, err := rca.Analyze(ctx, t, id)
	if err != nil {
		return err
	}
	cfg.Logger.Info("anomaly analysed", "tenant", t.ID(), "anomaly", id, "service", a.Service, "metric", a.Metric,
		"severity", a.Severity, "ongoing", a.EndedNS == 0, "summary", rep.Summary)
	return nil
}
