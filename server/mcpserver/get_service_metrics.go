package mcpserver

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/google/jsonschema-go/jsonschema"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/analysis/metrics"
	"github.com/tracekit/tracekit/server/store"
)

type getServiceMetricsIn struct {
	Service     string `json:"service"`
	Operation   string `json:"operation,omitempty"`
	ByOperation bool   `json:"by_operation,omitempty" jsonschema:"also break down per operation"`
	Step        string `json:"step,omitempty" jsonschema:"bucket size, e.g. 5m; default about 12 points"`
	Window
	MaxTokens int `json:"max_tokens,omitempty"`
}

type requestStats struct {
	Requests int64   `json:"requests"`
	ErrorPct float64 `json:"error_pct"`
	P50MS    float64 `json:"p50_ms"`
	P90MS    float64 `json:"p90_ms"`
	P95MS    float64 `json:"p95_ms"`
	P99MS    float64 `json:"p99_ms"`
}

type metricPoint struct {
	T string `json:"t"`
	requestStats
	// QueueLagP95MS is, for a service consuming messages, the p95 of how long they waited on the
	// queue before it consumed them.
	QueueLagP95MS *float64 `json:"queue_lag_p95_ms,omitempty"`
}

// queueLagStats is how long the messages one consumer operation handled waited on their queue:
// the consumer span's start less the end of the producer span it descends from.
type queueLagStats struct {
	Operation string  `json:"operation"`
	Messages  int64   `json:"messages"`
	P50MS     float64 `json:"p50_ms"`
	P95MS     float64 `json:"p95_ms"`
}

type operationStats struct {
	Operation string `json:"operation"`
	requestStats
}

type getServiceMetricsOut struct {
	Service    string           `json:"service"`
	Operation  string           `json:"operation,omitempty"`
	Window     TimeRange        `json:"window"`
	Step       string           `json:"step"`
	Total      requestStats     `json:"total"`
	PerMin     float64          `json:"per_min"`
	Series     []metricPoint    `json:"series"`
	Operations []operationStats `json:"operations,omitempty"`
	QueueLag   []queueLagStats  `json:"queue_lag,omitempty"`
	Truncated  bool             `json:"truncated"`
	Note       string           `json:"note,omitempty"`
	Next       []Call           `json:"next,omitempty"`
}

var niceSteps = []time.Duration{time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour}

// Series sizing: the default aims at defaultPoints; a requested step is coarsened to fit the budget.
const (
	defaultPoints   = 12
	charsPerPoint   = 230 // JSON and text of one point
	charsPerOp      = 220
	maxOperationRow = 25
)

func (tl *tools) addGetServiceMetrics(s *mcp.Server) {
	addTool(s, tl, &mcp.Tool{
		Name: "get_service_metrics",
		Description: "One service's latency p50/p90/p95/p99, error % and throughput over a window as a time series, " +
			"optionally for one operation or broken down per operation; for a service consuming messages also their queue lag " +
			"(how long they waited between producer and consumer). Use to see when a regression started.",
	}, func(p map[string]*jsonschema.Schema) {
		p["service"].MinLength = new(1)
		windowSchema(p, "1h")
		def(p["max_tokens"], defaultMaxTokens)
		bounds(p["max_tokens"], minMaxTokens, hardMaxTokens)
	}, tl.getServiceMetrics)
}

func (tl *tools) getServiceMetrics(ctx context.Context, tn *store.Tenant, in getServiceMetricsIn) (getServiceMetricsOut, string, error) {
	var out getServiceMetricsOut
	from, to, err := in.Window.resolve(tl.now(), time.Hour)
	if err != nil {
		return out, "", err
	}
	window := to.Sub(from)
	b := newBudget(in.MaxTokens)
	opsChars := 0
	if in.ByOperation {
		opsChars = min(b.left/3, maxOperationRow*charsPerOp)
	}
	maxPoints := max((b.left-opsChars)/charsPerPoint, 2)
	step, note, err := chooseStep(in.Step, window, maxPoints)
	if err != nil {
		return out, "", err
	}
	// Rollups keep minutes; buckets are multiples of the step since the epoch, so the window starts
	// on one and ends on a whole minute.
	from = time.Unix(0, from.UnixNano()-from.UnixNano()%int64(step)).UTC()
	if from, to, err = minuteWindow(from, to); err != nil {
		return out, "", err
	}
	window = to.Sub(from)
	m, err := metrics.ServiceMetrics(ctx, tn, store.MetricsQuery{Service: in.Service, Operation: in.Operation, From: from.UnixNano(),
		To: to.UnixNano(), StepNS: int64(step), ByOperation: in.ByOperation})
	if err != nil {
		return out, "", err
	}
	out.Service, out.Operation, out.Window, out.Step = in.Service, in.Operation, timeRange(from, to), fmtStep(step)
	if m.Total.Requests == 0 {
		if err := tl.checkService(ctx, tn, in.Service); err != nil {
			return out, "", err
		}
		out.Series = []metricPoint{}
		out.Note = fmt.Sprintf("%s had no requests in this window. Widen it (e.g. since=24h or 7d) or check operation.", in.Service)
		out.Next = []Call{{Tool: "list_services", Args: map[string]any{"since": "24h"}, Why: "services with traffic"}}
		return out, out.text(), nil
	}
	out.Total, out.PerMin = toStats(m.Total), round(float64(m.Total.Requests)/window.Minutes(), 2)
	// Empty buckets are kept as zero points: a gap in traffic is information.
	lagOps, lagSeries, err := metrics.QueueLag(ctx, tn, store.MetricsQuery{Service: in.Service, Operation: in.Operation,
		From: from.UnixNano(), To: to.UnixNano(), StepNS: int64(step)})
	if err != nil {
		return out, "", err
	}
	byBucket, lagByBucket := map[int64]store.RequestStats{}, map[int64]float64{}
	for _, s := range m.Series {
		ns, _ := strconv.ParseInt(s.Key, 10, 64)
		byBucket[ns] = s
	}
	for _, s := range lagSeries {
		ns, _ := strconv.ParseInt(s.Key, 10, 64)
		lagByBucket[ns] = msOf(s.P95NS)
	}
	for t := from.UnixNano(); t < to.UnixNano(); t += int64(step) {
		p := metricPoint{T: stamp(time.Unix(0, t)), requestStats: toStats(byBucket[t])}
		if lag, ok := lagByBucket[t]; ok {
			p.QueueLagP95MS = &lag
		}
		out.Series = append(out.Series, p)
	}
	for _, o := range lagOps {
		out.QueueLag = append(out.QueueLag, queueLagStats{Operation: o.Key, Messages: o.Requests, P50MS: msOf(o.P50NS), P95MS: msOf(o.P95NS)})
	}
	sort.Slice(m.Operations, func(i, j int) bool { return m.Operations[i].Requests > m.Operations[j].Requests })
	for i, o := range m.Operations {
		if i == maxOperationRow || (i > 0 && (i+1)*charsPerOp > opsChars) {
			out.Truncated = true
			note = strings.TrimSpace(note + fmt.Sprintf(" %d operations with fewer requests left out; pass operation to see one.", len(m.Operations)-i))
			break
		}
		out.Operations = append(out.Operations, operationStats{Operation: o.Key, requestStats: toStats(o)})
	}
	out.Note = note
	out.Next = []Call{
		{Tool: "search_traces", Args: map[string]any{"service": in.Service, "sort": "duration", "since": fmtStep(window)}, Why: "the slowest requests"},
		{Tool: "search_anomalies", Args: map[string]any{"service": in.Service, "since": fmtStep(window)}, Why: "detected deviations"},
	}
	return out, out.text(), nil
}

