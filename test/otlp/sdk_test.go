package otlp

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// sendCheckout records what an instrumented service does for one request: a SERVER span, a failed
// database span with an exception event, and a GenAI client span. It returns the trace id.
func sendCheckout(t *testing.T, exp sdktrace.SpanExporter) string {
	t.Helper()
	ctx := context.Background()
	res, err := resource.New(ctx, resource.WithFromEnv()) // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	tracer := tp.Tracer("tracekit/test/otlp")
	ctx, root := tracer.Start(ctx, "POST /checkout", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.String("http.request.method", "POST"), attribute.String("http.route", "/checkout"),
			attribute.Int("http.response.status_code", 500)))
	_, db := tracer.Start(ctx, "UPDATE orders", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("db.query.text", "UPDATE orders SET state = $1")))
	db.RecordError(errors.New("deadlock detected"))
	db.SetStatus(codes.Error, "deadlock detected")
	db.End()
	_, llm := tracer.Start(ctx, "chat gpt-4o", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "openai"),
			attribute.String("gen_ai.request.model", "gpt-4o"), attribute.Int("gen_ai.usage.input_tokens", 1000),
			attribute.Int("gen_ai.usage.output_tokens", 100)))
	llm.End()
	root.SetStatus(codes.Error, "checkout failed")
	root.End()
	// Shutdown flushes and returns the exporter's error: the server must have acknowledged the spans.
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export: %v", err)
	}
	return root.SpanContext().TraceID().String()
}

// The stock SDK's OTLP/HTTP and OTLP/gRPC exporters, configured only by OTEL_EXPORTER_OTLP_*
// variables (endpoint, headers, compression), deliver spans that the MCP tools then return.
func TestSDKExporters_ConfiguredByEnvironmentOnly(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			tdb := newTenantDB(t, dialect)
			srv := startServer(t, tdb.serverURL, "127.0.0.1:0", "127.0.0.1:0")
			exporters := []struct {
				protocol, endpoint, compression string
				newExporter                     func(context.Context) (sdktrace.SpanExporter, error)
			}{
				{"http/protobuf", "http://" + srv.httpAddr, "gzip", func(ctx context.Context) (sdktrace.SpanExporter, error) { return otlptracehttp.New(ctx) }},
				{"grpc", "http://" + srv.grpc, "none", func(ctx context.Context) (sdktrace.SpanExporter, error) { return otlptracegrpc.New(ctx) }},
				{"grpc", "http://" + srv.grpc, "gzip", func(ctx context.Context) (sdktrace.SpanExporter, error) { return otlptracegrpc.New(ctx) }},
			}
			session := mcpSession(t, srv.httpAddr, tdb.key)
			for _, e := range exporters {
				service := "checkout-" + e.protocol + "-" + e.compression
				t.Run(service, func(t *testing.T) {
					t.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", e.protocol)
					t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", e.endpoint)
					t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Bearer "+tdb.key)
					t.Setenv("OTEL_EXPORTER_OTLP_COMPRESSION", e.compression)
					t.Setenv("OTEL_SERVICE_NAME", service)
					t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "service.version=1.4.2")
					exp, err := e.newExporter(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					traceID := sendCheckout(t, exp)

					var traces struct {
						Traces []struct {
							TraceID string `json:"trace_id"`
							Error   bool   `json:"error"`
							Spans   int    `json:"spans"`
						} `json:"traces"`
					}
					// Windows are resolved to the second: end it after the spans, which are only milliseconds old.
					end := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
					callTool(t, session, "search_traces", map[string]any{"service": service, "end": end}, &traces)
					if len(traces.Traces) != 1 || traces.Traces[0].TraceID != traceID || !traces.Traces[0].Error || traces.Traces[0].Spans != 3 {
						t.Errorf("search_traces = %+v, want trace %s with 3 spans, failed", traces.Traces, traceID)
					}
					var detail struct {
						Spans       int      `json:"spans"`
						FailedSpans int      `json:"failed_spans"`
						Services    []string `json:"services"`
						Errors      []struct {
							Operation  string `json:"operation"`
							Exceptions any    `json:"exceptions"`
						} `json:"errors"`
					}
					callTool(t, session, "get_trace_detail", map[string]any{"trace_id": traceID}, &detail)
					if detail.Spans != 3 || detail.FailedSpans != 2 {
						t.Errorf("get_trace_detail: %d spans, %d failed; want 3 and 2", detail.Spans, detail.FailedSpans)
					}
					sawException := false
					for _, e := range detail.Errors {
						sawException = sawException || (e.Operation == "UPDATE orders" && e.Exceptions != nil)
					}
					if !sawException {
						t.Errorf("get_trace_detail errors = %+v, want UPDATE orders with its exception event", detail.Errors)
					}
					var calls struct {
						Calls []struct {
							Model       string   `json:"model"`
							Provider    string   `json:"provider"`
							InputTokens int64    `json:"input_tokens"`
							CostUSD     *float64 `json:"cost_usd"`
							TraceID     string   `json:"trace_id"`
						} `json:"calls"`
					}
					callTool(t, session, "search_llm_calls", map[string]any{"service": service, "end": end}, &calls)
					// gpt-4o: 1,000 × $2.50 + 100 × $10 per million = $0.0035.
					if len(calls.Calls) != 1 || calls.Calls[0].Model != "gpt-4o" || calls.Calls[0].TraceID != traceID ||
						calls.Calls[0].CostUSD == nil || *calls.Calls[0].CostUSD < 0.00349 || *calls.Calls[0].CostUSD > 0.00351 {
						t.Errorf("search_llm_calls = %+v, want one gpt-4o call of trace %s costing $0.0035", calls.Calls, traceID)
					}
				})
			}
		})
	}
}
