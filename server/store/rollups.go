package store

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/tracekit/tracekit/server/sketch"
)

// Rollup kinds: what a metric_rollups row counts.
const (
	RollupRequests int16 = 1 // entry spans; Name is the operation
	RollupLLM      int16 = 2 // LLM calls; Name is the requested model
	// RollupServiceRequests are hourly rows of all of a service's requests (Name is empty), written
	// by compaction beside the per-operation ones, so long windows read one row per service and hour.
	RollupServiceRequests int16 = 3
	// RollupQueueLag are consumer entry spans whose parent is a producer span, or that link to one:
	// Name is the consumer's operation, Hist how long each message waited on the queue (consumer start
	// less producer end; producerEnds).
	RollupQueueLag int16 = 4
)

// Rollup resolutions.
const (
	Minute = int64(60e9)
	Hour   = int64(3600e9)
)

// Rollup is the aggregate of one series (kind, service, name) over one bucket of Res nanoseconds.
type Rollup struct {
	Kind         int16   `db:"kind"`
	Service      string  `db:"service"`
	Name         string  `db:"name"`
	ResNS        int64   `db:"res_ns"`
	BucketNS     int64   `db:"bucket_ns"`
	Partial      bool    `db:"partial"`
	N            int64   `db:"n"`
	Errors       int64   `db:"errors"`
	CostUSD      float64 `db:"cost_usd"`
	InputTokens  int64   `db:"input_tokens"`
	OutputTokens int64   `db:"output_tokens"`
	Hist         []byte  `db:"hist"` // durations in nanoseconds, sketch encoding
}

const rollupSelect = `kind, service, name, res_ns, bucket_ns, partial, n, errors, cost_usd, input_tokens, output_tokens, hist`

func (t *Tenant) rollupRow(r *Rollup) []any {
	return []any{t.id, r.Kind, r.Service, r.Name, r.ResNS, r.BucketNS, r.Partial, r.N, r.Errors, r.CostUSD,
		r.InputTokens, r.OutputTokens, r.Hist}
}

type seriesKey struct {
	kind          int16
	service, name string
	bucket        int64
}

// rollupBuilder accumulates rows keyed by series and bucket.
type rollupBuilder struct {
	rows  map[seriesKey]*Rollup
	hists map[seriesKey]*sketch.Histogram
}

func newRollupBuilder() *rollupBuilder {
	return &rollupBuilder{rows: map[seriesKey]*Rollup{}, hists: map[seriesKey]*sketch.Histogram{}}
}

func (b *rollupBuilder) get(k seriesKey, res int64) (*Rollup, *sketch.Histogram) {
	r := b.rows[k]
	if r == nil {
		r = &Rollup{Kind: k.kind, Service: k.service, Name: k.name, ResNS: res, BucketNS: k.bucket}
		b.rows[k] = r
		b.hists[k] = &sketch.Histogram{}
	}
	return r, b.hists[k]
}

// merge adds a stored row (with its encoded histogram) into the bucket k.
func (b *rollupBuilder) merge(k seriesKey, res int64, from *Rollup) error {
	r, h := b.get(k, res)
	r.N += from.N
	r.Errors += from.Errors
	r.CostUSD += from.CostUSD
	r.InputTokens += from.InputTokens
	r.OutputTokens += from.OutputTokens
	return h.AddEncoded(from.Hist)
}

// list returns the rows with their histograms encoded, in a fixed order (stable inserts, fewer
// index-page conflicts).
func (b *rollupBuilder) list(partial bool) []Rollup {
	out := make([]Rollup, 0, len(b.rows))
	for k, r := range b.rows {
		r.Partial = partial
		r.Hist = b.hists[k].Encode()
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		a, c := &out[i], &out[j]
		if a.BucketNS != c.BucketNS {
			return a.BucketNS < c.BucketNS
		}
		if a.Kind != c.Kind {
			return a.Kind < c.Kind
		}
		if a.Service != c.Service {
			return a.Service < c.Service
		}
		return a.Name < c.Name
	})
	return out
}

