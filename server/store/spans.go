package store

import (
	"cmp"
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
)

// Span kinds, as in OTLP.
const (
	KindUnspecified = 0
	KindInternal    = 1
	KindServer      = 2
	KindClient      = 3
	KindProducer    = 4
	KindConsumer    = 5
)

// Status codes, as in OTLP.
const (
	StatusUnset = 0
	StatusOK    = 1
	StatusError = 2
)

// Span is one stored span. Attributes, ResourceAttributes and Events hold JSON.
type Span struct {
	TraceID            string `db:"trace_id"`
	SpanID             string `db:"span_id"`
	ParentSpanID       string `db:"parent_span_id"`
	Service            string `db:"service"`
	ServiceVersion     string `db:"service_version"`
	Operation          string `db:"operation"`
	Kind               int16  `db:"kind"`
	IsEntry            bool   `db:"is_entry"`
	StartNS            int64  `db:"start_ns"`
	DurationNS         int64  `db:"duration_ns"`
	StatusCode         int16  `db:"status_code"`
	StatusMessage      string `db:"status_message"`
	HTTPMethod         string `db:"http_method"`
	HTTPRoute          string `db:"http_route"`
	HTTPStatusCode     int32  `db:"http_status_code"`
	DBSystem           string `db:"db_system"`
	DBStatement        string `db:"db_statement"`
	RPCService         string `db:"rpc_service"`
	RPCMethod          string `db:"rpc_method"`
	PeerService        string `db:"peer_service"`
	HostName           string `db:"host_name"`
	Attributes         []byte `db:"attributes"`
	ResourceAttributes []byte `db:"resource_attributes"`
	Events             []byte `db:"events"`
	Links              []byte `db:"links"` // JSON array of Link; empty when the span has none

	resourceID int64 // ResourceAttributes, ServiceVersion and HostName's key in span_resources, set by storeResources (PostgreSQL)
}

// TreeFields places the span in its trace's tree (tracetree.Build).
func (s *Span) TreeFields() (id, parentID string, startNS, durationNS int64) {
	return s.SpanID, s.ParentSpanID, s.StartNS, s.DurationNS
}

// Failed says whether the span counts as a failure: the rule errorCond states in SQL.
func (s *Span) Failed() bool { return s.StatusCode == StatusError || s.HTTPStatusCode >= 500 }

// Failed says whether the call counts as a failure: the rule llmErrorCond states in SQL.
func (c *LLMCall) Failed() bool { return c.StatusCode == StatusError || c.ErrorType != "" }

// LLMCall is one call to a language model, derived from a GenAI span. CostUSD is nil when the model's
// price is unknown.
type LLMCall struct {
	ID                int64    `db:"id"`
	TraceID           string   `db:"trace_id"`
	SpanID            string   `db:"span_id"`
	Service           string   `db:"service"`
	Operation         string   `db:"operation"`
	Provider          string   `db:"provider"`
	RequestModel      string   `db:"request_model"`
	ResponseModel     string   `db:"response_model"`
	InputTokens       int64    `db:"input_tokens"`
	OutputTokens      int64    `db:"output_tokens"`
	CachedInputTokens int64    `db:"cached_input_tokens"`
	CostUSD           *float64 `db:"cost_usd"`
	StartNS           int64    `db:"start_ns"`
	DurationNS        int64    `db:"duration_ns"`
	StatusCode        int16    `db:"status_code"`
	ErrorType         string   `db:"error_type"`
}

// Batch is what one ingest request writes: all of it commits, or none of it.
type Batch struct {
	Spans    []Span
	LLMCalls []LLMCall
}

// sqliteSpanColumns are SQLite's span columns (spansTable holds PostgreSQL's): it keeps the resource
// attributes on each span.
var sqliteSpanColumns = []string{"tenant_id", "trace_id", "span_id", "parent_span_id", "service", "service_version",
	"operation", "kind", "is_entry", "start_ns", "duration_ns", "status_code", "status_message", "http_method",
	"http_route", "http_status_code", "db_system", "db_statement", "rpc_service", "rpc_method", "peer_service",
	"host_name", "attributes", "resource_attributes", "events", "links"}