// checkService turns a query for an unknown service into an argument error naming the known ones.
func (tl *tools) checkService(ctx context.Context, tn *store.Tenant, name string) error {
	known, err := tn.Services(ctx)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(known))
	for _, k := range known {
		if k.Name == name {
			return nil
		}
		names = append(names, k.Name)
	}
	if len(names) == 0 {
		return badArg("service %q is unknown: this tenant has received no spans yet", name)
	}
	if len(names) > 30 {
		names = append(names[:30], "…")
	}
	return badArg("service %q is unknown; services are: %s", name, strings.Join(names, ", "))
}

func toStats(s store.RequestStats) requestStats {
	return requestStats{Requests: s.Requests, ErrorPct: round(errorPct(s), 2), P50MS: msOf(s.P50NS), P90MS: msOf(s.P90NS),
		P95MS: msOf(s.P95NS), P99MS: msOf(s.P99NS)}
}

// chooseStep returns the bucket size: the requested one when the series fits, else the smallest nice
// step that fits maxPoints, with a note saying so.
func chooseStep(arg string, window time.Duration, maxPoints int) (time.Duration, string, error) {
	if arg != "" {
		step, err := parseSince(arg)
		if err != nil {
			return 0, "", badArg("step %q is not a duration: use e.g. 1m, 5m, 1h", arg)
		}
		step = max(step, time.Minute).Round(time.Minute) // rollups keep minutes
		points := int((window + step - 1) / step)
		if points <= maxPoints {
			return step, "", nil
		}
		coarse := niceStep(window, maxPoints)
		return coarse, fmt.Sprintf("step %s would give %d points; used %s to fit the answer budget.", arg, points, fmtStep(coarse)), nil
	}
	return niceStep(window, min(defaultPoints, maxPoints)), "", nil
}

func niceStep(window time.Duration, points int) time.Duration {
	for _, s := range niceSteps {
		if int((window+s-1)/s) <= points {
			return s
		}
	}
	return niceSteps[len(niceSteps)-1]
}

// fmtStep renders a duration as since and step arguments accept it.
func fmtStep(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	case d%time.Hour == 0:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d%time.Minute == 0:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	}
	return strconv.Itoa(int(d/time.Second)) + "s"
}

func (s requestStats) String() string {
	return fmt.Sprintf("%d req, err %s, p50 %s p90 %s p95 %s p99 %s", s.Requests, pct(s.ErrorPct), ms(s.P50MS), ms(s.P90MS), ms(s.P95MS), ms(s.P99MS))
}

func (o getServiceMetricsOut) text() string {
	var b strings.Builder
	name := o.Service
	if o.Operation != "" {
		name += " " + o.Operation
	}
	fmt.Fprintf(&b, "%s, %s, step %s: %s (%.1f/min)\n", name, o.Window, o.Step, o.Total, o.PerMin)
	for _, p := range o.Series {
		lag := ""
		if p.QueueLagP95MS != nil {
			lag = ", queue lag p95 " + ms(*p.QueueLagP95MS)
		}
		fmt.Fprintf(&b, "- %s %s%s\n", p.T, p.requestStats, lag)
	}
	if len(o.QueueLag) > 0 {
		b.WriteString("Queue lag (consumer start less producer end):\n")
		for _, q := range o.QueueLag {
			fmt.Fprintf(&b, "- %s: %d messages, p50 %s p95 %s\n", q.Operation, q.Messages, ms(q.P50MS), ms(q.P95MS))
		}
	}
	if len(o.Operations) > 0 {
		b.WriteString("By operation:\n")
		for _, op := range o.Operations {
			fmt.Fprintf(&b, "- %s: %s\n", op.Operation, op.requestStats)
		}
	}
	return b.String() + footer(o.Note, o.Next)
}
