package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
)

// The attribute index (docs/data-model.md, "Attribute index"): ingest writes one span_attributes row
// per trace, indexed key and value of a batch, from span and resource attributes alike, so a filter
// on a selective value reads its few traces instead of every request of the window.

// DefaultIndexedAttributes are the keys indexed unless the tenant's configuration adds others: the
// entities people ask about during an incident (users, customers, orders, tenants) and where a
// request went (queue, table, model, flag). Not among them: http.route and the resource keys
// (service.version, host.name, k8s.pod.name), which cost a row per service and trace each, more
// than the ingest budget allows (docs/benchmarks.md); they have columns of their own (k8s.pod.name
// aside), and an operator may add them.
var DefaultIndexedAttributes = []string{
	"user.id", "enduser.id", "customer.id", "tenant.id", "order.id",
	"messaging.destination.name", "db.collection.name", "db.sql.table",
	"gen_ai.request.model", "feature_flag.key",
}

// LinkedTraceKey is the reserved index key under which ingest records, for each span with span
// links, the other traces it links to (value: the linked trace's id), so a producer's trace finds
// the traces that consumed its messages with one index lookup (LinkingSpans). Its rows count
// against no value limit: every consumer adds a new value, and a gap would hide consumers.
const LinkedTraceKey = "tracekit.linked_trace"

// DefaultAttributeValuesPerDay is a key's distinct-value limit per day of data unless configured.
const DefaultAttributeValuesPerDay = 100_000

// Limits of the configuration and of what is indexed.
const (
	maxIndexedKeys     = 64
	maxIndexedKeyBytes = 128
	// maxIndexedValueBytes: longer values (statements, payloads) are not entities to filter by;
	// a filter on one reads the spans.
	maxIndexedValueBytes = 256
)

// AttributeIndex configures which attribute keys are indexed and how many distinct values per key
// and day of data the index takes before the key stops being indexed for the rest of that day.
type AttributeIndex struct {
	Keys            []string
	MaxValuesPerDay int
}

// Validate says what is wrong with the configuration, in the operator's terms.
func (ix AttributeIndex) Validate() error {
	if len(ix.Keys) > maxIndexedKeys {
		return fmt.Errorf("attribute index: %d keys, at most %d: each key costs index rows on every span that carries it", len(ix.Keys), maxIndexedKeys)
	}
	for _, k := range ix.Keys {
		if k == "" || len(k) > maxIndexedKeyBytes || strings.ContainsAny(k, "\"\\\x00") {
			return fmt.Errorf("attribute index: key %q: want 1-%d characters without quotes, backslashes or NUL, e.g. user.id", k, maxIndexedKeyBytes)
		}
		if k == LinkedTraceKey {
			return fmt.Errorf("attribute index: key %q is reserved: TraceKit indexes span links under it itself; remove it from the configured keys", k)
		}
	}
	if ix.MaxValuesPerDay < 0 {
		return fmt.Errorf("attribute index: values per day %d: want a positive limit (0 means the default %d)", ix.MaxValuesPerDay, DefaultAttributeValuesPerDay)
	}
	return nil
}

// attrIndex is a DB's attribute index configuration and its per-key, per-day value counters.
type attrIndex struct {
	keys      []string
	quoted    [][]byte // `"key":` of each key, to skip spans that carry none
	columns   []string // keys with a column of their own (promoted)
	maxValues int

	mu       sync.Mutex
	counters map[counterKey]*valueCounter
	seed     maphash.Seed
}

type counterKey struct {
	tenant, key string
	day         int64
}

func newAttrIndex(cfg AttributeIndex) *attrIndex {
	ix := &attrIndex{maxValues: cfg.MaxValuesPerDay, counters: map[counterKey]*valueCounter{}, seed: maphash.MakeSeed()}
	if ix.maxValues == 0 {
		ix.maxValues = DefaultAttributeValuesPerDay
	}
	ix.keys = slices.Compact(slices.Sorted(slices.Values(cfg.Keys)))
	for _, k := range ix.keys {
		q, _ := json.Marshal(k)
		ix.quoted = append(ix.quoted, append(q, ':'))
		if _, ok := promoted[k]; ok {
			ix.columns = append(ix.columns, k)
		}
	}
	return ix
}