func (t *Tenant) spanRow(s *Span) []any {
	if t.db.dialect == Postgres {
		// Binary ids (00014), checked by InsertBatch; empty JSON is NULL (00009): '{}' and '[]' cost 5
		// bytes a span each; so are empty promoted texts (00014), a byte each. The version and host
		// are the resource's (resourceID, 00016): NULL here.
		trace, _ := traceBytes(s.TraceID)
		span, _ := spanInt(s.SpanID)
		var parent any // NULL: a root
		if s.ParentSpanID != "" {
			parent, _ = spanInt(s.ParentSpanID)
		}
		return []any{s.StartNS, s.DurationNS, span, parent, s.resourceID, trace, s.HTTPStatusCode, s.Kind,
			s.StatusCode, s.IsEntry, t.id, s.Service, nil, s.Operation, emptyNull(s.StatusMessage),
			emptyNull(s.HTTPMethod), emptyNull(s.HTTPRoute), emptyNull(s.DBSystem), emptyNull(s.DBStatement),
			emptyNull(s.RPCService), emptyNull(s.RPCMethod), emptyNull(s.PeerService), nil,
			nullJSON(s.Attributes, "{}"), nullJSON(s.Events, "[]"), nullJSON(s.Links, "[]")}
	}
	return []any{t.id, s.TraceID, s.SpanID, s.ParentSpanID, s.Service, s.ServiceVersion, s.Operation, s.Kind,
		s.IsEntry, s.StartNS, s.DurationNS, s.StatusCode, s.StatusMessage, s.HTTPMethod, s.HTTPRoute,
		s.HTTPStatusCode, s.DBSystem, s.DBStatement, s.RPCService, s.RPCMethod, s.PeerService, s.HostName,
		t.json(s.Attributes, "{}"), t.json(s.ResourceAttributes, "{}"), t.json(s.Events, "[]"), nullText(s.Links, "[]")}
}

func (t *Tenant) llmRow(c *LLMCall) []any {
	return []any{t.id, c.TraceID, c.SpanID, c.Service, c.Operation, c.Provider, c.RequestModel, c.ResponseModel,
		c.InputTokens, c.OutputTokens, c.CachedInputTokens, c.CostUSD, c.StartNS, c.DurationNS, c.StatusCode,
		c.ErrorType}
}

