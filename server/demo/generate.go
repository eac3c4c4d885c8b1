package demo

import (
	"context"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"
)

// generator produces the demo traffic trace by trace. Everything random comes from one seeded source
// read in a fixed order, so a seed (and End) always gives the same spans.
type generator struct {
	rng   *rand.Rand
	opts  Options
	sched schedule
	res   resources

	// Read by the senders to estimate the total while generation is still running.
	spans, traces atomic.Int64
}

func newGenerator(o Options) *generator {
	return &generator{
		rng:   rand.New(rand.NewPCG(uint64(o.Seed), 0x7472616365)),
		opts:  o,
		sched: newSchedule(o.End, o.Duration),
		res:   resources{},
	}
}

// run generates all traces in time order and hands them to emit in batches of about BatchSpans spans;
// a trace is never split across batches. Only one batch is held at a time, so memory stays flat
// however many traces are asked for.
func (g *generator) run(ctx context.Context, emit func(*batch) error) error {
	// Traces start up to a minute before End, so even the slowest has ended by End.
	start, stop := g.opts.End.Add(-g.opts.Duration), g.opts.End.Add(-time.Minute)
	n := int(math.Ceil(float64(stop.Sub(start)) / float64(time.Minute)))
	weights := make([]float64, n)
	total := 0.0
	for i := range weights {
		t := start.Add(time.Duration(i) * time.Minute)
		// Minute-to-minute noise keeps the curve from looking synthetic.
		w := diurnal(t.In(g.opts.End.Location())) * (0.8 + 0.4*g.rng.Float64())
		if rest := stop.Sub(t); rest < time.Minute {
			w *= float64(rest) / float64(time.Minute)
		}
		weights[i] = w
		total += w
	}

	b := newBatch()
	var cum float64
	var assigned int
	var offsets []int64
	for i, w := range weights {
		cum += w
		target := int(math.Round(cum / total * float64(g.opts.Traces)))
		bucket := start.Add(time.Duration(i) * time.Minute)
		length := min(time.Minute, stop.Sub(bucket))
		offsets = offsets[:0]
		for range target - assigned {
			offsets = append(offsets, g.rng.Int64N(int64(length)))
		}
		assigned = target
		slices.Sort(offsets)
		for _, off := range offsets {
			t := g.trace(bucket.UnixNano() + off)
			b.add(t)
			g.spans.Add(int64(len(t.spans)))
			g.traces.Add(1)
			if b.spans >= g.opts.BatchSpans {
				if err := ctx.Err(); err != nil {
					return context.Cause(ctx)
				}
				if err := emit(b); err != nil {
					return err
				}
				b = newBatch()
			}
		}
	}
	if b.spans > 0 {
		return emit(b)
	}
	return nil
}

// diurnal is the relative traffic at a local time of day: quietest around 04:30, busiest late afternoon.
func diurnal(t time.Time) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	x := (1 - math.Cos(2*math.Pi*(h-4.5)/24)) / 2
	return 0.12 + 0.88*math.Pow(x, 1.5)
}

// estimate is the expected number of spans of the whole run: exact once generation has finished,
// extrapolated from the traces so far before that.
func (g *generator) estimate() int {
	spans, traces := g.spans.Load(), g.traces.Load()
	if traces == 0 {
		return g.opts.Traces * avgSpansPerTrace
	}
	return int(spans + (int64(g.opts.Traces)-traces)*spans/traces)
}

// avgSpansPerTrace is measured from the default mix; it only seeds the progress estimate.
const avgSpansPerTrace = 11

// pod picks a pod of svc, running the version deployed at time at.
func (g *generator) pod(svc *service, at int64) *resource {
	version := svc.version
	if svc == payment && g.sched.payment.has(at) {
		version = paymentBadVersion
	}
	if svc == search && g.sched.more.search.has(at) {
		version = searchBadVersion
	}
	return g.res.get(svc, version, g.rng.IntN(svc.pods))
}

// lognorm draws a duration in nanoseconds from a log-normal distribution given its median and 95th
// percentile in milliseconds: service latencies are long-tailed, never normal.
func (g *generator) lognorm(medianMS, p95MS float64) int64 {
	return int64(g.logn(medianMS, p95MS) * 1e6)
}

func (g *generator) logn(median, p95 float64) float64 {
	sigma := math.Log(p95/median) / 1.645
	return median * math.Exp(sigma*g.rng.NormFloat64())
}

// tokens draws a token count.
func (g *generator) tokens(median, p95 float64) int64 {
	return max(1, int64(g.logn(median, p95)))
}

func (g *generator) chance(p float64) bool { return g.rng.Float64() < p }

func (g *generator) traceID() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b, g.rng.Uint64())
	binary.BigEndian.PutUint64(b[8:], g.rng.Uint64()|1) // never all zero, which OTLP treats as invalid
	return b
}

func (g *generator) spanID() []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, g.rng.Uint64()|1)
	return b
}
