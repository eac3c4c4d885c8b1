package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

type listServicesIn struct {
	Window
	Page
}

type serviceRow struct {
	Name     string         `json:"name"`
	Version  string         `json:"version,omitempty"`
	Health   string         `json:"health"`
	Reason   string         `json:"reason"`
	Requests int64          `json:"requests"`
	PerMin   float64        `json:"per_min"`
	ErrorPct float64        `json:"error_pct"`
	P50MS    float64        `json:"p50_ms"`
	P95MS    float64        `json:"p95_ms"`
	P99MS    float64        `json:"p99_ms"`
	Change   *serviceChange `json:"change,omitempty"`
	// Anomalies counts the anomalies detected in the window; search_anomalies lists them.
	Anomalies int `json:"anomalies,omitempty"`
}

// serviceChange compares with the previous window of the same length.
type serviceChange struct {
	RequestsPct    float64 `json:"requests_pct"`
	P95Pct         float64 `json:"p95_pct"`
	ErrorPctPoints float64 `json:"error_pct_points"`
}

type listServicesOut struct {
	Services []serviceRow `json:"services"`
	List
}

// Health verdicts, worst first.
var healthOrder = map[string]int{"critical": 0, "degraded": 1, "no_traffic": 2, "ok": 3, "idle": 4}

// Verdict thresholds. Small samples are not judged on rates: minRequests guards against a single
// failed request making a quiet service critical. A service's usual error level (the previous
// window's) is not news: degraded needs a rise above it.
const (
	minRequests      = 20
	minErrors        = 5 // a couple of failures is not a trend, whatever the rate
	criticalErrorPct = 5.0
	degradedErrorPct = 2.0
	criticalP95Rise  = 100.0 // percent
	degradedP95Rise  = 50.0
	trafficDropPct   = -80.0
)

func (tl *tools) addListServices(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "list_services",
		Description: "Health of every service over a window: requests/min, error %, p50/p95/p99 latency, change vs the previous window, " +
			"and a verdict (critical, degraded, ok…) with its reason, worst first. Start here for \"how are my services doing?\".",
	}, func(p map[string]*jsonschema.Schema) {
		windowSchema(p, "1h")
		pageSchema(p, 50, 200)
	}, tl.listServices)
}

func (tl *tools) listServices(ctx context.Context, tn *store.Tenant, in listServicesIn) (listServicesOut, string, error) {
	var out listServicesOut
	var offset int
	from, to, _, err := pageWindow(ctx, in.Window, in.Page, in, &offset, tl.now(), time.Hour)
	if err == nil {
		from, to, err = minuteWindow(from, to)
	}
	if err != nil {
		return out, "", err
	}
	prevFrom := from.Add(-to.Sub(from))
	cur, err := metrics.ServiceStats(ctx, tn, from.UnixNano(), to.UnixNano())
	if err != nil {
		return out, "", err
	}
	prev, err := metrics.ServiceStats(ctx, tn, prevFrom.UnixNano(), from.UnixNano())
	if err != nil {
		return out, "", err
	}
	known, err := tn.Services(ctx)
	if err != nil {
		return out, "", err
	}
	anomalies, err := tn.SearchAnomalies(ctx, store.AnomalyQuery{From: from.UnixNano(), To: to.UnixNano(), Limit: 500})
	if err != nil {
		return out, "", err
	}
	rows := serviceRows(keysOf(ctx), cur, prev, known, anomalies, prevFrom.UnixNano(), to.Sub(from))
	out.Window, out.Total = timeRange(from, to), len(rows)
	page, lines, next := offsetPage(len(rows), offset, clamp(in.Limit, 1, 200, 50), newBudget(in.MaxTokens),
		func(i int) serviceRow { return rows[i] })
	out.Services = page
	if next >= 0 {
		out.Truncated, out.NextCursor = true, encodeCursor(ctx, in, from, to, next)
	}
	out.Returned = len(out.Services)
	out.Note, out.Next = serviceSuggestions(out, in.Since)
	text := listHeader("services, worst first", out.List) + lines
	return out, text + footer(out.Note, out.Next), nil
}