// emptyNull is a promoted text (PostgreSQL), or nil (NULL) when empty; readers select it through
// Tenant.text.
func emptyNull(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullableTexts are the span columns PostgreSQL stores empty as NULL (migration 00014).
var nullableTexts = map[string]bool{"status_message": true, "http_method": true, "http_route": true,
	"db_system": true, "db_statement": true, "rpc_service": true, "rpc_method": true, "peer_service": true}

// text is the expression reading span column col (an empty string for NULL), named col.
func (t *Tenant) text(col string) string { return t.textOf(col, col) }

// textOf is text of expression expr, named col.
func (t *Tenant) textOf(expr, col string) string {
	if t.db.dialect == Postgres && nullableTexts[col] {
		return "COALESCE(" + expr + ", '') AS " + col
	}
	if expr == col {
		return col
	}
	return expr + " AS " + col
}

// nullJSON is a jsonb value, or nil (NULL) for an empty document.
func nullJSON(b []byte, empty string) any {
	if len(b) == 0 || string(b) == empty {
		return nil
	}
	return b
}

// nullText is a JSON document as SQLite text, or nil (NULL) for an empty document.
func nullText(b []byte, empty string) any {
	if len(b) == 0 || string(b) == empty {
		return nil
	}
	return string(b)
}

// json adapts a JSON document to the column type: bytes for jsonb, text for SQLite (whose JSON
// functions would read a BLOB as its binary JSONB format).
func (t *Tenant) json(b []byte, empty string) any {
	if len(b) == 0 {
		b = []byte(empty)
	}
	if t.db.dialect == SQLite {
		return string(b)
	}
	return b
}

// InsertBatch stores the batch in one transaction and returns only once it is committed, so a caller
// may acknowledge the data. It is idempotent: a span already stored for the tenant (same trace and
// span id: an exporter's retry, or the same span from two writers at once) is skipped, with its LLM
// call and its share of the rollups, so nothing is stored or counted twice. PostgreSQL writes each
// table with one statement (COPY, or on a tenant's own role INSERT … SELECT FROM unnest), and only a
// batch that hits the unique index is written again skipping the spans stored already; SQLite uses
// multi-row INSERTs that skip them.
func (t *Tenant) InsertBatch(ctx context.Context, b Batch) error {
	b = withoutRepeats(b)
	if len(b.Spans) == 0 && len(b.LLMCalls) == 0 {
		return nil
	}
	if t.db.dialect == Postgres {
		if err := checkIDs(b.Spans); err != nil {
			return fmt.Errorf("store %d spans for tenant %q: %w", len(b.Spans), t.id, err)
		}
	}
	producers, err := t.producerEnds(ctx, &b)
	if err != nil {
		return fmt.Errorf("store %d spans for tenant %q: %w", len(b.Spans), t.id, err)
	}
	rls := false
	if t.db.dialect == Postgres {
		if rls, err = t.db.underRLS(ctx); err != nil {
			return fmt.Errorf("store %d spans for tenant %q: %w", len(b.Spans), t.id, err)
		}
	}
	index, err := t.indexWrites(ctx, b.Spans)
	if err == nil {
		err = t.recordGaps(ctx, index.gaps)
	}
	if err != nil {
		return fmt.Errorf("store %d spans for tenant %q: %w", len(b.Spans), t.id, err)
	}
	write := func() error {
		if t.db.dialect != Postgres {
			return t.insertNew(ctx, &b, producers, index)
		}
		if err := t.ensureBatchPartitions(ctx, &b); err != nil {
			return err
		}
		if err := t.storeResources(ctx, b.Spans); err != nil {
			return err
		}
		// Metric rollups commit with the spans they count, so metrics never disagree with stored traces;
		// the attribute index commits with the spans it finds.
		err := t.bulkBatch(ctx, b, batchRollups(&b, producers), index.postings, rls)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == uniqueViolation {
			err = t.insertNew(ctx, &b, producers, index)
		}
		return err
	}
	err = write()
	if missingPartition(err) {
		// Another replica's retention dropped a partition this process had made: make it again.
		t.db.forgetPartitions(t.id)
		err = write()
	}
	if err != nil {
		return fmt.Errorf("store %d spans for tenant %q: %w", len(b.Spans), t.id, err)
	}
	// The services table is derived from spans; a failure here must not fail an ingest whose spans are
	// committed (the client would resend them), and the next batch repairs it.
	if err := t.touchServices(ctx, b.Spans); err != nil {
		t.db.servicesFailed.Add(1)
		t.db.log().Warn("spans stored but the services table not updated; the next batch of these services repairs it",
			"tenant", t.id, "err", err)
	}
	return nil
}

// ensureBatchPartitions makes sure the partitions that b's spans, LLM calls and rollups go to exist
// (rollup buckets and LLM calls start within their spans' days).
func (t *Tenant) ensureBatchPartitions(ctx context.Context, b *Batch) error {
	times := make([]int64, 0, len(b.Spans)+len(b.LLMCalls))
	for i := range b.Spans {
		times = append(times, b.Spans[i].StartNS)
	}
	for i := range b.LLMCalls {
		times = append(times, b.LLMCalls[i].StartNS)
	}
	for _, table := range []string{"spans", "llm_calls", "metric_rollups", "span_attributes"} {
		if err := t.EnsurePartitions(ctx, table, times...); err != nil {
			return err
		}
	}
	return nil
}

// uniqueViolation is PostgreSQL's SQLSTATE for a duplicate key.
const uniqueViolation = "23505"

// withoutRepeats keeps the first of the spans (and LLM calls) a batch holds more than once.
func withoutRepeats(b Batch) Batch {
	seen := make(map[SpanRef]struct{}, len(b.Spans))
	var spans []Span
	for i := range b.Spans {
		k := SpanRef{b.Spans[i].TraceID, b.Spans[i].SpanID}
		if _, dup := seen[k]; dup {
			if spans == nil {
				spans = append(make([]Span, 0, len(b.Spans)), b.Spans[:i]...)
			}
			continue
		}
		seen[k] = struct{}{}
		if spans != nil {
			spans = append(spans, b.Spans[i])
		}
	}
	if spans == nil {
		return b // the common case: nothing repeated, nothing copied
	}
	b.Spans = spans
	calls := map[SpanRef]bool{}
	b.LLMCalls = keepCalls(b.LLMCalls, func(k SpanRef) bool {
		if calls[k] {
			return false // one call per span
		}
		calls[k] = true
		return true
	})
	return b
}

func keepCalls(calls []LLMCall, keep func(SpanRef) bool) []LLMCall {
	out := calls[:0:0]
	for _, c := range calls {
		if keep(SpanRef{c.TraceID, c.SpanID}) {
			out = append(out, c)
		}
	}
	return out
}

// insertNew writes the spans of b not stored yet, and the LLM calls, rollups and index rows of those
// only; b is narrowed to what was written.
func (t *Tenant) insertNew(ctx context.Context, b *Batch, producers map[SpanRef]int64, index indexWrites) error {
	return t.db.write(ctx, func(tx *sqlx.Tx) error {
		stored, err := t.insertSpansOnce(ctx, tx, b.Spans)
		if err != nil {
			return err
		}
		if len(stored) < len(b.Spans) {
			spans := make([]Span, 0, len(stored))
			skipped := map[SpanRef]bool{}
			for _, s := range b.Spans {
				k := SpanRef{s.TraceID, s.SpanID}
				if _, ok := stored[k]; ok {
					spans = append(spans, s)
				} else {
					skipped[k] = true
				}
			}
			b.Spans = spans
			b.LLMCalls = keepCalls(b.LLMCalls, func(k SpanRef) bool { return !skipped[k] })
			index.of(t.db.attrIndex(), spans)
		}
		if err := t.insertRows(ctx, tx, &postingsTable, len(index.postings), func(i int) []any { return t.postingRow(&index.postings[i]) }); err != nil {
			return err
		}
		rollups := batchRollups(b, producers)
		if err := t.insertRows(ctx, tx, &rollupsTable, len(rollups), func(i int) []any { return t.rollupRow(&rollups[i]) }); err != nil {
			return err
		}
		return t.insertRows(ctx, tx, &llmTable, len(b.LLMCalls), func(i int) []any { return t.llmRow(&b.LLMCalls[i]) })
	})
}

// insertSpansOnce inserts the spans not stored yet (the unique index on trace and span id decides)
// and returns the ones it inserted: on PostgreSQL with one INSERT … SELECT FROM unnest, on SQLite
// with multi-row INSERTs.
func (t *Tenant) insertSpansOnce(ctx context.Context, tx *sqlx.Tx, spans []Span) (map[SpanRef]struct{}, error) {
	// The unique index is the only one: spans_span on SQLite, one on each day partition on PostgreSQL
	// (00014), which a resent span reaches since it keeps its start time.
	onConflict := " ON CONFLICT DO NOTHING RETURNING " + t.traceHex("trace_id") + ", " + t.spanHex("span_id")
	stored := make(map[SpanRef]struct{}, len(spans))
	insert := func(q string, args []any) error {
		rows, err := tx.QueryContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("insert into spans: %w", err)
		}
		for rows.Next() {
			var key SpanRef
			if err := rows.Scan(&key.TraceID, &key.SpanID); err != nil {
				rows.Close()
				return err
			}
			stored[key] = struct{}{}
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return fmt.Errorf("insert into spans: %w", err)
		}
		return nil
	}
	if t.db.dialect == Postgres {
		if len(spans) == 0 {
			return stored, nil
		}
		return stored, insert(spansTable.unnest+onConflict, spansTable.arrays(len(spans), func(i int) []any { return t.spanRow(&spans[i]) }))
	}
	const perStatement = 64
	tuple := "(" + placeholders(len(sqliteSpanColumns)) + ")"
	args := make([]any, 0, perStatement*len(sqliteSpanColumns))
	for i := 0; i < len(spans); i += perStatement {
		k := min(perStatement, len(spans)-i)
		args = args[:0]
		for j := i; j < i+k; j++ {
			args = append(args, t.spanRow(&spans[j])...)
		}
		q := "INSERT INTO spans (" + strings.Join(sqliteSpanColumns, ", ") + ") VALUES " + strings.Repeat(tuple+",", k-1) + tuple + onConflict
		if err := insert(q, args); err != nil {
			return nil, err
		}
	}
	return stored, nil
}