// SetAttributeIndex replaces the attribute index configuration (DefaultIndexedAttributes until
// called). Keys added later are indexed from the next batch on; filters on them read the spans for
// older windows.
func (db *DB) SetAttributeIndex(cfg AttributeIndex) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	db.attrs.Store(newAttrIndex(cfg))
	db.keysRegistered.Clear()
	return nil
}

func (db *DB) attrIndex() *attrIndex {
	if ix := db.attrs.Load(); ix != nil {
		return ix
	}
	db.attrs.CompareAndSwap(nil, newAttrIndex(AttributeIndex{Keys: DefaultIndexedAttributes}))
	return db.attrs.Load()
}

// valueCounter estimates the distinct values of a key in a day by linear counting on a fixed bitmap:
// constant memory however many values arrive, accurate to a few percent up to about a million.
type valueCounter struct {
	bits   [1 << 14]uint64 // 2^20 bits, 128 KiB
	set    int
	capped bool
}

func (c *valueCounter) add(h uint64) {
	i := h & (1<<20 - 1)
	w, b := &c.bits[i>>6], uint64(1)<<(i&63)
	if *w&b == 0 {
		*w |= b
		c.set++
	}
}

func (c *valueCounter) estimate() float64 {
	const m = 1 << 20
	if c.set >= m {
		return math.Inf(1)
	}
	return -m * math.Log(float64(m-c.set)/m)
}

// posting is one span_attributes row.
type posting struct {
	key, value, traceID string
	startNS             int64
}

// gap is a key's unindexed time range: it passed its value limit there.
type gap struct {
	key      string
	from, to int64
}

const dayNS = int64(24 * time.Hour)

// postingKey is one trace's value of an indexed key.
type postingKey struct{ trace, key, value string }

// collect returns the indexed values of spans and of the resources of their entry spans, and the
// other traces spans link to (LinkedTraceKey), per trace with the earliest start that carries them.
func (ix *attrIndex) collect(spans []Span) map[postingKey]int64 {
	first := map[postingKey]int64{}
	add := func(k postingKey, start int64) {
		if v, ok := first[k]; !ok || start < v {
			first[k] = start
		}
	}
	for i := range spans {
		if s := &spans[i]; len(s.Links) > 0 {
			for _, l := range ParseLinks(s.Links) {
				if l.TraceID != s.TraceID && l.TraceID != "" && len(l.TraceID) <= maxIndexedValueBytes {
					add(postingKey{s.TraceID, LinkedTraceKey, strings.ToLower(l.TraceID)}, s.StartNS)
				}
			}
		}
	}
	if len(ix.keys) == 0 {
		return first
	}
	resources := map[string][][2]string{} // resource JSON -> its indexed pairs: spans of a resource share it
	var pairs [][2]string
	for i := range spans {
		s := &spans[i]
		pairs = ix.pairs(pairs[:0], s.Attributes)
		for _, k := range ix.columns {
			// Ingest keeps a value its column holds out of the attributes JSON.
			if v := columnValue(s, promoted[k]); v != "" && len(v) <= maxIndexedValueBytes {
				pairs = append(pairs, [2]string{k, v})
			}
		}
		if s.IsEntry {
			// A resource is indexed with its service's requests only: every span of a process carries
			// it, and a row per span would cost more than the spans themselves.
			res, ok := resources[string(s.ResourceAttributes)]
			if !ok {
				res = ix.pairs(nil, s.ResourceAttributes)
				resources[string(s.ResourceAttributes)] = res
			}
			pairs = append(pairs, res...)
		}
		for _, p := range pairs {
			add(postingKey{s.TraceID, p[0], p[1]}, s.StartNS)
		}
	}
	return first
}

