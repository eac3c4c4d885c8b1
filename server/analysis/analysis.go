// Package analysis runs the background work of a tenant server: merging metric rollups, evaluating
// alert rules, detecting anomalies, analysing their root causes and deleting data past retention.
// Every replica runs it; each job claims its ticks in the database, so a tick runs once however many
// replicas there are.
package analysis

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tracekit/tracekit/server/analysis/alerting"
	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/rca"
	"github.com/tracekit/tracekit/server/store"
)

// Config is what New needs. Zero values take the defaults noted.
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
	// Retention is how long spans, LLM calls and debugger snapshots are kept; zero keeps them forever.
	Retention time.Duration
	// MinuteRetention and HourRetention bound the rollups kept (default 8 days and 90 days, and never
	// longer than Retention).
	MinuteRetention, HourRetention time.Duration
	Anomaly                        anomaly.Config
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Registry receives the count of skipped items (tracekit_analysis_skipped_total); optional.
	Registry prometheus.Registerer
}

// Jobs claimed per tick.
const (
	compactionJob = "compaction"
	retentionJob  = "retention"
	// retentionEvery is how often old data is deleted: often enough that each run is small.
	retentionEvery = 10 * time.Minute
	// retentionBatch rows per DELETE keep each transaction short (a few MB of WAL for spans).
	retentionBatch = 5000
	// rcaAfter is how long an anomaly must have lasted before its first root-cause analysis: enough
	// anomalous requests to compare.
	rcaAfter = 10 * time.Minute
)

// Engine does the background work for a Config.
type Engine struct {
	cfg   Config
	rules []store.AlertRule // from RulesFile
	skips *skipLog
}

// skipLog reports the items background work passed over (a rollup series, an alert rule, a service
// it could not process): each is logged once, with its key, and counted; the rest of the work goes on.
type skipLog struct {
	mu      sync.Mutex
	seen    map[string]bool
	skipped *prometheus.CounterVec
}

func newSkipLog(reg prometheus.Registerer) *skipLog {
	l := &skipLog{seen: map[string]bool{}, skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "tracekit_analysis_skipped_total",
		Help: "Items background work could not process and passed over, by job (compaction, alerts, anomalies)."}, []string{"job"})}
	if reg != nil {
		reg.MustRegister(l.skipped)
	}
	return l
}

func (l *skipLog) report(logger *slog.Logger, tenant, job string, items []store.Skipped) {
	for _, it := range items {
		l.skipped.WithLabelValues(job).Inc()
		key := tenant + "\x00" + job + "\x00" + it.Key
		l.mu.Lock()
		first := !l.seen[key]
		l.seen[key] = true
		l.mu.Unlock()
		if first {
			logger.Warn("background work skipped an item it cannot process; the rest went on", "tenant", tenant, "job", job, "item", it.Key, "err", it.Err)
		}
	}
}