func serviceRows(keys *tenantKeys, cur, prev []store.RequestStats, known []store.Service, anomalies []store.Anomaly, prevFrom int64, window time.Duration) []serviceRow {
	byService := map[string][]store.Anomaly{}
	for _, a := range anomalies {
		byService[a.Service] = append(byService[a.Service], a)
	}
	prevBy := map[string]store.RequestStats{}
	for _, p := range prev {
		prevBy[p.Key] = p
	}
	version := map[string]string{}
	names := map[string]bool{}
	for _, k := range known {
		version[k.Name] = k.Version
		if k.LastSeenNS >= prevFrom {
			names[k.Name] = true
		}
	}
	curBy := map[string]store.RequestStats{}
	for _, c := range cur {
		curBy[c.Key], names[c.Key] = c, true
	}
	for _, p := range prev {
		names[p.Key] = true
	}
	rows := make([]serviceRow, 0, len(names))
	for name := range names {
		rows = append(rows, verdict(keys, name, version[name], curBy[name], prevBy[name], byService[name], window))
	}
	sort.Slice(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if healthOrder[a.Health] != healthOrder[b.Health] {
			return healthOrder[a.Health] < healthOrder[b.Health]
		}
		if a.Requests != b.Requests {
			return a.Requests > b.Requests
		}
		return a.Name < b.Name
	})
	return rows
}

func errorPct(s store.RequestStats) float64 {
	if s.Requests == 0 {
		return 0
	}
	return 100 * float64(s.Errors) / float64(s.Requests)
}

func changePct(now, before float64) float64 {
	if before == 0 {
		return 0
	}
	return round(100*(now-before)/before, 1)
}

// ongoingAnomaly describes the newest ongoing anomaly, as critical (high severity or more) or
// degraded.
func ongoingAnomaly(keys *tenantKeys, anomalies []store.Anomaly) (critical, degraded []string) {
	for _, a := range anomalies { // newest first
		if a.EndedNS != 0 {
			continue
		}
		why := fmt.Sprintf("ongoing anomaly %s: %s %g vs usual %g", keys.anomalyRef(a.ID), a.Metric, round(a.Observed, 3), round(a.Baseline, 3))
		if severityRank(a.Severity) >= severityRank("high") {
			return []string{why}, nil
		}
		return nil, []string{why}
	}
	return nil, nil
}

