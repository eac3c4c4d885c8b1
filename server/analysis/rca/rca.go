// Package rca ranks the likely root causes of an anomaly by comparing requests of the anomalous
// window with requests from before it: which spans' own time on the critical path grew, where
// failures originate, which attribute values (a version, a host, a model, a statement, a peer)
// single out the bad requests, and which callers send the extra traffic. Each cause carries a
// confidence, figures and example trace ids; the report carries a paragraph an assistant can quote.
package rca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
)

// Kinds of cause.
const (
	KindDBStatement   = "db_statement"   // a database statement became slow
	KindDependency    = "dependency"     // a called service or external API is slow or failing
	KindLLMModel      = "llm_model"      // a change of language model
	KindPromptSize    = "prompt_size"    // more tokens per LLM call
	KindVersion       = "version_change" // a deployment
	KindHost          = "host"           // one host (pod) behaves differently: a noisy neighbour
	KindOperation     = "slow_operation" // the service's own code in one operation
	KindErrorOrigin   = "error_origin"   // the service itself raises the errors
	KindRetryStorm    = "retry_storm"    // a caller retries, multiplying requests
	KindTrafficSource = "traffic_source" // a caller sends more requests
	KindFallback      = "fallback"       // a dependency fails and a fallback (e.g. the database behind a cache) takes over
	KindSelfTime      = "self_time"      // all of a service's own code is slower, none of its calls
	KindQueueLag      = "queue_lag"      // a consumer falls behind: messages wait longer on the queue
)

// Figure is one number of the evidence, before and during the anomaly.
type Figure struct {
	Name      string  `json:"name"`
	Baseline  float64 `json:"baseline"`
	Anomalous float64 `json:"anomalous"`
	Unit      string  `json:"unit,omitempty"`
}

// Cause is one ranked candidate.
type Cause struct {
	Rank        int      `json:"rank"`
	Kind        string   `json:"kind"`
	Service     string   `json:"service"`
	Operation   string   `json:"operation,omitempty"`
	Attribute   string   `json:"attribute,omitempty"` // the span attribute that singles the cause out
	Value       string   `json:"value,omitempty"`
	Confidence  float64  `json:"confidence"` // 0..1
	Description string   `json:"description"`
	Figures     []Figure `json:"figures,omitempty"`
	// TraceIDs are anomalous requests showing the cause: open them with get_trace_detail.
	TraceIDs []string `json:"trace_ids,omitempty"`
}

// Report is a root-cause analysis.
type Report struct {
	AnomalyID int64   `json:"anomaly_id"`
	Summary   string  `json:"summary"`
	Causes    []Cause `json:"causes"`
	// The windows compared, unix nanoseconds.
	FromNS, ToNS, BaselineFromNS, BaselineToNS int64
	// Requests compared: from the anomalous window (slow or failed ones when the anomaly is about
	// latency or errors) and from the baseline.
	Anomalous, Baseline int
}

// maxCauses bounds a report: an assistant reads all of it.
const maxCauses = 5

// Sample sizes: enough requests that a cause present in most bad ones stands out, few enough that
// an analysis reads a few thousand spans whatever the traffic.
const (
	sampleSlices   = 40
	samplePerSlice = 5
)

// Analyze computes the root-cause analysis of an anomaly, stores it (replacing an earlier one) and
// returns it as stored. It returns store.ErrNotFound for an unknown anomaly.
func Analyze(ctx context.Context, t *store.Tenant, anomalyID int64) (store.RCAReport, error) {
	r, err := Compute(ctx, t, anomalyID, time.Now())
	if err != nil {
		return store.RCAReport{}, err
	}
	causes, err := json.Marshal(r.Causes)
	if err != nil {
		return store.RCAReport{}, err
	}
	rep := store.RCAReport{AnomalyID: anomalyID, CreatedNS: time.Now().UnixNano(), Summary: r.Summary, Causes: causes}
	if err := t.SaveRCAReport(ctx, rep); err != nil {
		return store.RCAReport{}, err
	}
	return rep, nil
}

