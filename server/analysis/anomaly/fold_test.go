package anomaly

import (
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

func at(m int) int64 { return int64(m) * store.Minute }

func hhmm(ns int64) string { return time.Unix(0, ns).UTC().Format("15:04") }

// slowRoute is a latency finding on one route with deviant minutes [onset, last).
func slowRoute(onset, last int) finding {
	return finding{Metric: LatencyP95, Operation: "GET /api/account", Route: true, Severity: 2, Score: 9, onset: at(onset), last: at(last)}
}

// foldClean folds windows without findings ending every 5 minutes in [from, to].
func foldClean(d *detector, from, to int) {
	for we := from; we <= to; we += 5 {
		d.fold("api", at(we), nil)
	}
}

func newFoldDetector() *detector {
	return &detector{cfg: Config{}.withDefaults(), episodes: map[string][]*episode{}, version: map[string]int{}}
}

// A sparse route's slowdown is flagged, goes unseen for two windows (its anomaly ends), and the
// route test's hour then sees it again from before that end: the incident goes on, and the
// on-call engineer sees its one anomaly open again, not a second one starting inside the first.
func TestFold_ADeviationSeenAgainFromInsideAnEndedAnomalyReopensIt(t *testing.T) {
	d := newFoldDetector()
	d.fold("api", at(105), []finding{slowRoute(100, 105)})
	foldClean(d, 110, 140)
	if eps := d.episodes["api"]; len(eps) != 1 || eps[0].open() {
		t.Fatalf("after two clean windows: %d anomalies, the first open: %v; want one, ended", len(eps), len(eps) > 0 && eps[0].open())
	}
	d.fold("api", at(150), []finding{slowRoute(102, 148)})
	eps := d.episodes["api"]
	if len(eps) != 1 {
		t.Fatalf("%d anomalies of api (starting %s and %s), want one", len(eps), hhmm(eps[0].rec.StartedNS), hhmm(eps[1].rec.StartedNS))
	}
	if a := eps[0]; !a.open() || a.rec.StartedNS != at(100) || a.rec.LastSeenNS != at(148) {
		t.Errorf("anomaly from %s, open %v, last seen %s; want open from 01:40, last seen 02:28", hhmm(a.rec.StartedNS), a.open(), hhmm(a.rec.LastSeenNS))
	}
}

// A new incident on another route, flagged while the route test's hour still sees the ended
// anomaly's minutes: a new anomaly, starting at the new incident's onset, not inside the old one.
func TestFold_ANewAnomalyStartsAtItsFirstDetectionNotInsideAnEndedOne(t *testing.T) {
	d := newFoldDetector()
	d.fold("api", at(105), []finding{slowRoute(100, 110)})
	foldClean(d, 115, 145)
	errs := finding{Metric: ErrorRate, Operation: "POST /api/cart/items", Severity: 3, Score: 20, onset: at(150), last: at(155)}
	d.fold("api", at(155), []finding{errs, slowRoute(102, 154)})
	// Later windows' route test reaches back into earlier minutes too.
	d.fold("api", at(160), []finding{errs, slowRoute(105, 158)})
	eps := d.episodes["api"]
	if len(eps) != 2 {
		t.Fatalf("%d anomalies of api, want the ended one and a new one", len(eps))
	}
	if a := eps[1]; !a.open() || a.rec.StartedNS != at(150) {
		t.Errorf("new anomaly from %s (open %v), want open from 02:30, its first detection's onset", hhmm(a.rec.StartedNS), a.open())
	}
}