// batchRollups aggregates a batch's requests, queue lags and LLM calls per series and minute. It
// costs a map lookup and a logarithm per entry span, so ingest stays cheap. producers holds, per
// consumer entry span of the batch, the end of the producer span of its message (producerEnds).
func batchRollups(b *Batch, producers map[SpanRef]int64) []Rollup {
	rb := newRollupBuilder()
	for i := range b.Spans {
		s := &b.Spans[i]
		if !s.IsEntry {
			continue
		}
		minute := s.StartNS - s.StartNS%Minute
		r, h := rb.get(seriesKey{RollupRequests, s.Service, s.Operation, minute}, Minute)
		r.N++
		if s.Failed() {
			r.Errors++
		}
		h.Add(s.DurationNS)
		if end, ok := producers[SpanRef{s.TraceID, s.SpanID}]; ok {
			r, h := rb.get(seriesKey{RollupQueueLag, s.Service, s.Operation, minute}, Minute)
			r.N++
			h.Add(max(s.StartNS-end, 0))
		}
	}
	for i := range b.LLMCalls {
		c := &b.LLMCalls[i]
		model := c.RequestModel
		if model == "" {
			model = c.ResponseModel
		}
		r, h := rb.get(seriesKey{RollupLLM, c.Service, model, c.StartNS - c.StartNS%Minute}, Minute)
		r.N++
		if c.Failed() {
			r.Errors++
		}
		if c.CostUSD != nil {
			r.CostUSD += *c.CostUSD
		}
		r.InputTokens += c.InputTokens
		r.OutputTokens += c.OutputTokens
		h.Add(c.DurationNS)
	}
	return rb.list(true)
}