// Compute analyses an anomaly without storing the result. now bounds an anomaly still open.
func Compute(ctx context.Context, t *store.Tenant, anomalyID int64, now time.Time) (Report, error) {
	a, err := t.AnomalyRecord(ctx, anomalyID)
	if err != nil {
		return Report{}, err
	}
	figures, err := anomaly.ParseDetails(a.Details)
	if err != nil || len(figures) == 0 {
		// An anomaly recorded by something else than the detector: analyse its one metric.
		figures = map[string]anomaly.Details{a.Metric: {Metric: a.Metric, Operation: a.Operation, Baseline: a.Baseline, Observed: a.Observed}}
	}
	r := Report{AnomalyID: anomalyID, FromNS: a.StartedNS, ToNS: a.EndedNS}
	if r.ToNS == 0 {
		r.ToNS = min(max(a.LastSeenNS, a.StartedNS+int64(15*time.Minute)), now.UnixNano())
	}
	if r.ToNS <= r.FromNS {
		return r, errors.New("anomaly has an empty time range")
	}
	// The baseline: up to three times the anomaly's length (one to six hours) before it, with a gap
	// for an imprecise start.
	length := min(max(3*(r.ToNS-r.FromNS), int64(time.Hour)), int64(6*time.Hour))
	if err := r.baselineBefore(ctx, t, a, length); err != nil {
		return r, err
	}

	an := &analysis{t: t, a: a, r: &r}
	for _, m := range []string{anomaly.LatencyP95, anomaly.ErrorRate, anomaly.QueueLag, anomaly.Throughput, anomaly.LLMCost, anomaly.LLMTokens} {
		d, ok := figures[m]
		if !ok {
			continue
		}
		// Causes of the anomaly's headline metric come first when confidences are close.
		weight := 0.9
		if m == a.Metric {
			weight = 1
		}
		var cs []Cause
		switch m {
		case anomaly.LatencyP95:
			cs, err = an.latency(ctx, d)
		case anomaly.ErrorRate:
			cs, err = an.failures(ctx, d)
		case anomaly.Throughput:
			cs, err = an.throughput(ctx, d)
		case anomaly.QueueLag:
			cs, err = an.queueLag(ctx, d)
		default:
			cs, err = an.llm(ctx, m)
		}
		if err != nil {
			return r, fmt.Errorf("root cause of anomaly %d (%s): %w", anomalyID, m, err)
		}
		for _, c := range cs {
			c.Confidence = clamp(c.Confidence * weight)
			an.causes = append(an.causes, c)
		}
	}
	r.Causes = rank(an.causes)
	r.Summary = summary(a, &r)
	if len(r.Causes) > 0 {
		same, err := sameIncident(ctx, t, a, r.Causes[0], r.FromNS, r.ToNS)
		if err != nil {
			return r, err
		}
		if same != nil {
			r.Summary += fmt.Sprintf(" The same incident shows as anomaly #%d of %s, where the cause lies.", same.ID, same.Service)
		}
	}
	return r, nil
}

// sameIncident finds an anomaly, overlapping [from, to), of the service the top cause lies in when
// that is another service: an incident that propagated to callers shows as several anomalies, and
// this one points at the one closest to the cause.
func sameIncident(ctx context.Context, t *store.Tenant, a store.AnomalyRecord, top Cause, from, to int64) (*store.AnomalyRecord, error) {
	if top.Service == a.Service {
		return nil, nil
	}
	recs, err := t.AnomalyRecords(ctx, from)
	if err != nil {
		return nil, err
	}
	for i, e := range recs {
		end := e.EndedNS
		if end == 0 {
			end = max(e.LastSeenNS, to)
		}
		if e.Service == top.Service && e.ID != a.ID && e.StartedNS < to && end > from {
			return &recs[i], nil
		}
	}
	return nil, nil
}