// admit counts the values of first against their keys' daily limits and returns the index rows of
// those within them, and the gaps of keys that passed them.
func (ix *attrIndex) admit(tenant string, first map[postingKey]int64) ([]posting, []gap) {
	if len(first) == 0 {
		return nil, nil
	}
	out := make([]posting, 0, len(first))
	var gaps []gap
	ix.mu.Lock()
	defer ix.mu.Unlock()
	for k, start := range first {
		if k.key == LinkedTraceKey {
			out = append(out, posting{k.key, k.value, k.trace, start})
			continue
		}
		day := start - start%dayNS
		ck := counterKey{tenant, k.key, day}
		c := ix.counters[ck]
		if c == nil {
			c = &valueCounter{}
			ix.counters[ck] = c
			ix.forgetBefore(day - 2*dayNS)
		}
		if c.capped {
			continue
		}
		c.add(maphash.String(ix.seed, k.value))
		if c.estimate() > float64(ix.maxValues) {
			c.capped = true
			gaps = append(gaps, gap{k.key, day, day + dayNS})
			continue
		}
		out = append(out, posting{k.key, k.value, k.trace, start})
	}
	// A fixed order keeps concurrent batches' index inserts from deadlocking on each other.
	slices.SortFunc(out, func(a, b posting) int {
		return cmp.Or(strings.Compare(a.key, b.key), strings.Compare(a.value, b.value), strings.Compare(a.traceID, b.traceID))
	})
	return out, gaps
}

// forgetBefore drops the counters of days before day: data that old arrives rarely, and recounting
// it from zero only lets a few more values in.
func (ix *attrIndex) forgetBefore(day int64) {
	if len(ix.counters) < 4*max(len(ix.keys), 1) {
		return
	}
	for k := range ix.counters {
		if k.day < day {
			delete(ix.counters, k)
		}
	}
}

// pairs appends the indexed (key, value) pairs of a JSON object of attributes. It looks for each
// key's `"key":` rather than decoding the object: most spans carry none of the keys, and one
// decoding per span was most of the index's ingest cost. A quote inside a JSON string is escaped,
// so the pattern only matches a key (of the object, or of an object nested in it: a rare false
// positive that costs an index row, never a missed match).
func (ix *attrIndex) pairs(out [][2]string, doc []byte) [][2]string {
	for i, q := range ix.quoted {
		at := bytes.Index(doc, q)
		if at < 0 {
			continue
		}
		if v, ok := scalarAt(doc[at+len(q):]); ok {
			out = append(out, [2]string{ix.keys[i], v})
		}
	}
	return out
}

// scalarAt reads the JSON value at the start of b as indexValue does.
func scalarAt(b []byte) (string, bool) {
	b = bytes.TrimLeft(b, " \t\r\n")
	if len(b) == 0 {
		return "", false
	}
	if b[0] == '"' {
		end, escaped := 1, false
		for ; end < len(b) && b[end] != '"'; end++ {
			if b[end] == '\\' {
				escaped = true
				end++
			}
		}
		if end >= len(b) {
			return "", false
		}
		if !escaped {
			s := string(b[1:end])
			return s, len(s) <= maxIndexedValueBytes
		}
		return indexValue(b[:end+1])
	}
	end := bytes.IndexAny(b, ",}] \t\r\n")
	if end < 0 {
		end = len(b)
	}
	return indexValue(b[:end])
}

// columnValue is a span's value of a promoted column, as text; "" when unset.
func columnValue(s *Span, col string) string {
	switch col {
	case "http_route":
		return s.HTTPRoute
	case "http_method":
		return s.HTTPMethod
	case "http_status_code":
		if s.HTTPStatusCode == 0 {
			return ""
		}
		return strconv.Itoa(int(s.HTTPStatusCode))
	case "db_system":
		return s.DBSystem
	case "db_statement":
		return s.DBStatement
	case "rpc_service":
		return s.RPCService
	case "rpc_method":
		return s.RPCMethod
	case "peer_service":
		return s.PeerService
	case "host_name":
		return s.HostName
	case "service_version":
		return s.ServiceVersion
	}
	return ""
}

