package rca

import (
	"context"
	"fmt"
	"sort"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/analysis/tracetree"
	"github.com/tracekit/tracekit/server/store"
)

// symptom scales the confidence of "this span got slower": it is what the other causes explain, so
// a version or host that explains it must be able to rank above it.
const symptom = 0.95

// unit is what critical-path time is attributed to: one operation of one service, split by what it
// talks to when that is what changes (a statement, a model, a remote peer).
type unit struct {
	service, operation string
	kind               string // KindDBStatement, KindLLMModel, KindDependency or KindOperation
	attribute, value   string
}

func unitOf(n *node) unit {
	s := n.Span
	u := unit{service: s.Service, operation: s.Operation, kind: KindOperation}
	switch {
	case s.DBStatement != "":
		u.kind, u.attribute, u.value = KindDBStatement, "db.statement", s.DBStatement
	case s.Kind == store.KindClient && n.Span.attr("gen_ai.request.model") != "":
		u.kind, u.attribute, u.value = KindLLMModel, "gen_ai.request.model", n.Span.attr("gen_ai.request.model")
	case s.Kind == store.KindClient && s.PeerService != "" && len(n.Children) == 0:
		// A call whose callee reports no spans: an external API or an uninstrumented service.
		u.kind, u.attribute, u.value = KindDependency, "peer.service", s.PeerService
	}
	return u
}

// latency ranks what made requests slower than the anomaly's threshold.
func (an *analysis) latency(ctx context.Context, d anomaly.Details) ([]Cause, error) {
	tau := d.ThresholdNS
	if tau <= 0 {
		tau = int64(d.Baseline * 1e6)
	}
	q := store.SampleQuery{MinDurationNS: tau}
	if d.Route {
		q.Operation = d.Operation
	}
	s, ok, err := an.sample(ctx, q)
	if !ok || err != nil {
		return nil, err
	}
	// Mean critical-path self time per unit, and which bad requests show most of it.
	units := tally[unit]{}
	var durBad, durGood float64
	for _, r := range s.all {
		if r.bad {
			durBad += float64(r.entry.DurationNS) * s.weight(r)
		} else {
			durGood += float64(r.entry.DurationNS) * s.weight(r)
		}
		for _, step := range tracetree.CriticalPath(r.entry) {
			units.add(s, unitOf(step.Node), r, float64(step.PathNS))
		}
	}
	causes := queueLags(s)
	added := durBad - durGood
	if added <= 0 {
		return causes, nil
	}
	ownShare := map[string]float64{} // per service: share of the added time in its own code
	depShare := map[string]float64{} // and in its calls
	shares := map[unit]float64{}
	specific := map[string]bool{} // services whose top unit is a statement, model or peer
	serviceShare := map[string]float64{}
	type scored struct {
		u     unit
		a     *evidence
		share float64
	}
	var list []scored
	for u, a := range units {
		share := (a.bad - a.good) / added
		if share <= 0 {
			continue
		}
		list = append(list, scored{u, a, share})
		serviceShare[u.service] += share
		shares[u] = share
		if u.kind == KindOperation {
			ownShare[u.service] += share
		} else {
			depShare[u.service] += share
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].share > list[j].share })
	for i, s := range list {
		if i == 0 && s.u.kind != KindOperation {
			specific[s.u.service] = true
		}
		c := Cause{Kind: s.u.kind, Service: s.u.service, Operation: s.u.operation, Attribute: s.u.attribute, Value: s.u.value,
			Confidence: symptom * min(s.share, 1), TraceIDs: examples(s.a.traces),
			Figures: []Figure{{Name: "self time on the critical path per request", Baseline: s.a.good / 1e6, Anomalous: s.a.bad / 1e6, Unit: "ms"}}}
		c.Description = describeUnit(s.u, s.a.good, s.a.bad, s.share)
		causes = append(causes, c)
	}
	// A deployment or a host explains its service's own code getting slower better than the code
	// does: a slow operation is the symptom, "since version X" or "on host Y" the cause.
	for _, o := range overRepresented(s, []string{"service.version", "host.name"}) {
		share := serviceShare[o.service]
		if share <= 0 {
			continue
		}
		c := o.cause(share)
		switch {
		case specific[o.service]:
			c.Confidence *= 0.8
		case ownShare[o.service] > 0.3:
			c.Confidence = max(c.Confidence, min(ownShare[o.service], 1)*symptom+0.04)
		}
		causes = append(causes, c)
	}
	causes = append(causes, fallbacks(s, shares)...)
	causes = append(causes, uniformSlowdown(units, ownShare, depShare)...)
	return preferVersionOverHost(causes), nil
}