// bulkBatch writes a whole batch in one transaction, one statement per table (table.bulkWrite).
func (t *Tenant) bulkBatch(ctx context.Context, b Batch, rollups []Rollup, postings []posting, underRLS bool) error {
	conn, err := t.db.x.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn()
		tx, err := pc.Begin(ctx)
		if err != nil {
			return err
		}
		defer tx.Rollback(ctx) //nolint:errcheck // no-op after Commit
		if err := spansTable.bulkWrite(ctx, tx, underRLS, len(b.Spans), func(i int) []any { return t.spanRow(&b.Spans[i]) }); err != nil {
			return err
		}
		if err := postingsTable.bulkWrite(ctx, tx, underRLS, len(postings), func(i int) []any { return t.postingRow(&postings[i]) }); err != nil {
			return err
		}
		if err := rollupsTable.bulkWrite(ctx, tx, underRLS, len(rollups), func(i int) []any { return t.rollupRow(&rollups[i]) }); err != nil {
			return err
		}
		if err := llmTable.bulkWrite(ctx, tx, underRLS, len(b.LLMCalls), func(i int) []any { return t.llmRow(&b.LLMCalls[i]) }); err != nil {
			return err
		}
		err = tx.Commit(ctx)
		if err != nil && pc.IsClosed() {
			return driver.ErrBadConn
		}
		return err
	})
}