// producerEnds finds, for each consumer entry span of b, the end of the producer span whose message
// it processed, keyed by the consumer span: its parent when that is a producer span (instrumentations
// that process one message at a time in the producer's trace), else the one its links lead to
// (QueueProducer: batch consumers, and those that start a new trace per message, link to the
// producers). A producer is found in the batch or stored by an earlier one (a producer's spans are
// exported before the consumer's that read its messages, except when both are moments apart, where a
// lag missed matters least). Batches without consumers cost one pass.
func (t *Tenant) producerEnds(ctx context.Context, b *Batch) (map[SpanRef]int64, error) {
	type consumer struct {
		key    SpanRef
		parent SpanRef // zero when it has none
		links  []Link
	}
	var consumers []consumer
	want := map[SpanRef]bool{}
	for i := range b.Spans {
		s := &b.Spans[i]
		if !s.IsEntry || s.Kind != KindConsumer || (s.ParentSpanID == "" && len(s.Links) == 0) {
			continue
		}
		c := consumer{key: SpanRef{s.TraceID, s.SpanID}, links: ParseLinks(s.Links)}
		if s.ParentSpanID != "" {
			c.parent = SpanRef{s.TraceID, s.ParentSpanID}
			want[c.parent] = true
		}
		for _, l := range c.links[:min(len(c.links), MaxLagLinks)] {
			want[l.SpanRef] = true
		}
		consumers = append(consumers, c)
	}
	if consumers == nil {
		return nil, nil
	}
	found := map[SpanRef]LinkedSpan{}
	for i := range b.Spans {
		s := &b.Spans[i]
		if r := (SpanRef{s.TraceID, s.SpanID}); s.Kind == KindProducer && want[r] {
			found[r] = LinkedSpan{SpanRef: r, Service: s.Service, Operation: s.Operation, Kind: s.Kind, StartNS: s.StartNS, DurationNS: s.DurationNS}
		}
	}
	var missing []SpanRef
	for r := range want {
		if _, ok := found[r]; !ok {
			missing = append(missing, r)
		}
	}
	if len(missing) > 0 {
		stored, err := t.LinkedSpans(ctx, missing)
		if err != nil {
			return nil, fmt.Errorf("find the producers of consumed messages: %w", err)
		}
		maps.Copy(found, stored)
	}
	out := map[SpanRef]int64{}
	for _, c := range consumers {
		if p, ok := found[c.parent]; ok && p.Kind == KindProducer {
			out[c.key] = p.EndNS()
		} else if p, ok := QueueProducer(c.links, found); ok {
			out[c.key] = p.EndNS()
		}
	}
	return out, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// RollupQuery selects rollups of [From, To), both multiples of a minute.
type RollupQuery struct {
	Kind    int16
	Service string // optional
	Name    string // optional
	From    int64
	To      int64
	// Hourly allows hourly rows for the whole hours inside the window (a caller that needs no finer
	// step than an hour); otherwise every row returned is a minute.
	Hourly bool
	// ServiceTotals, with Hourly and Kind RollupRequests, reads whole-service hourly rows for the
	// whole hours (their Kind is RollupServiceRequests, their Name empty): for callers that need no
	// per-operation detail.
	ServiceTotals bool
}

// Rollups returns the rows covering q's window. Every request is counted exactly once: minute rows,
// or, with Hourly, hourly rows plus the partial minute rows not yet merged into them.
func (t *Tenant) Rollups(ctx context.Context, q RollupQuery) ([]Rollup, error) {
	query, args := t.rollupQuery(q, rollupSelect)
	var out []Rollup
	if query == "" {
		return out, nil
	}
	if err := t.db.x.SelectContext(ctx, &out, query, args...); err != nil {
		return nil, fmt.Errorf("read metric rollups: %w", err)
	}
	return out, nil
}

// RollupCount is the sum of n over the rows Rollups would return, summed by the database: for
// callers that need only how many requests or calls a window holds, not their durations.
func (t *Tenant) RollupCount(ctx context.Context, q RollupQuery) (int64, error) {
	query, args := t.rollupQuery(q, "n")
	if query == "" {
		return 0, nil
	}
	var n int64
	if err := t.db.x.GetContext(ctx, &n, `SELECT COALESCE(SUM(n), 0) FROM (`+query+`) r`, args...); err != nil {
		return 0, fmt.Errorf("count metric rollups: %w", err)
	}
	return n, nil
}

// rollupQuery selects columns of the rows covering q's window; empty when the window is.
func (t *Tenant) rollupQuery(q RollupQuery, columns string) (string, []any) {
	var series where
	series.add("tenant_id = ?", t.id)
	if q.Service != "" {
		series.add("service = ?", q.Service)
	}
	if q.Name != "" {
		series.add("name = ?", q.Name)
	}
	h1 := (q.From + Hour - 1) / Hour * Hour
	h2 := q.To / Hour * Hour
	type part struct {
		res, from, to int64
		partialOnly   bool
		kind          int16
	}
	parts := []part{{Minute, q.From, q.To, false, q.Kind}}
	if q.Hourly && h1 < h2 {
		hourly := q.Kind
		if q.ServiceTotals && q.Kind == RollupRequests && q.Name == "" {
			hourly = RollupServiceRequests
		}
		parts = []part{{Minute, q.From, h1, false, q.Kind}, {Minute, h2, q.To, false, q.Kind}, {Hour, h1, h2, false, hourly},
			{Minute, h1, h2, true, q.Kind}}
	}
	// One SELECT per part, so that each is planned on its own index (an OR of ranges is not).
	var sels []string
	var args []any
	for _, p := range parts {
		if p.from >= p.to {
			continue
		}
		w := series
		w.conds = append([]string(nil), series.conds...)
		w.args = append([]any(nil), series.args...)
		w.add("kind = ? AND res_ns = ? AND bucket_ns >= ? AND bucket_ns < ?", p.kind, p.res, p.from, p.to)
		if p.partialOnly {
			w.add("partial = true")
		}
		sels = append(sels, `SELECT `+columns+` FROM metric_rollups`+w.sql())
		args = append(args, w.args...)
	}
	if len(sels) == 0 {
		return "", nil
	}
	return t.rebind(strings.Join(sels, " UNION ALL ")), args
}

// CompactStats says what one compaction did.
type CompactStats struct {
	Hours       int // hours whose partial rows were merged
	PartialRows int
	Expired     int64 // rows deleted by retention
	Partitions  int   // partitions dropped by retention (PostgreSQL)
	// Skipped are the series whose rows could not be merged (an unreadable histogram, say); their
	// partial rows stay until a later run merges them or they expire, and every other series went on.
	Skipped []Skipped
}

// Skipped is an item that background work could not process and passed over, so that one bad row
// never holds up the rest: Key says which (a rollup series, an alert rule, a service…).
type Skipped struct {
	Key string
	Err error
}

// CompactRollups merges partial rows into one row per series and minute, and those into hourly rows,
// one hour per transaction; then it deletes minute rows older than minuteTTL and hourly rows older
// than hourTTL (nanoseconds before now), and partial rows that were never merged once they are older
// than hourTTL. An hour that fails is compacted again series by series, and a series that still fails
// is skipped (and reported in Skipped). It must not run in two processes at once for a tenant (the
// unique index on merged rows makes the second fail rather than double-count).
func (t *Tenant) CompactRollups(ctx context.Context, now, minuteTTL, hourTTL int64) (CompactStats, error) {
	var st CompactStats
	var hours []int64
	err := t.db.x.SelectContext(ctx, &hours, t.rebind(`SELECT DISTINCT bucket_ns - bucket_ns % ? FROM metric_rollups
		WHERE tenant_id = ? AND partial = true ORDER BY 1`), Hour, t.id)
	if err != nil {
		return st, fmt.Errorf("find rollups to compact: %w", err)
	}
	for _, h := range hours {
		n, err := t.compactHour(ctx, h, h >= now-minuteTTL, nil)
		if err != nil {
			if ctx.Err() != nil {
				return st, fmt.Errorf("compact rollups of %d: %w", h, err)
			}
			var skipped []Skipped
			n, skipped, err = t.compactHourBySeries(ctx, h, h >= now-minuteTTL)
			if err != nil {
				return st, fmt.Errorf("compact rollups of %d: %w", h, err)
			}
			st.Skipped = append(st.Skipped, skipped...)
		}
		st.Hours++
		st.PartialRows += n
	}
	// Whole weeks past hourly retention go with their partitions; the DELETEs below then remove only
	// the minute rows past minute retention and the rows of a partially expired week.
	dropped, err := t.DropPartitions(ctx, "metric_rollups", now-hourTTL)
	if err != nil {
		return st, fmt.Errorf("expire rollups: %w", err)
	}
	st.Partitions = len(dropped)
	for _, ttl := range []struct {
		res, before int64
		partial     bool
	}{{Minute, now - minuteTTL, false}, {Hour, now - hourTTL, false}, {Minute, now - hourTTL, true}} {
		res, err := t.db.x.ExecContext(ctx, t.rebind(`DELETE FROM metric_rollups
			WHERE tenant_id = ? AND res_ns = ? AND bucket_ns < ? AND partial = ?`), t.id, ttl.res, ttl.before, ttl.partial)
		if err != nil {
			return st, fmt.Errorf("expire rollups: %w", err)
		}
		n, _ := res.RowsAffected()
		st.Expired += n
	}
	return st, nil
}

// series is one rollup series: what compactHour narrows to when an hour failed as a whole.
type series struct {
	Kind    int16  `db:"kind"`
	Service string `db:"service"`
	Name    string `db:"name"`
}

func (s series) String() string {
	const keep = 80 // the key of a log line, not the whole (possibly huge) name
	cut := func(v string) string {
		if len(v) > keep {
			return v[:keep] + "…"
		}
		return v
	}
	return fmt.Sprintf("rollup series kind=%d service=%q name=%q", s.Kind, cut(s.Service), cut(s.Name))
}

// compactHourBySeries compacts one hour a series at a time, skipping the series that fail.
func (t *Tenant) compactHourBySeries(ctx context.Context, hour int64, keepMinutes bool) (int, []Skipped, error) {
	var all []series
	if err := t.db.x.SelectContext(ctx, &all, t.rebind(`SELECT DISTINCT kind, service, name FROM metric_rollups
		WHERE tenant_id = ? AND partial = true AND bucket_ns >= ? AND bucket_ns < ?`), t.id, hour, hour+Hour); err != nil {
		return 0, nil, err
	}
	claimed := 0
	var skipped []Skipped
	for i := range all {
		n, err := t.compactHour(ctx, hour, keepMinutes, &all[i])
		if err != nil {
			if ctx.Err() != nil {
				return claimed, skipped, err
			}
			skipped = append(skipped, Skipped{Key: fmt.Sprintf("%s hour=%s", all[i], time.Unix(0, hour).UTC().Format(time.RFC3339)), Err: err})
			continue
		}
		claimed += n
	}
	return claimed, skipped, nil
}

// compactHour replaces the partial rows of one hour, and the merged rows they add to, by their sums.
// Partial rows are claimed with DELETE … RETURNING, so rows that concurrent ingest commits meanwhile
// stay for the next run. keepMinutes is false for hours past minute retention: only the hourly row
// is kept. only, when set, narrows the work to one series.
func (t *Tenant) compactHour(ctx context.Context, hour int64, keepMinutes bool, only *series) (int, error) {
	var claimed int
	err := t.db.write(ctx, func(tx *sqlx.Tx) error {
		var partials []Rollup
		claim := `DELETE FROM metric_rollups WHERE tenant_id = ? AND partial = true AND bucket_ns >= ? AND bucket_ns < ?`
		args := []any{t.id, hour, hour + Hour}
		if only != nil {
			claim += ` AND kind = ? AND service = ? AND name = ?`
			args = append(args, only.Kind, only.Service, only.Name)
		}
		err := tx.SelectContext(ctx, &partials, t.rebind(claim+` RETURNING `+rollupSelect), args...)
		if err != nil || len(partials) == 0 {
			return err
		}
		claimed = len(partials)
		minutes := map[int64]bool{}
		for _, p := range partials {
			minutes[p.BucketNS] = true
		}
		buckets := make([]int64, 0, len(minutes)+1)
		for m := range minutes {
			buckets = append(buckets, m)
		}
		var merged []Rollup
		q, args, err := sqlx.In(`DELETE FROM metric_rollups WHERE tenant_id = ? AND partial = false
			AND (res_ns = ? AND bucket_ns IN (?) OR res_ns = ? AND bucket_ns = ?) RETURNING `+rollupSelect,
			t.id, Minute, buckets, Hour, hour)
		if only != nil {
			// The series' own merged rows, and its service's hourly total when it counts requests.
			q, args, err = sqlx.In(`DELETE FROM metric_rollups WHERE tenant_id = ? AND partial = false
				AND (kind = ? AND service = ? AND name = ? AND (res_ns = ? AND bucket_ns IN (?) OR res_ns = ? AND bucket_ns = ?)
					OR kind = ? AND service = ? AND name = '' AND res_ns = ? AND bucket_ns = ?) RETURNING `+rollupSelect,
				t.id, only.Kind, only.Service, only.Name, Minute, buckets, Hour, hour,
				serviceTotalKind(only.Kind), only.Service, Hour, hour)
		}
		if err != nil {
			return err
		}
		if err := tx.SelectContext(ctx, &merged, tx.Rebind(q), args...); err != nil {
			return err
		}
		mins, hrs := newRollupBuilder(), newRollupBuilder()
		for i := range merged {
			r := &merged[i]
			b := mins
			if r.ResNS == Hour {
				b = hrs
			}
			if err := b.merge(seriesKey{r.Kind, r.Service, r.Name, r.BucketNS}, r.ResNS, r); err != nil {
				return err
			}
		}
		for i := range partials {
			p := &partials[i]
			if err := mins.merge(seriesKey{p.Kind, p.Service, p.Name, p.BucketNS}, Minute, p); err != nil {
				return err
			}
			if err := hrs.merge(seriesKey{p.Kind, p.Service, p.Name, hour}, Hour, p); err != nil {
				return err
			}
			if p.Kind == RollupRequests {
				if err := hrs.merge(seriesKey{RollupServiceRequests, p.Service, "", hour}, Hour, p); err != nil {
					return err
				}
			}
		}
		rows := hrs.list(false)
		if keepMinutes {
			rows = append(rows, mins.list(false)...)
		}
		return t.insertRollups(ctx, tx, rows)
	})
	return claimed, err
}

// serviceTotalKind is the kind of the hourly whole-service row a series adds to; 0 (no such row)
// unless the series counts requests.
func serviceTotalKind(kind int16) int16 {
	if kind == RollupRequests {
		return RollupServiceRequests
	}
	return 0
}

// insertRollups writes rows (table insertRows).
func (t *Tenant) insertRollups(ctx context.Context, tx *sqlx.Tx, rows []Rollup) error {
	if err := t.insertRows(ctx, tx, &rollupsTable, len(rows), func(i int) []any { return t.rollupRow(&rows[i]) }); err != nil {
		return fmt.Errorf("insert merged rollups: %w", err)
	}
	return nil
}

// FirstRollup returns the start of the oldest rollup bucket of the tenant, or 0 when there is none.
func (t *Tenant) FirstRollup(ctx context.Context) (int64, error) {
	first := int64(0)
	for _, res := range []int64{Minute, Hour} {
		var b *int64
		err := t.db.x.GetContext(ctx, &b, t.rebind(`SELECT MIN(bucket_ns) FROM metric_rollups WHERE tenant_id = ? AND res_ns = ?`), t.id, res)
		if err != nil {
			return 0, fmt.Errorf("find oldest rollup: %w", err)
		}
		if b != nil && (first == 0 || *b < first) {
			first = *b
		}
	}
	return first, nil
}

// LastRollup returns the start of the newest minute with data of the tenant, or 0 when there is none.
func (t *Tenant) LastRollup(ctx context.Context) (int64, error) {
	var b *int64
	err := t.db.x.GetContext(ctx, &b, t.rebind(`SELECT MAX(bucket_ns) FROM metric_rollups WHERE tenant_id = ? AND res_ns = ?`), t.id, Minute)
	if err != nil || b == nil {
		return 0, err
	}
	return *b, nil
}