func describeUnit(u unit, good, bad, share float64) string {
	where := fmt.Sprintf("%s %q", u.service, u.operation)
	switch u.kind {
	case KindDBStatement:
		where = fmt.Sprintf("the database call `%s` in %s", short(u.value, 120), u.service)
	case KindLLMModel:
		where = fmt.Sprintf("the %s call to model %s in %s", u.operation, u.value, u.service)
	case KindDependency:
		where = fmt.Sprintf("%s's calls to %s (%s)", u.service, u.value, u.operation)
	}
	return fmt.Sprintf("%s: %s of a slow request's critical path instead of %s, %s of the added latency.",
		where, ms(bad), ms(good), pct(min(share, 1)))
}

// examples returns up to three trace ids, those where the value counted most first.
func examples(byTrace map[string]float64) []string {
	ids := make([]string, 0, len(byTrace))
	for id := range byTrace {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		if byTrace[ids[i]] != byTrace[ids[j]] {
			return byTrace[ids[i]] > byTrace[ids[j]]
		}
		return ids[i] < ids[j]
	})
	return ids[:min(3, len(ids))]
}

// preferVersionOverHost drops a host candidate of a service that also has a version candidate at
// least as strong: a deployment replaces every pod, so new host names come with a new version.
func preferVersionOverHost(cs []Cause) []Cause {
	version := map[string]float64{}
	for _, c := range cs {
		if c.Kind == KindVersion {
			version[c.Service] = max(version[c.Service], c.Confidence)
		}
	}
	out := cs[:0]
	for _, c := range cs {
		if c.Kind == KindHost && version[c.Service] >= c.Confidence-0.1 {
			continue
		}
		out = append(out, c)
	}
	return out
}

// presence is an attribute value of one service found in more bad requests than baseline ones.
type presence struct {
	service, attribute, value string
	bad, good                 float64 // share of requests whose subtree has it
	traces                    map[string]float64
}

func (p presence) cause(share float64) Cause {
	kind, what := KindVersion, fmt.Sprintf("%s version %s", p.service, p.value)
	if p.attribute == "host.name" {
		kind, what = KindHost, fmt.Sprintf("%s on host %s", p.service, p.value)
	}
	c := Cause{Kind: kind, Service: p.service, Attribute: p.attribute, Value: p.value,
		Confidence: (p.bad - p.good) * min(share, 1), TraceIDs: examples(p.traces),
		Figures: []Figure{{Name: "share of compared requests involving it", Baseline: p.good, Anomalous: p.bad}}}
	c.Description = fmt.Sprintf("%s is in %s of the anomalous requests and %s of earlier ones.", what, pct(p.bad), pct(p.good))
	if kind == KindVersion && p.good == 0 {
		c.Description = fmt.Sprintf("%s was deployed when the anomaly began: it served %s of the anomalous requests and none before.", what, pct(p.bad))
	}
	return c
}

// overRepresented finds attribute values of a service present in at least half of the bad requests
// that involve the service, and at least 30 points more often than in the baseline ones that do:
// conditioning on the service keeps "requests that reach inventory-service" from passing for
// "requests served by inventory-service's current version". Requests count with their sample
// weight, so a baseline matched to the bad requests' shapes stays matched.
func overRepresented(s samples, attributes []string) []presence {
	type key struct{ service, attribute, value string }
	type side struct{ bad, good, nBad, nGood float64 }
	counts := map[key]*presence{}
	involved := map[string]*side{}
	for _, r := range s.all {
		w := s.weight(r)
		seen := map[key]bool{}
		services := map[string]bool{}
		tracetree.Walk(r.entry, func(n *node) {
			services[n.Span.Service] = true
			for _, a := range attributes {
				v := ""
				switch a {
				case "service.version":
					v = n.Span.ServiceVersion
				case "host.name":
					v = n.Span.HostName
				default:
					v = n.Span.attr(a)
				}
				if v != "" {
					seen[key{n.Span.Service, a, v}] = true
				}
			}
		})
		for svc := range services {
			s := involved[svc]
			if s == nil {
				s = &side{}
				involved[svc] = s
			}
			if r.bad {
				s.bad, s.nBad = s.bad+w, s.nBad+1
			} else {
				s.good, s.nGood = s.good+w, s.nGood+1
			}
		}
		for k := range seen {
			p := counts[k]
			if p == nil {
				p = &presence{service: k.service, attribute: k.attribute, value: k.value, traces: map[string]float64{}}
				counts[k] = p
			}
			if r.bad {
				p.bad += w
				p.traces[r.traceID] = 1
			} else {
				p.good += w
			}
		}
	}
	var out []presence
	for _, p := range counts {
		n := involved[p.service]
		if n.nBad < 5 || n.nGood < 5 || n.good == 0 {
			continue // too few requests reach the service to compare
		}
		p.bad /= n.bad
		p.good /= n.good
		if p.bad >= 0.5 && p.bad-p.good >= 0.3 {
			out = append(out, *p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if d1, d2 := out[i].bad-out[i].good, out[j].bad-out[j].good; d1 != d2 {
			return d1 > d2
		}
		return out[i].value < out[j].value
	})
	return out
}
