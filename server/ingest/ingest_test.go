package ingest_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

type env struct {
	url, dsn, key string
	db            *store.DB
	ingester      *ingest.Ingester
}

// newEnv serves the receiver with cfg over real HTTP, for one tenant "acme" with an ingest key.
func newEnv(t *testing.T, dsn string, cfg ingest.Config) env { return newEnvTB(t, dsn, cfg) }

func newEnvTB(t testing.TB, dsn string, cfg ingest.Config) env {
	t.Helper()
	db := storetest.Open(t, dsn)
	ctx := context.Background()
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, dsn, key, db, cfg)
}

// newEnvAsTenantRole is newEnv on PostgreSQL with the receiver connected as the tenant's own role,
// under row-level security: what a cluster's tenant server runs.
func newEnvAsTenantRole(t *testing.T, cfg ingest.Config) env {
	t.Helper()
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	owner := storetest.Open(t, dsn)
	creds, err := owner.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := owner.Admin().CreateAPIKey(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	roleDSN, err := creds.DSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(ctx, roleDSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return serve(t, dsn, key, db, cfg)
}

// serve runs the receiver on db with cfg over real HTTP; dsn is the database as its owner.
func serve(t testing.TB, dsn, key string, db *store.DB, cfg ingest.Config) env {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	cfg.DB = db
	cfg.Auth = &auth.APIKeys{DB: db}
	in := ingest.Register(r, cfg)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return env{url: srv.URL + "/v1/traces", dsn: dsn, key: key, db: db, ingester: in}
}

func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

func num(k string, v int64) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
}

func id(n int, size int) []byte {
	b := make([]byte, size)
	for i := 0; i < size && n > 0; i++ {
		b[size-1-i] = byte(n)
		n >>= 8
	}
	b[0] = 0xab
	return b
}

// request builds one trace of n spans from service: a SERVER root and n-1 children.
func request(service string, trace, n int, extra ...*commonpb.KeyValue) *collectorpb.ExportTraceServiceRequest {
	start := uint64(time.Now().Add(-time.Minute).UnixNano())
	spans := make([]*tracepb.Span, n)
	for i := range spans {
		sp := &tracepb.Span{TraceId: id(trace, 16), SpanId: id(i+1, 8), Name: fmt.Sprintf("op-%d", i),
			Kind: tracepb.Span_SPAN_KIND_INTERNAL, StartTimeUnixNano: start, EndTimeUnixNano: start + 5e6}
		if i == 0 {
			sp.Kind = tracepb.Span_SPAN_KIND_SERVER
			sp.Name = "GET /orders/{id}"
			sp.Attributes = append([]*commonpb.KeyValue{str("http.request.method", "GET"), str("http.route", "/orders/{id}"), num("http.response.status_code", 200)}, extra...)
		} else {
			sp.ParentSpanId = id(1, 8)
		}
		spans[i] = sp
	}
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", service), str("service.version", "1.2.3")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

func post(t *testing.T, url, key, contentType string, body []byte, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

func marshal(t testing.TB, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestExport_StoresSpansInEveryEncoding(t *testing.T) {
	for _, dialect := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"postgres", storetest.PostgresDSN}, {"sqlite", storetest.SQLiteDSN}} {
		t.Run(dialect.name, func(t *testing.T) {
			e := newEnv(t, dialect.dsn(t), ingest.Config{})
			req := request("checkout", 1, 3)

			resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, req))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-protobuf" {
				t.Fatalf("protobuf: %d %s %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}

			// OTLP/JSON carries ids in hex, not protojson's base64.
			js, _ := protojson.Marshal(request("checkout", 2, 4))
			js = hexIDs(t, js, request("checkout", 2, 4))
			resp, body = post(t, e.url, e.key, "application/json", js)
			if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("json: %d %q", resp.StatusCode, body)
			}

			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(marshal(t, request("checkout", 3, 5)))
			zw.Close()
			resp, body = post(t, e.url, e.key, "application/x-protobuf", gz.Bytes(), "Content-Encoding", "gzip")
			if resp.StatusCode != 200 {
				t.Fatalf("gzip: %d %q", resp.StatusCode, body)
			}

			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 12 {
				t.Errorf("stored %d spans, want 12", n)
			}
			trace2 := hex.EncodeToString(id(2, 16))
			spans, _, err := e.db.ForTenant("acme").TraceSpans(context.Background(), trace2, 10)
			if err != nil {
				t.Fatal(err)
			}
			children := 0
			for _, s := range spans {
				if s.ParentSpanID == hex.EncodeToString(id(1, 8)) {
					children++
				}
			}
			if children != 3 {
				t.Errorf("JSON trace %s: %d children with the hex parent id, want 3", trace2, children)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE is_entry = true AND http_route = '/orders/{id}' AND http_status_code = 200 AND "+storetest.SpanText(e.dsn, "service_version")+" = '1.2.3'"); n != 3 {
				t.Errorf("entry spans with extracted HTTP fields: %d, want 3", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM services WHERE name = 'checkout' AND tenant_id = 'acme'"); n != 1 {
				t.Errorf("services rows for checkout: %d, want 1", n)
			}
		})
	}
}

// hexIDs turns the base64 ids protojson wrote into OTLP/JSON's hex.
func hexIDs(t *testing.T, js []byte, req *collectorpb.ExportTraceServiceRequest) []byte {
	s := string(js)
	for _, sp := range req.ResourceSpans[0].ScopeSpans[0].Spans {
		for _, raw := range [][]byte{sp.TraceId, sp.SpanId, sp.ParentSpanId} {
			if len(raw) == 0 {
				continue
			}
			b64, _ := protojson.Marshal(&commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: raw}})
			enc := strings.TrimSuffix(strings.TrimPrefix(string(b64), `{"bytesValue":"`), `"}`)
			s = strings.ReplaceAll(s, `"`+enc+`"`, `"`+hex.EncodeToString(raw)+`"`)
		}
	}
	return []byte(s)
}

