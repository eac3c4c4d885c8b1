package demo

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Incident is a labelled anomaly in the demo traffic: what an analysis should find (Service, Operation,
// Metric, window) and why it happened (Cause).
type Incident struct {
	ID          string    `json:"id"`
	Kind        string    `json:"kind"` // latency, error_rate, llm_cost, throughput or queue_lag
	Service     string    `json:"service"`
	Operation   string    `json:"operation"`
	Metric      string    `json:"metric"`
	Start       time.Time `json:"start"`
	End         time.Time `json:"end"`
	Cause       Cause     `json:"cause"`
	Description string    `json:"description"`
}

// Cause is the root cause of an incident, named by the span attribute that reveals it.
type Cause struct {
	Type        string `json:"type"` // db_statement, dependency, model_switch, version
	Service     string `json:"service"`
	Attribute   string `json:"attribute"`
	Value       string `json:"value"`
	Description string `json:"description"`
}

// WriteIncidents writes the incidents as indented JSON, for scoring an analysis later.
func WriteIncidents(path string, incidents []Incident) error {
	b, err := json.MarshalIndent(incidents, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write incidents: %w", err)
	}
	return nil
}

// window is a half-open interval of Unix nanoseconds.
type window struct{ start, end int64 }

func (w window) has(t int64) bool { return t >= w.start && t < w.end }

func (w window) times() (time.Time, time.Time) {
	return time.Unix(0, w.start).UTC(), time.Unix(0, w.end).UTC()
}

// schedule says when each incident happens.
type schedule struct {
	payment   window // payment-service 2.4.0 with the slow query
	inventory window // inventory-service primary pool exhausted
	llm       window // recommendation-service on gpt-4o
	more      moreSchedule
}

// newSchedule places the incidents in the last 24 hours before end (the whole run when shorter),
// starting at least three "hours" (24ths of that span) into it, so that anomaly detection has a
// baseline, ending at least an "hour" before end and forty "minutes" apart (so that the anomalies
// one incident leaves in its callers end before the next begins), at the busiest free times of day
// so each has enough traffic to be seen. Incidents seen on one route of a service, and those of
// services few requests reach, are placed first: they need the busiest slots most. Lengths scale with the span
// so a short run still shows them.
func newSchedule(end time.Time, d time.Duration) schedule {
	span := min(d, 24*time.Hour)
	hour := span / 24
	lo, hi := end.Add(-span+3*hour), end.Add(-hour)
	var placed []window
	var s schedule
	for _, p := range []struct {
		w      *window
		length time.Duration
	}{
		{&s.more.profile, hour}, {&s.more.stockLock, 45 * hour / 60}, {&s.inventory, 40 * hour / 60},
		{&s.payment, 90 * hour / 60}, {&s.more.provider, hour}, {&s.more.consumer, 45 * hour / 60}, {&s.more.search, hour},
		{&s.more.retries, hour}, {&s.llm, 90 * hour / 60}, {&s.more.neighbour, hour}, {&s.more.cache, 45 * hour / 60},
	} {
		*p.w = busiest(lo, hi, p.length, 40*hour/60, placed, end.Location())
		placed = append(placed, *p.w)
	}
	return s
}

// busiest is the window of length within [from, to], starting on a 5-minute mark and at least gap
// away from the taken windows, with the most expected traffic; the earliest wins a tie.
func busiest(from, to time.Time, length, gap time.Duration, taken []window, loc *time.Location) window {
	const step = 5 * time.Minute
	first := from.Truncate(step)
	if first.Before(from) {
		first = first.Add(step)
	}
	best, bestScore := window{first.UnixNano(), first.Add(length).UnixNano()}, -1.0
	for s := first; !s.Add(length).After(to); s = s.Add(step) {
		w := window{s.UnixNano(), s.Add(length).UnixNano()}
		if slices.ContainsFunc(taken, func(t window) bool {
			return w.start < t.end+int64(gap) && t.start < w.end+int64(gap)
		}) {
			continue
		}
		score := 0.0
		for t := s; t.Before(s.Add(length)); t = t.Add(step) {
			score += diurnal(t.In(loc))
		}
		if score > bestScore+1e-9 {
			best, bestScore = w, score
		}
	}
	return best
}

const (
	slowPaymentsQuery = "SELECT id, order_id, amount_cents, currency, status, created_at FROM payments WHERE customer_id = $1 ORDER BY created_at DESC LIMIT 20"
	poolExhausted     = "ConnectionPoolExhausted"
)

// incidents labels the schedule, earliest first.
func (s schedule) incidents() []Incident {
	ps, pe := s.payment.times()
	is, ie := s.inventory.times()
	ls, le := s.llm.times()
	incs := []Incident{{
		ID:        "payment-latency-regression",
		Kind:      "latency",
		Service:   "payment-service",
		Operation: "POST /v1/charges",
		Metric:    "p95_duration",
		Start:     ps,
		End:       pe,
		Cause: Cause{
			Type:      "db_statement",
			Service:   "payment-service",
			Attribute: "db.statement",
			Value:     slowPaymentsQuery,
			Description: fmt.Sprintf("payment-service %s (deployed %s, replacing %s) dropped the index on payments(customer_id, created_at); "+
				"the recent-payments query became a sequential scan (~3 ms to ~2 s). Rolled back to %s at %s.",
				paymentBadVersion, ps.Format(time.RFC3339), paymentGoodVersion, paymentGoodVersion, pe.Format(time.RFC3339)),
		},
		Description: "p95 of payment-service POST /v1/charges and of frontend POST /checkout rose several times while payment-service ran " + paymentBadVersion + ".",
	}, {
		ID:        "checkout-errors-inventory-pool",
		Kind:      "error_rate",
		Service:   "checkout-service",
		Operation: "POST /v1/checkout",
		Metric:    "error_rate",
		Start:     is,
		End:       ie,
		Cause: Cause{
			Type:      "dependency",
			Service:   "inventory-service",
			Attribute: "exception.type",
			Value:     poolExhausted,
			Description: "inventory-service exhausted its connection pool to the primary inventory database; stock reservations and " +
				"cart stock checks failed with 503 after a 1 s pool timeout.",
		},
		Description: "Most POST /checkout (and POST /cart/items) requests failed: inventory-service returned 503, checkout-service " +
			"returned 503 and the error propagated through api-gateway to frontend.",
	}, {
		ID:        "llm-cost-spike-recommendations",
		Kind:      "llm_cost",
		Service:   "recommendation-service",
		Operation: "chat " + gpt4o.name,
		Metric:    "llm_cost_usd",
		Start:     ls,
		End:       le,
		Cause: Cause{
			Type:      "model_switch",
			Service:   "recommendation-service",
			Attribute: "gen_ai.request.model",
			Value:     gpt4o.name,
			Description: "A configuration change switched recommendation-service from " + gpt4oMini.name + " to " + gpt4o.name +
				" and doubled the candidate products in the prompt (about twice the input tokens).",
		},
		Description: "LLM spend of recommendation-service rose more than tenfold, and total LLM spend several times, until the change was reverted.",
	}}
	incs = append(incs, s.more.incidents()...)
	slices.SortFunc(incs, func(a, b Incident) int { return a.Start.Compare(b.Start) })
	return incs
}