// indexValue is the text a filter compares a JSON scalar with: a string as it is, a number or a
// boolean as JSON writes it. Objects, arrays, null and long values are not indexed.
func indexValue(raw json.RawMessage) (string, bool) {
	if len(raw) == 0 || len(raw) > maxIndexedValueBytes+2 {
		return "", false
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) != nil || len(s) > maxIndexedValueBytes {
			return "", false
		}
		return s, true
	case '{', '[', 'n':
		return "", false
	}
	return string(raw), true
}

// postingsTable is span_attributes as ingest writes it (migration 00011), in postingRow's order.
var postingsTable = newTable("span_attributes", "tenant_id text", "key text", "value text", "start_ns bigint", "trace_id uuid")

func (t *Tenant) postingRow(p *posting) []any {
	if t.db.dialect == Postgres {
		trace, _ := traceBytes(p.traceID) // the id of a span InsertBatch checked
		return []any{t.id, p.key, p.value, p.startNS, trace}
	}
	return []any{t.id, p.key, p.value, p.startNS, p.traceID}
}

// indexWrites is what a batch adds to the attribute index.
type indexWrites struct {
	postings []posting
	gaps     []gap
}

// of keeps the rows of spans, a part of the batch the writes were computed for.
func (w *indexWrites) of(ix *attrIndex, spans []Span) {
	keep := ix.collect(spans)
	var kept []posting // a new slice: the batch may be written again with the whole of w
	for _, p := range w.postings {
		if _, ok := keep[postingKey{p.traceID, p.key, p.value}]; ok {
			kept = append(kept, p)
		}
	}
	w.postings = kept
}

// indexWrites computes the batch's index rows and registers the indexed keys of the tenant (once per
// process and configuration), so queries know since when each key is indexed.
func (t *Tenant) indexWrites(ctx context.Context, spans []Span) (indexWrites, error) {
	ix := t.db.attrIndex()
	if _, done := t.db.keysRegistered.Load(t.id); !done && len(spans) > 0 {
		if err := t.registerKeys(ctx, ix.keys); err != nil {
			return indexWrites{}, fmt.Errorf("register indexed attribute keys: %w", err)
		}
		t.db.keysRegistered.Store(t.id, true)
	}
	p, g := ix.admit(t.id, ix.collect(spans))
	return indexWrites{p, g}, nil
}

