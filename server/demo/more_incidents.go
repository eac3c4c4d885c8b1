package demo

import (
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// More incidents, so that anomaly detection and root-cause analysis are scored on every kind
// of cause the analysis is meant to find: a slow external dependency, a regression in a service's
// own code shipped by a deployment, a noisy neighbour on one host, a retry storm, faults deep in
// the call graph that only one or two routes of the public API see, a cache outage whose fallback
// floods the database, and a message consumer falling behind.
type moreSchedule struct {
	provider  window // Anthropic's API slow behind the llm-gateway
	search    window // search-service 2.1.0 with a slow re-ranker
	neighbour window // one inventory-service pod starved of CPU
	retries   window // recommendation-service retrying user-service history calls
	profile   window // user-service's profile query without its index, seen on two gateway routes
	stockLock window // inventory-service's stock check waiting on a lock, seen on one gateway route
	cache     window // the shared Redis cache down: inventory-service reads every product from the database
	consumer  window // activity-service's consumer group down to one member, falling behind
}

const (
	searchBadVersion = "2.1.0"
	noisyPod         = 2
	// historyTimeout is the timeout recommendation-service's history client used during the retry
	// storm: a configuration meant in seconds, read as milliseconds.
	historyTimeout = int64(3 * time.Millisecond)
	maxResends     = 9
)

// noisyHost is the inventory-service pod that shares its node with a CPU-hungry neighbour.
var noisyHost = resources{}.get(inventory, inventory.version, noisyPod).host

// profileQuery is user-service's profile read, slow during the profile incident: a migration
// dropped the index it uses.
const profileQuery = "SELECT id, email, display_name, tier, created_at FROM users WHERE id = $1"

// profileQueryTime is the median and p95 of the profile query at the trace's time, in ms. Only the
// figures change, so the random draws (and all later traces) stay the same.
func (t *trace) profileQueryTime() (float64, float64) {
	if t.g.sched.more.profile.has(t.at) {
		return 250, 600
	}
	return 1.5, 6
}

func (m moreSchedule) incidents() []Incident {
	at := func(w window) (time.Time, time.Time) { return w.times() }
	ps, pe := at(m.provider)
	qs, qe := at(m.search)
	ns, ne := at(m.neighbour)
	rs, re := at(m.retries)
	us, ue := at(m.profile)
	ks, ke := at(m.stockLock)
	cs, ce := at(m.cache)
	as, ae := at(m.consumer)
	return []Incident{{
		ID: "cart-stock-lock-wait", Kind: "latency", Service: "api-gateway", Operation: "POST /api/cart/items", Metric: "p95_duration",
		Start: ks, End: ke,
		Cause: Cause{Type: "db_statement", Service: "inventory-service", Attribute: "db.statement", Value: stockCheckQuery,
			Description: "A stock re-count job held row locks on the stock table: inventory-service's stock check (SELECT … FOR SHARE) waited ~300 ms for them instead of ~1.5 ms."},
		Description: "Adding to the cart (POST /api/cart/items, 8 % of the gateway's requests, through checkout-service to inventory-service) became many times slower; the rest of the API was unchanged.",
	}, {
		ID: "cache-outage-fallback", Kind: "latency", Service: "inventory-service", Metric: "p95_duration",
		Start: cs, End: ce,
		Cause: Cause{Type: "fallback", Service: "inventory-service",
			Description: "The shared Redis cache (" + cacheRedis.host + ") lost its pod: every GET was refused, and inventory-service fell back to the replica, loading each product of a listing page one by one."},
		Description: "inventory-service's cache reads all failed and its database calls per request jumped several-fold (a listing page: one query became 24); its p95 rose several times.",
	}, {
		ID: "activity-consumer-lag", Kind: "queue_lag", Service: activity.name, Operation: activityTopic + " process", Metric: "queue_lag",
		Start: as, End: ae,
		Cause: Cause{Type: "queue_lag", Service: activity.name,
			Description: "activity-service's consumer group was down to one member (the other pod kept failing to rejoin), which could not keep up: messages waited minutes on the " + activityTopic + " topic. The time spent on each message did not change."},
		Description: "The lag of the " + activityTopic + " topic grew to several minutes; the backlog drained within minutes once both consumers ran again.",
	}, {
		ID: "account-profile-slow", Kind: "latency", Service: "api-gateway", Operation: "GET /api/account", Metric: "p95_duration",
		Start: us, End: ue,
		Cause: Cause{Type: "db_statement", Service: "user-service", Attribute: "db.statement", Value: profileQuery,
			Description: "A migration dropped the index of user-service's profile query (users by id): ~1.5 ms became ~250 ms."},
		Description: "Two public routes that read the profile (GET /api/account, POST /api/assistant/chat, 9 % of the gateway's requests) became several times slower; the rest of the API was unchanged.",
	}, {
		ID: "llm-provider-slow", Kind: "latency", Service: "support-assistant", Operation: "POST /v1/chat", Metric: "p95_duration",
		Start: ps, End: pe,
		Cause: Cause{Type: "dependency", Service: "llm-gateway", Attribute: "peer.service", Value: sonnet.provider,
			Description: "Anthropic's API was overloaded and queued requests for about fifteen seconds before answering."},
		Description: "p95 of support-assistant POST /v1/chat (and of the llm-gateway) rose several times; the assistant's own code was unchanged.",
	}, {
		ID: "search-rerank-regression", Kind: "latency", Service: "search-service", Operation: "GET /v1/search", Metric: "p95_duration",
		Start: qs, End: qe,
		Cause: Cause{Type: "version", Service: "search-service", Attribute: "service.version", Value: searchBadVersion,
			Description: "search-service " + searchBadVersion + " re-ranks results with a new model in-process (search.rerank ~3 ms to ~400 ms); rolled back after an hour."},
		Description: "p95 of search-service GET /v1/search rose about tenfold while " + searchBadVersion + " was deployed.",
	}, {
		ID: "inventory-noisy-neighbour", Kind: "latency", Service: "inventory-service", Metric: "p95_duration",
		Start: ns, End: ne,
		Cause: Cause{Type: "host", Service: "inventory-service", Attribute: "host.name", Value: noisyHost,
			Description: "A batch job on the node of pod " + noisyHost + " starved it of CPU: every request it served took ~60 ms longer."},
		Description: "A third of inventory-service requests, those served by one pod, became several times slower.",
	}, {
		ID: "user-service-retry-storm", Kind: "throughput", Service: "user-service", Operation: "GET /v1/users/{id}/history", Metric: "throughput",
		Start: rs, End: re,
		Cause: Cause{Type: "retry_storm", Service: "recommendation-service", Attribute: "http.request.resend_count",
			Description: "A configuration change set recommendation-service's history client timeout to 3 ms (meant as seconds): every call timed out and was retried up to nine times."},
		Description: "user-service received several times its usual share of requests, nearly all GET /v1/users/{id}/history from recommendation-service.",
	}}
}

// stockCheckQuery is inventory-service's stock check before adding to the cart; it waits on row
// locks during the stock-lock incident.
const stockCheckQuery = "SELECT available, reserved FROM stock WHERE product_id = $1 FOR SHARE"

// stockCheckTime is the median and p95 of the stock check at the trace's time, in ms.
func (t *trace) stockCheckTime() (float64, float64) {
	if t.g.sched.more.stockLock.has(t.at) {
		return 300, 900
	}
	return 1.5, 6
}

// cacheDown says whether the shared cache refuses connections at the trace's time.
func (t *trace) cacheDown() bool { return t.g.sched.more.cache.has(t.at) }

// cacheGet is a read of the shared cache; it returns false (after the refused attempt) while the
// cache is down.
func (t *trace) cacheGet(s *span, stmt string, at int64) (int64, bool) {
	g := t.g
	if !t.cacheDown() {
		return t.db(s, cacheRedis, "GET", "", stmt, at, g.lognorm(0.3, 1.2)).done(), true
	}
	d := t.db(s, cacheRedis, "GET", "", stmt, at, g.lognorm(0.8, 3))
	d.set(str("error.type", "ConnectionRefused"))
	d.fail(d.done(), "dial tcp "+cacheRedis.host+":6379: connect: connection refused", "redis.exceptions.ConnectionError")
	return d.done(), false
}

// activityLag is how long a message of the activity topic published at the trace's time waits
// before activity-service consumes it: tens of milliseconds, but during the consumer incident the
// backlog grows by six seconds a minute, and once both consumers run again it drains at twice
// that rate.
func (t *trace) activityLag() int64 {
	w, normal := t.g.sched.more.consumer, t.g.lognorm(8, 40)
	if t.at < w.start {
		return normal
	}
	const growth, drain = 0.1, 0.2
	backlog := growth * float64(min(t.at, w.end)-w.start)
	if t.at >= w.end {
		backlog -= drain * float64(t.at-w.end)
	}
	return normal + int64(max(backlog, 0))
}

// providerDelay is how much longer a model of m's provider takes to answer at the trace's time.
func (t *trace) providerDelay(m *model) int64 {
	if m.provider != sonnet.provider || !t.g.sched.more.provider.has(t.at) {
		return 0
	}
	return t.g.lognorm(15000, 25000)
}

// rerankTime is how long search-service's re-ranking takes: the new model of the bad version is
// slow. Outside the incident it draws exactly what the baseline always did.
func (t *trace) rerankTime() int64 {
	if t.g.sched.more.search.has(t.at) {
		return t.g.lognorm(350, 800)
	}
	return t.g.lognorm(3, 9)
}

// neighbourDelay is the extra time a request spends on the CPU-starved inventory pod.
func (t *trace) neighbourDelay(srv *span) int64 {
	if srv.res.svc != inventory || srv.res.host != noisyHost || !t.g.sched.more.neighbour.has(t.at) {
		return 0
	}
	return t.g.lognorm(60, 150)
}

// recommendationHistory fetches the user's history for recommendation-service and returns when it
// is done. During the retry storm the client gives up after historyTimeout, long before user-service
// can answer, and resends up to maxResends times; user-service sees the client go and cancels the
// request (answering 499, a client error). Recommendations then go on without history.
func (t *trace) recommendationHistory(s *span, at int64, user string) int64 {
	if !t.g.sched.more.retries.has(t.at) {
		return t.history(s, at, user).end
	}
	for attempt := 0; attempt <= maxResends; attempt++ {
		first := len(t.spans)
		r := t.history(s, at, user)
		if r.end-at <= historyTimeout {
			return r.end
		}
		giveUp := at + historyTimeout
		// Cut the attempt short: what had not started did not happen, what ran stopped.
		kept := t.spans[:first]
		for _, sp := range t.spans[first:] {
			if int64(sp.pb.StartTimeUnixNano) < giveUp {
				sp.pb.EndTimeUnixNano = min(sp.pb.EndTimeUnixNano, uint64(giveUp))
				kept = append(kept, sp)
			}
		}
		t.spans = kept
		cl := t.spans[first] // history's first span is the client's
		cl.pb.Attributes = withoutKey(cl.pb.Attributes, "http.response.status_code")
		cl.set(str("error.type", "timeout"))
		if attempt > 0 {
			cl.set(i64("http.request.resend_count", int64(attempt)))
		}
		cl.pb.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "context deadline exceeded"}
		if len(t.spans) > first+1 {
			srv := t.spans[first+1]
			srv.pb.Attributes = append(withoutKey(srv.pb.Attributes, "http.response.status_code"), i64("http.response.status_code", 499))
			srv.pb.Status = nil
		}
		at = giveUp
	}
	return at
}

func withoutKey(attrs []*commonpb.KeyValue, key string) []*commonpb.KeyValue {
	out := attrs[:0]
	for _, kv := range attrs {
		if kv.Key != key {
			out = append(out, kv)
		}
	}
	return out
}