func TestExport_RefusesBadRequestsWithClearErrors(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t), ingest.Config{MaxBodyBytes: 4096})
	valid := marshal(t, request("svc", 1, 2))
	big := marshal(t, request("svc", 2, 200))
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zw.Write(make([]byte, 1<<20))
	zw.Close()

	cases := []struct {
		name, key, ct string
		body          []byte
		header        []string
		status        int
		message       string
	}{
		{"no key", "", "application/x-protobuf", valid, nil, 401, "Authorization: Bearer"},
		{"wrong key", "tk_nottherightkeyatallnottherightkeyatall", "application/x-protobuf", valid, nil, 401, "unknown or revoked"},
		{"x-api-key header works", "", "application/x-protobuf", valid, []string{"X-API-Key", e.key}, 200, ""},
		{"unsupported content type", e.key, "text/plain", valid, nil, 415, "application/x-protobuf or application/json"},
		{"garbage protobuf", e.key, "application/x-protobuf", []byte("\xff\xff\xff not protobuf"), nil, 400, "not a valid OTLP"},
		{"garbage json", e.key, "application/json", []byte(`{"resourceSpans": [`), nil, 400, "not valid OTLP JSON"},
		{"json id not hex", e.key, "application/json", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"00"}]}]}]}`), nil, 400, "not hex-encoded"},
		{"gzip header on plain body", e.key, "application/x-protobuf", valid, []string{"Content-Encoding", "gzip"}, 400, "not gzip"},
		{"body over the limit", e.key, "application/x-protobuf", big, nil, 413, "exceeds 4096 bytes"},
		{"gzip bomb", e.key, "application/x-protobuf", bomb.Bytes(), []string{"Content-Encoding", "gzip"}, 413, "after decompression"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := post(t, e.url, c.key, c.ct, c.body, c.header...)
			if resp.StatusCode != c.status || !strings.Contains(string(body), c.message) {
				t.Errorf("got %d %q, want %d with %q", resp.StatusCode, body, c.status, c.message)
			}
		})
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 2 {
		t.Errorf("%d spans stored, want only the 2 of the accepted request", n)
	}
}

func TestExport_RejectsMalformedSpansButKeepsTheRest(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t), ingest.Config{})
	req := request("svc", 1, 3)
	req.ResourceSpans[0].ScopeSpans[0].Spans[2].SpanId = []byte{1, 2}
	resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, req))
	var out collectorpb.ExportTraceServiceResponse
	if err := proto.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v", resp.StatusCode, err)
	}
	if out.PartialSuccess.GetRejectedSpans() != 1 || !strings.Contains(out.PartialSuccess.GetErrorMessage(), "8 bytes") {
		t.Errorf("partial success = %v, want 1 rejected span with the reason", out.PartialSuccess)
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 2 {
		t.Errorf("%d spans stored, want 2", n)
	}
}

func TestExport_DerivesPricedLLMCallsFromGenAISpans(t *testing.T) {
	e := newEnv(t, storetest.PostgresDSN(t), ingest.Config{})
	genAI := func(trace int, model string) *collectorpb.ExportTraceServiceRequest {
		return request("recommendation-service", trace, 1, str("gen_ai.operation.name", "chat"), str("gen_ai.system", "openai"),
			str("gen_ai.request.model", model), str("gen_ai.response.model", model+"-2024-08-06"),
			num("gen_ai.usage.input_tokens", 1_000_000), num("gen_ai.usage.output_tokens", 100_000), num("gen_ai.usage.cache_read.input_tokens", 200_000))
	}
	for i, model := range []string{"gpt-4o", "my-private-model"} {
		if resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, genAI(i+1, model))); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	// gpt-4o: 800k input at $2.50 + 200k cached at $1.25 + 100k output at $10 per million = $3.25.
	if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM llm_calls WHERE request_model = 'gpt-4o' AND provider = 'openai' AND abs(cost_usd - 3.25) < 1e-9 AND input_tokens = 1000000 AND cached_input_tokens = 200000"); n != 1 {
		t.Error("gpt-4o call not stored with cost $3.25")
	}
	if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM llm_calls WHERE request_model = 'my-private-model' AND cost_usd IS NULL"); n != 1 {
		t.Error("unknown model's call not stored with an unknown (NULL) cost")
	}
	// A tenant's price override applies (after the per-tenant price cache expires; a new server here).
	if err := e.db.Admin().SetPriceOverrides(context.Background(), "acme", []byte(`{"my-private-model": {"input": 1, "output": 2, "cached_input": 0.5}}`)); err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	ingest.Register(r, ingest.Config{DB: e.db, Auth: &auth.APIKeys{DB: e.db}})
	srv := httptest.NewServer(r)
	defer srv.Close()
	if resp, body := post(t, srv.URL+"/v1/traces", e.key, "application/x-protobuf", marshal(t, genAI(3, "my-private-model"))); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// 800k × $1 + 200k × $0.5 + 100k × $2 per million = $1.10.
	if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM llm_calls WHERE request_model = 'my-private-model' AND abs(cost_usd - 1.1) < 1e-9"); n != 1 {
		t.Error("tenant price override not applied")
	}
}

func TestExport_AsksToRetryWhenBusyOrStorageIsDown(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t), ingest.Config{MaxInFlight: 1, QueueTimeout: time.Nanosecond})
	var (
		mu       sync.Mutex
		accepted int
		busy     int
	)
	for round := 0; round < 20 && busy == 0; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			// A trace of its own per request: ingest stores a resent span once.
			body := marshal(t, request("svc", round*8+i+1, 2000))
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, msg := post(t, e.url, e.key, "application/x-protobuf", body)
				mu.Lock()
				defer mu.Unlock()
				switch resp.StatusCode {
				case 200:
					accepted++
				case 429:
					busy++
					if resp.Header.Get("Retry-After") == "" || !strings.Contains(string(msg), "busy") {
						t.Errorf("429 without Retry-After or reason: %q", msg)
					}
				default:
					t.Errorf("unexpected %d %q", resp.StatusCode, msg)
				}
			}()
		}
		wg.Wait()
	}
	if busy == 0 {
		t.Fatal("no request was ever told to retry with one write slot and 8 concurrent senders")
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != accepted*2000 {
		t.Errorf("%d spans stored for %d accepted requests of 2000", n, accepted)
	}

	// With the database gone, nothing is acknowledged: 503 and a Retry-After.
	e.db.Close()
	var (
		resp *http.Response
		msg  []byte
	)
	for i := 0; i < 100; i++ { // the last batch's slot is released just after its answer was sent
		if resp, msg = post(t, e.url, e.key, "application/x-protobuf", marshal(t, request("svc", 9, 2))); resp.StatusCode != 429 {
			break
		}
	}
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(msg), "nothing from this request was kept") {
		t.Errorf("with the database closed: %d %q, want 503 with Retry-After", resp.StatusCode, msg)
	}
}

// --prices: a loaded table replaces the built-in one; a model it lacks has an unknown cost; vendor
// spellings (here OpenInference's) are priced like the semantic conventions.
func TestExport_PricesFromTheLoadedTable(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"postgres": storetest.PostgresDSN, "sqlite": storetest.SQLiteDSN} {
		t.Run(name, func(t *testing.T) {
			table, err := genai.ParsePriceTable([]byte(`{"taken": "2026-12-01", "models": {"acme-llm": {"input": 2, "output": 4, "cached_input": 1}}}`))
			if err != nil {
				t.Fatal(err)
			}
			e := newEnv(t, dsn(t), ingest.Config{Prices: &table})
			call := func(trace int, model string) *collectorpb.ExportTraceServiceRequest {
				return request("svc", trace, 1, str("openinference.span.kind", "LLM"), str("llm.model_name", model),
					num("llm.token_count.prompt", 1_000_000), num("llm.token_count.completion", 500_000))
			}
			for i, model := range []string{"acme-llm", "gpt-4o"} {
				if resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, call(i+1, model))); resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
			}
			// 1M × $2 + 0.5M × $4 per million = $4.
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM llm_calls WHERE request_model = 'acme-llm' AND abs(cost_usd - 4) < 1e-9 AND output_tokens = 500000"); n != 1 {
				t.Error("acme-llm call not priced at $4 from the loaded table")
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM llm_calls WHERE request_model = 'gpt-4o' AND cost_usd IS NULL"); n != 1 {
				t.Error("gpt-4o is not in the loaded table, yet its cost is not unknown")
			}
		})
	}
}