// registerKeys records keys as indexed from now on (from the start for a tenant without spans yet),
// unless already recorded, and forgets keys no longer configured (re-adding one later starts it
// afresh).
func (t *Tenant) registerKeys(ctx context.Context, keys []string) error {
	since := time.Now().UnixNano()
	var stored []int
	if err := t.db.x.SelectContext(ctx, &stored, t.rebind(`SELECT 1 FROM spans WHERE tenant_id = ? LIMIT 1`), t.id); err != nil {
		return err
	}
	if len(stored) == 0 {
		since = 0
	}
	return t.db.write(ctx, func(tx *sqlx.Tx) error {
		for _, k := range keys {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO span_attribute_keys (tenant_id, key, since_ns) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id, key) DO NOTHING`), t.id, k, since); err != nil {
				return err
			}
		}
		q := `DELETE FROM span_attribute_keys WHERE tenant_id = ?`
		args := []any{t.id}
		if len(keys) > 0 {
			in, inArgs, err := sqlx.In(" AND key NOT IN (?)", keys)
			if err != nil {
				return err
			}
			q += in
			args = append(args, inArgs...)
		}
		_, err := tx.ExecContext(ctx, tx.Rebind(q), args...)
		return err
	})
}

// recordGaps stores the ranges where keys stopped being indexed. It commits before the batch's
// spans: a gap recorded for a batch that then fails only makes filters read spans, while spans
// stored without their gap would make filters miss them.
func (t *Tenant) recordGaps(ctx context.Context, gaps []gap) error {
	if len(gaps) == 0 {
		return nil
	}
	return t.db.write(ctx, func(tx *sqlx.Tx) error {
		for _, g := range gaps {
			if _, err := tx.ExecContext(ctx, tx.Rebind(`INSERT INTO span_attribute_gaps (tenant_id, key, from_ns, to_ns) VALUES (?, ?, ?, ?)
				ON CONFLICT (tenant_id, key, from_ns) DO NOTHING`), t.id, g.key, g.from, g.to); err != nil {
				return fmt.Errorf("record that attribute %s passed its value limit: %w", g.key, err)
			}
		}
		return nil
	})
}

// attributeSlack widens a window's index lookup: the spans carrying a request's attributes start
// after the request (its children) or, for a service's request inside a trace, before it.
const attributeSlack = int64(15 * time.Minute)

// postingProbe is how many traces an indexed filter fetches before it counts as unselective; then
// the filter joins the index instead of listing its traces.
const postingProbe = 5000

// indexedKeys returns the filter keys answerable from the index over [from, to): configured, indexed
// since before the window, and without a gap in it.
func (t *Tenant) indexedKeys(ctx context.Context, keys []string, from, to int64) (map[string]bool, error) {
	out := map[string]bool{}
	if len(keys) == 0 {
		return out, nil
	}
	q, args, err := sqlx.In(`SELECT key FROM span_attribute_keys k WHERE tenant_id = ? AND key IN (?) AND since_ns <= ?
		AND NOT EXISTS (SELECT 1 FROM span_attribute_gaps g WHERE g.tenant_id = k.tenant_id AND g.key = k.key AND g.from_ns < ? AND g.to_ns > ?)`,
		t.id, keys, from-attributeSlack, to+attributeSlack, from-attributeSlack)
	if err != nil {
		return nil, err
	}
	var found []string
	if err := t.db.x.SelectContext(ctx, &found, t.rebind(q), args...); err != nil {
		return nil, fmt.Errorf("read indexed attribute keys: %w", err)
	}
	ix := t.db.attrIndex()
	for _, k := range found {
		if _, ok := slices.BinarySearch(ix.keys, k); ok {
			out[k] = true
		}
	}
	return out, nil
}

// foundTrace is a trace an attribute index lookup found, with the earliest and latest start of its
// postings: by the index's premise (attributeSlack) its requests start within attributeSlack of each.
type foundTrace struct {
	id          string
	first, last int64
}

// attributeTraces returns the traces that carry key=value around [from, to), sorted by id, and
// whether that is all of them (false: more than postingProbe).
func (t *Tenant) attributeTraces(ctx context.Context, key, value string, from, to int64) ([]foundTrace, bool, error) {
	var rows []struct {
		ID      string `db:"trace_id"`
		StartNS int64  `db:"start_ns"`
	}
	err := t.db.x.SelectContext(ctx, &rows, t.rebind(`SELECT `+t.traceHex("trace_id")+` AS trace_id, start_ns FROM span_attributes
		WHERE tenant_id = ? AND key = ? AND value = ? AND start_ns >= ? AND start_ns < ? LIMIT ?`),
		t.id, key, value, from-attributeSlack, to+attributeSlack, postingProbe+1)
	if err != nil {
		return nil, false, fmt.Errorf("read attribute index: %w", err)
	}
	if len(rows) > postingProbe {
		return nil, false, nil
	}
	out := make([]foundTrace, 0, len(rows)) // non-nil: no trace is an answer
	for _, r := range rows {
		out = append(out, foundTrace{r.ID, r.StartNS, r.StartNS})
	}
	slices.SortFunc(out, func(a, b foundTrace) int { return strings.Compare(a.id, b.id) })
	merged := out[:0]
	for _, f := range out {
		// A trace written in several batches has a posting per batch.
		if n := len(merged); n > 0 && merged[n-1].id == f.id {
			merged[n-1].first, merged[n-1].last = min(merged[n-1].first, f.first), max(merged[n-1].last, f.last)
			continue
		}
		merged = append(merged, f)
	}
	return merged, true, nil
}

// intersect keeps the traces of a present in b; both sorted by id.
func intersect(a, b []foundTrace) []foundTrace {
	out := a[:0:0]
	for _, f := range a {
		if _, ok := slices.BinarySearchFunc(b, f.id, func(x foundTrace, id string) int { return strings.Compare(x.id, id) }); ok {
			out = append(out, f)
		}
	}
	return out
}

// AttributeCount is how many sampled requests carried one value of a key.
type AttributeCount struct {
	Value    string
	Requests int
}

// AttributeKey is a key seen on a service's spans, with its most frequent values among the sampled
// requests.
type AttributeKey struct {
	Key      string
	Indexed  bool
	Requests int // sampled requests whose trace carries the key
	Values   []AttributeCount
}

// AttributeSummary describes the attributes carried by the spans of traceIDs and their resources:
// per key the traces carrying it and the top values, most frequent first. It reads every span of
// the given traces, a sample the caller chose.
func (t *Tenant) AttributeSummary(ctx context.Context, traceIDs []string, topValues int) ([]AttributeKey, error) {
	if traceIDs = t.storedTraces(traceIDs); len(traceIDs) == 0 {
		return nil, nil
	}
	q := `SELECT trace_id, attributes, resource_attributes FROM spans WHERE tenant_id = ? AND trace_id IN (?)`
	if t.db.dialect == Postgres {
		// Resources are stored once per tenant there (span_resources, migration 00009).
		q = `SELECT ` + t.traceHex("s.trace_id") + ` AS trace_id, s.attributes, r.attributes AS resource_attributes FROM spans s
			LEFT JOIN span_resources r ON r.tenant_id = s.tenant_id AND r.id = s.resource_id
			WHERE s.tenant_id = ? AND s.trace_id IN (?)`
	}
	q, args, err := sqlx.In(q, t.id, traceIDs)
	if err != nil {
		return nil, err
	}
	rows, err := t.db.x.QueryxContext(ctx, t.rebind(q), args...)
	if err != nil {
		return nil, fmt.Errorf("read attributes of %d traces: %w", len(traceIDs), err)
	}
	defer rows.Close()
	type kv struct{ key, value string }
	seen := map[kv]map[string]bool{} // key and value -> traces
	keyTraces := map[string]map[string]bool{}
	for rows.Next() {
		var trace string
		var attrs, res []byte
		if err := rows.Scan(&trace, &attrs, &res); err != nil {
			return nil, err
		}
		for _, doc := range [][]byte{attrs, res} {
			var m map[string]json.RawMessage
			if json.Unmarshal(doc, &m) != nil {
				continue
			}
			for k, raw := range m {
				if keyTraces[k] == nil {
					keyTraces[k] = map[string]bool{}
				}
				keyTraces[k][trace] = true
				if v, ok := indexValue(raw); ok {
					p := kv{k, v}
					if seen[p] == nil {
						seen[p] = map[string]bool{}
					}
					seen[p][trace] = true
				}
			}
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read attributes of %d traces: %w", len(traceIDs), err)
	}
	ix := t.db.attrIndex()
	byKey := map[string]*AttributeKey{}
	for k, traces := range keyTraces {
		_, indexed := slices.BinarySearch(ix.keys, k)
		byKey[k] = &AttributeKey{Key: k, Indexed: indexed, Requests: len(traces)}
	}
	for p, traces := range seen {
		a := byKey[p.key]
		a.Values = append(a.Values, AttributeCount{p.value, len(traces)})
	}
	out := make([]AttributeKey, 0, len(byKey))
	for _, a := range byKey {
		slices.SortFunc(a.Values, func(x, y AttributeCount) int {
			if x.Requests != y.Requests {
				return y.Requests - x.Requests
			}
			return strings.Compare(x.Value, y.Value)
		})
		a.Values = a.Values[:min(len(a.Values), topValues)]
		out = append(out, *a)
	}
	slices.SortFunc(out, func(x, y AttributeKey) int {
		if x.Requests != y.Requests {
			return y.Requests - x.Requests
		}
		return strings.Compare(x.Key, y.Key)
	})
	return out, nil
}
