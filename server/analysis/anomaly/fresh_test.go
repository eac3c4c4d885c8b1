package anomaly_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// A sparse route (one request every 4 minutes) slowed for 40 minutes is seen only by the route
// test's hour-long window. One stray slow request 8 minutes before the onset and one 16 minutes
// after the end, with normal requests between, must neither date the anomaly back to the first nor
// keep it open to the second: its range is the slowdown's.
func TestDetect_ASparseRoutesAnomalySpansItsSlowdownNotStraySlowRequests(t *testing.T) {
	const from, to = 480, 520 // the slowdown, in minutes from start
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		tn := db.ForTenant("acme")
		rng := rand.New(rand.NewPCG(5, 5))
		var b store.Batch
		for m := 0; m < 660; m++ {
			for i := 0; i < 4; i++ {
				b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("i-%d-%d", m, i)), SpanID: storetest.SpanID("1"),
					Service: "api", Operation: "GET /items", IsEntry: true, StartNS: minute(m).UnixNano() + int64(i)*15e9,
					DurationNS: int64(40e6 + rng.Float64()*20e6)})
			}
			// after the slowdown, the route's requests thin out (a quiet evening)
			if m%4 != 0 || m > to && m%12 != 0 && m != 536 {
				continue
			}
			d := int64(40e6 + rng.Float64()*20e6)
			if m >= from && m < to || m == from-8 || m == 536 {
				d = 400e6
			}
			b.Spans = append(b.Spans, store.Span{TraceID: storetest.TraceID(fmt.Sprintf("c-%d", m)), SpanID: storetest.SpanID("1"),
				Service: "api", Operation: "GET /featured", IsEntry: true, StartNS: minute(m).UnixNano() + 30e9, DurationNS: d})
		}
		if err := tn.InsertBatch(ctx, b); err != nil {
			t.Fatal(err)
		}
		if _, err := anomaly.Detect(ctx, tn, minute(650).Add(2*time.Minute), anomaly.Config{}); err != nil {
			t.Fatal(err)
		}
		recs, err := tn.AnomalyRecords(ctx, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].Operation != "GET /featured" {
			t.Fatalf("anomalies %+v; want one of GET /featured", recs)
		}
		a := recs[0]
		if a.StartedNS < minute(from-2).UnixNano() || a.StartedNS > minute(from+5).UnixNano() {
			t.Errorf("anomaly starts at minute %d, want the onset (%d)", (a.StartedNS-start.UnixNano())/60e9, from)
		}
		if a.EndedNS == 0 || a.EndedNS > minute(to+5).UnixNano() {
			t.Errorf("anomaly ends at %d (minute %d), want the slowdown's end (minute %d)", a.EndedNS, (a.EndedNS-start.UnixNano())/60e9, to)
		}
	})
}