// baselineBefore places the baseline window of length before the anomaly and before any earlier
// anomaly of the same service that would overlap it: an incident detected as two episodes must not
// serve as the baseline of its second half.
func (r *Report) baselineBefore(ctx context.Context, t *store.Tenant, a store.AnomalyRecord, length int64) error {
	gap := int64(5 * time.Minute)
	r.BaselineToNS = r.FromNS - gap
	earlier, err := t.AnomalyRecords(ctx, r.BaselineToNS-length-int64(24*time.Hour))
	if err != nil {
		return err
	}
	sort.Slice(earlier, func(i, j int) bool { return earlier[i].StartedNS > earlier[j].StartedNS })
	for _, e := range earlier {
		end := e.EndedNS
		if end == 0 {
			end = e.LastSeenNS
		}
		if e.Service == a.Service && e.ID != a.ID && e.StartedNS < r.BaselineToNS && end > r.BaselineToNS-length {
			r.BaselineToNS = e.StartedNS - gap
		}
	}
	r.BaselineFromNS = r.BaselineToNS - length
	return nil
}

type analysis struct {
	t      *store.Tenant
	a      store.AnomalyRecord
	r      *Report
	causes []Cause
}

func clamp(x float64) float64 { return min(max(x, 0), 0.99) }

// rank orders causes by confidence and keeps the first of each (kind, service, attribute, value).
func rank(cs []Cause) []Cause {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Confidence > cs[j].Confidence })
	seen := map[string]bool{}
	var out []Cause
	for _, c := range cs {
		// The same attribute value found by two analyses is one cause.
		k := c.Kind + "\x00" + c.Service + "\x00" + c.Attribute + "\x00" + c.Value
		if c.Attribute == "" {
			k += "\x00" + c.Operation
		}
		if seen[k] || c.Confidence < 0.05 {
			continue
		}
		seen[k] = true
		c.Rank = len(out) + 1
		out = append(out, c)
		if len(out) == maxCauses {
			break
		}
	}
	return out
}

// summary is the paragraph an assistant quotes.
func summary(a store.AnomalyRecord, r *Report) string {
	var b strings.Builder
	at := func(ns int64) string { return time.Unix(0, ns).UTC().Format("2006-01-02 15:04 UTC") }
	fmt.Fprintf(&b, "%s", strings.TrimSuffix(a.Summary, "."))
	if a.EndedNS != 0 {
		fmt.Fprintf(&b, ", from %s to %s.", at(a.StartedNS), at(a.EndedNS))
	} else {
		fmt.Fprintf(&b, ", since %s (ongoing).", at(a.StartedNS))
	}
	if len(r.Causes) == 0 {
		fmt.Fprintf(&b, " No cause stands out: the %d anomalous requests compared with %d earlier ones differ in no span, attribute or caller; look at the slowest traces of %s in the window.", r.Anomalous, r.Baseline, a.Service)
		return b.String()
	}
	top := r.Causes[0]
	fmt.Fprintf(&b, " Most likely cause (confidence %.0f%%): %s", 100*top.Confidence, top.Description)
	// The other causes and the example traces are in the causes beside the summary: naming them is
	// enough, repeating their descriptions made a report too long to read in full.
	if len(r.Causes) > 1 {
		var others []string
		for _, c := range r.Causes[1:min(len(r.Causes), 3)] {
			others = append(others, fmt.Sprintf("%s of %s (%.0f%%)", strings.ReplaceAll(c.Kind, "_", " "), c.Service, 100*c.Confidence))
		}
		fmt.Fprintf(&b, " Also consider: %s.", strings.Join(others, "; "))
	}
	return b.String()
}

func ms(ns float64) string {
	switch {
	case ns >= 1e9:
		return fmt.Sprintf("%.2f s", ns/1e9)
	case ns >= 10e6:
		return fmt.Sprintf("%.0f ms", ns/1e6)
	}
	return fmt.Sprintf("%.1f ms", ns/1e6)
}

func pct(x float64) string { return fmt.Sprintf("%.0f%%", 100*x) }

func short(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