// New checks cfg, loads its rules file and fills in the defaults.
func New(cfg Config) (*Engine, error) {
	e := &Engine{cfg: cfg.withDefaults(), skips: newSkipLog(cfg.Registry)}
	if cfg.RulesFile != "" {
		var err error
		if e.rules, err = alerting.LoadRules(cfg.RulesFile); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// Run does the background work every 20 seconds until ctx ends. Errors of one tenant's tick are
// logged and retried at the next tick; Run returns ctx's error.
func (e *Engine) Run(ctx context.Context) error {
	go e.expireLoop(ctx)
	seeded := map[string]bool{}
	tick := time.NewTicker(20 * time.Second)
	defer tick.Stop()
	for {
		tenants, err := e.tenants(ctx)
		if err != nil {
			e.cfg.Logger.Warn("list tenants for analysis", "err", err)
		}
		for _, id := range tenants {
			t := e.cfg.DB.ForTenant(id)
			if !seeded[id] {
				if err := e.seedRules(ctx, t); err != nil {
					e.cfg.Logger.Warn("alert rules not loaded", "tenant", id, "err", err)
				} else {
					seeded[id] = true
				}
			}
			if err := e.Tick(ctx, t); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("analysis tick failed; retrying at the next one", "tenant", id, "err", err)
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
	// Retention is the tenant's promise of how long its data is kept: aggregates included.
	if cfg.Retention > 0 {
		cfg.MinuteRetention = min(cfg.MinuteRetention, cfg.Retention)
		cfg.HourRetention = min(cfg.HourRetention, cfg.Retention)
	}
	return cfg
}

func (e *Engine) tenants(ctx context.Context) ([]string, error) {
	if e.cfg.Tenant != "" {
		return []string{e.cfg.Tenant}, nil
	}
	infos, err := e.cfg.DB.ListTenants(ctx)
	ids := make([]string, len(infos))
	for i, t := range infos {
		ids[i] = t.ID
	}
	return ids, err
}

func (e *Engine) seedRules(ctx context.Context, t *store.Tenant) error {
	rules := e.rules
	if rules == nil && e.cfg.DemoRules {
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
func (e *Engine) Tick(ctx context.Context, t *store.Tenant) error {
	cfg := e.cfg
	now := cfg.Now()
	minute := now.Add(-30 * time.Second).Truncate(time.Minute).UnixNano()
	var errs []error
	if ok, err := t.ClaimTick(ctx, compactionJob, minute); err != nil {
		errs = append(errs, err)
	} else if ok {
		st, err := t.CompactRollups(ctx, now.UnixNano(), int64(cfg.MinuteRetention), int64(cfg.HourRetention))
		if err != nil {
			errs = append(errs, err)
		}
		e.skips.report(cfg.Logger, t.ID(), compactionJob, st.Skipped)
	}
	// Alert windows end at a whole minute half a minute ago, so late spans of that minute are in.
	_, skipped, err := alerting.Evaluate(ctx, t, minute)
	if err != nil {
		errs = append(errs, err)
	}
	e.skips.report(cfg.Logger, t.ID(), alerting.Job, skipped)
	res, err := anomaly.Detect(ctx, t, now, cfg.Anomaly)
	if err != nil {
		errs = append(errs, err)
	}
	e.skips.report(cfg.Logger, t.ID(), anomaly.Job, res.Skipped)
	for _, id := range res.Changed {
		if err := e.explain(ctx, t, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// expireLoop creates every tenant's partitions for the days ahead (so ingest seldom creates one)
// and runs Expire, at start and every retentionEvery, beside the analysis ticks so that a long first
// purge does not hold up alert evaluation.
func (e *Engine) expireLoop(ctx context.Context) {
	tick := time.NewTicker(retentionEvery)
	defer tick.Stop()
	for {
		tenants, err := e.tenants(ctx)
		if err != nil {
			e.cfg.Logger.Warn("list tenants for retention", "err", err)
		}
		for _, id := range tenants {
			t := e.cfg.DB.ForTenant(id)
			if err := t.EnsurePartitionsAhead(ctx, e.cfg.Now().UnixNano()); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("creating partitions ahead failed; ingest creates them on demand, retrying at the next run", "tenant", id, "err", err)
			}
			if err := e.Expire(ctx, t); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("deleting data past retention failed; retrying at the next run", "tenant", id, "err", err)
			}
			// An hour after a day ends its late spans are few: its indexes are rebuilt packed.
			if _, err := t.CompactPartitions(ctx, e.cfg.Now().Add(-time.Hour).UnixNano()); err != nil && ctx.Err() == nil {
				e.cfg.Logger.Warn("rebuilding the indexes of past days failed; retrying at the next run", "tenant", id, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// Expire deletes tenant t's spans, LLM calls and snapshots older than Retention, unless a replica
// has already claimed the current retentionEvery period.
func (e *Engine) Expire(ctx context.Context, t *store.Tenant) error {
	cfg := e.cfg
	if cfg.Retention <= 0 {
		return nil
	}
	now := cfg.Now()
	if ok, err := t.ClaimTick(ctx, retentionJob, now.Truncate(retentionEvery).UnixNano()); err != nil || !ok {
		return err
	}
	n, err := t.DeleteOlderThan(ctx, now.Add(-cfg.Retention).UnixNano(), retentionBatch)
	if n.Rows() > 0 || len(n.Partitions) > 0 {
		cfg.Logger.Info("deleted data past retention", "tenant", t.ID(), "retention", cfg.Retention.String(),
			"spans", n.Spans, "llm_calls", n.LLMCalls, "snapshots", n.Snapshots, "statements", n.Statements,
			"partitions", n.Partitions)
	}
	return err
}

// explain analyses an anomaly that the detector created or changed: once it has lasted rcaAfter,
// and again when it ends, so the stored report covers the whole episode.
func (e *Engine) explain(ctx context.Context, t *store.Tenant, id int64) error {
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
	e.cfg.Logger.Info("anomaly analysed", "tenant", t.ID(), "anomaly", id, "service", a.Service, "metric", a.Metric,
		"severity", a.Severity, "ongoing", a.EndedNS == 0, "summary", rep.Summary)
	return nil
}