// verdict judges a service from its requests in the window and the one before, and from the
// anomalies detected in the window.
func verdict(keys *tenantKeys, name, version string, c, p store.RequestStats, anomalies []store.Anomaly, window time.Duration) serviceRow {
	r := serviceRow{Name: name, Version: version, Requests: c.Requests, PerMin: round(float64(c.Requests)/window.Minutes(), 2),
		ErrorPct: round(errorPct(c), 2), P50MS: msOf(c.P50NS), P95MS: msOf(c.P95NS), P99MS: msOf(c.P99NS), Anomalies: len(anomalies)}
	critical, degraded := ongoingAnomaly(keys, anomalies)
	if c.Requests == 0 {
		switch {
		case len(critical)+len(degraded) > 0:
			r.Health, r.Reason = "degraded", strings.Join(append(critical, degraded...), "; ")+"; no requests in this window"
		case p.Requests > 0:
			r.Health, r.Reason = "no_traffic", fmt.Sprintf("no requests in this window, %d in the previous one", p.Requests)
		default:
			r.Health, r.Reason = "idle", "no incoming requests recorded (it only calls out, or is quiet)"
		}
		return r
	}
	var ch *serviceChange
	if p.Requests >= minRequests {
		ch = &serviceChange{RequestsPct: changePct(float64(c.Requests), float64(p.Requests)),
			P95Pct:         changePct(float64(c.P95NS), float64(p.P95NS)),
			ErrorPctPoints: round(errorPct(c)-errorPct(p), 2)}
		r.Change = ch
	}
	judged := c.Requests >= minRequests
	ep, usual := errorPct(c), 0.0
	if ch != nil {
		usual = errorPct(p)
	}
	errs := fmt.Sprintf("%s errors (%d of %d)", pct(ep), c.Errors, c.Requests)
	if ch != nil {
		errs += fmt.Sprintf(", %s before", pct(usual))
	}
	switch {
	case !judged || c.Errors < minErrors:
	case ep >= criticalErrorPct:
		critical = append(critical, errs)
	case ep >= degradedErrorPct && ep >= 1.5*usual+0.5:
		degraded = append(degraded, errs)
	}
	if ch != nil && judged {
		rise := fmt.Sprintf("p95 %s, up %.0f%% from %s", ms(r.P95MS), ch.P95Pct, ms(msOf(p.P95NS)))
		switch {
		case ch.P95Pct >= criticalP95Rise:
			critical = append(critical, rise)
		case ch.P95Pct >= degradedP95Rise:
			degraded = append(degraded, rise)
		}
		if ch.RequestsPct <= trafficDropPct {
			degraded = append(degraded, fmt.Sprintf("traffic down %.0f%%", -ch.RequestsPct))
		}
	}
	switch {
	case len(critical) > 0:
		r.Health, r.Reason = "critical", strings.Join(append(critical, degraded...), "; ")
	case len(degraded) > 0:
		r.Health, r.Reason = "degraded", strings.Join(degraded, "; ")
	default:
		r.Health = "ok"
		r.Reason = fmt.Sprintf("p95 %s, %s errors", ms(r.P95MS), pct(ep))
		if ch != nil {
			r.Reason += fmt.Sprintf(", p95 %+.0f%% vs previous window", ch.P95Pct)
		} else if !judged {
			r.Reason += fmt.Sprintf(", too few requests (%d) to judge", c.Requests)
		}
	}
	if n := len(anomalies); n > 0 && !strings.Contains(r.Reason, "ongoing anomaly") {
		r.Reason += fmt.Sprintf("; %d anomalies in this window (search_anomalies)", n)
	}
	return r
}

func (r serviceRow) line() string {
	v := ""
	if r.Version != "" {
		v = " v" + strings.TrimPrefix(r.Version, "v")
	}
	return fmt.Sprintf("- %s%s [%s] %s | %d req (%.1f/min) err %s p50 %s p95 %s p99 %s\n", r.Name, v, strings.ToUpper(r.Health),
		r.Reason, r.Requests, r.PerMin, pct(r.ErrorPct), ms(r.P50MS), ms(r.P95MS), ms(r.P99MS))
}

func serviceSuggestions(out listServicesOut, since string) (string, []Call) {
	if since == "" {
		since = "1h"
	}
	if out.Total == 0 {
		return "no service sent requests in this window or the previous one. Widen it (since=24h or 7d), or check that applications export traces to this tenant.",
			[]Call{{Tool: "list_services", Args: map[string]any{"since": "7d"}}}
	}
	var next []Call
	for _, s := range out.Services {
		if len(next) == 2 || (s.Health != "critical" && s.Health != "degraded") {
			break
		}
		if strings.Contains(s.Reason, "errors") {
			next = append(next, Call{Tool: "search_traces", Args: map[string]any{"service": s.Name, "status": "error", "since": since},
				Why: "failed requests of " + s.Name})
			continue
		}
		next = append(next, Call{Tool: "search_traces", Args: map[string]any{"service": s.Name, "sort": "duration", "since": since},
			Why: "slowest requests of " + s.Name})
	}
	next = append(next, Call{Tool: "search_anomalies", Args: map[string]any{"since": "24h"}, Why: "detected anomalies and their root causes"})
	return "", next
}