// serviceTouchSlack is how far (in data time) a service's last-seen may lag before ingest updates it.
const serviceTouchSlack = int64(60e9)

// seenRange is the span start times a batch holds for one service, or one version of it.
type seenRange struct {
	service, version string
	first, last      int64
}

// touchServices records the services and service versions of a batch with the time range they
// were seen in, skipping those whose range is already recorded (within serviceTouchSlack).
func (t *Tenant) touchServices(ctx context.Context, spans []Span) error {
	services, versions := map[string]*seenRange{}, map[[2]string]*seenRange{}
	for i := range spans {
		s := &spans[i]
		if r := services[s.Service]; r == nil {
			services[s.Service] = &seenRange{s.Service, s.ServiceVersion, s.StartNS, s.StartNS}
		} else {
			r.first = min(r.first, s.StartNS)
			if s.StartNS > r.last {
				r.last, r.version = s.StartNS, s.ServiceVersion // the latest version is the current one
			}
		}
		k := [2]string{s.Service, s.ServiceVersion}
		if r := versions[k]; r == nil {
			versions[k] = &seenRange{s.Service, s.ServiceVersion, s.StartNS, s.StartNS}
		} else {
			r.first, r.last = min(r.first, s.StartNS), max(r.last, s.StartNS)
		}
	}
	greatest, least := "GREATEST", "LEAST"
	if t.db.dialect == SQLite {
		greatest, least = "max", "min"
		t.db.writeMu.Lock()
		defer t.db.writeMu.Unlock()
	}
	if err := t.touch(ctx, "services", slices.Collect(maps.Values(services)), t.rebind(`INSERT INTO services (tenant_id, name, version, first_seen_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, name) DO UPDATE SET
			version = CASE WHEN excluded.last_seen_ns >= services.last_seen_ns THEN excluded.version ELSE services.version END,
			first_seen_ns = `+least+`(services.first_seen_ns, excluded.first_seen_ns),
			last_seen_ns = `+greatest+`(services.last_seen_ns, excluded.last_seen_ns)
		RETURNING first_seen_ns, last_seen_ns`)); err != nil {
		return err
	}
	return t.touch(ctx, "service_versions", slices.Collect(maps.Values(versions)), t.rebind(`INSERT INTO service_versions (tenant_id, service, version, first_seen_ns, last_seen_ns) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, service, version) DO UPDATE SET
			first_seen_ns = `+least+`(service_versions.first_seen_ns, excluded.first_seen_ns),
			last_seen_ns = `+greatest+`(service_versions.last_seen_ns, excluded.last_seen_ns)
		RETURNING first_seen_ns, last_seen_ns`))
}

// touch upserts the ranges not yet recorded into table with q, in a fixed order so that concurrent
// batches never deadlock.
func (t *Tenant) touch(ctx context.Context, table string, ranges []*seenRange, q string) error {
	seenKey := func(r *seenRange) string {
		if table == "services" {
			return t.id + "\x00" + r.service
		}
		return t.id + "\x00" + r.service + "\x00\x00" + r.version
	}
	ranges = slices.DeleteFunc(ranges, func(r *seenRange) bool {
		v, ok := t.db.serviceSeen.Load(seenKey(r))
		return ok && r.first >= v.([2]int64)[0] && r.last <= v.([2]int64)[1]+serviceTouchSlack
	})
	slices.SortFunc(ranges, func(a, b *seenRange) int {
		return cmp.Or(cmp.Compare(a.service, b.service), cmp.Compare(a.version, b.version))
	})
	for _, r := range ranges {
		var seen [2]int64
		if err := t.db.x.QueryRowxContext(ctx, q, t.id, r.service, r.version, r.first, r.last).Scan(&seen[0], &seen[1]); err != nil {
			return fmt.Errorf("update %s of %q: %w", table, r.service, err)
		}
		t.db.serviceSeen.Store(seenKey(r), seen)
	}
	return nil
}

func placeholders(n int) string {
	out := make([]byte, 0, 2*n)
	for i := 0; i < n; i++ {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, '?')
	}
	return string(out)
}
