package otlp

import (
	"context"
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

// export records spans of service with the stock SDK and exporter exp, flushing before it returns.
func export(t *testing.T, exp sdktrace.SpanExporter, service string, record func(trace.Tracer)) {
	t.Helper()
	ctx := context.Background()
	res, err := resource.New(ctx, resource.WithAttributes(attribute.String("service.name", service)))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	record(tp.Tracer("tracekit/test/otlp"))
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("export: %v", err)
	}
}

// publishAndConsume sends with the stock SDK an orders trace whose span publishes a message to
// Kafka at published (over OTLP/HTTP), then a billing trace of its own that consumes the message 40 s
// later (over OTLP/gRPC): consume starts its consumer span at the given time, linked by link to the
// publish span, and the span ends 5 ms later. It returns the publish and the consumer span.
func publishAndConsume(t *testing.T, srv *tkServer, key string, published time.Time,
	consume func(ctx context.Context, tr trace.Tracer, at time.Time, link trace.Link) trace.Span) (pub, con trace.SpanContext) {
	t.Helper()
	ctx := context.Background()
	auth := map[string]string{"Authorization": "Bearer " + key}
	httpExp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL("http://"+srv.httpAddr+"/v1/traces"), otlptracehttp.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	export(t, httpExp, "orders", func(tr trace.Tracer) {
		ctx, root := tr.Start(ctx, "POST /orders", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(published.Add(-5*time.Millisecond)))
		_, p := tr.Start(ctx, "order-events publish", trace.WithSpanKind(trace.SpanKindProducer), trace.WithTimestamp(published.Add(-3*time.Millisecond)),
			trace.WithAttributes(attribute.String("messaging.system", "kafka"), attribute.String("messaging.destination.name", "order-events")))
		p.End(trace.WithTimestamp(published))
		root.End(trace.WithTimestamp(published.Add(time.Millisecond)))
		pub = p.SpanContext()
	})
	grpcExp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(srv.grpc), otlptracegrpc.WithInsecure(), otlptracegrpc.WithHeaders(auth))
	if err != nil {
		t.Fatal(err)
	}
	consumed := published.Add(40 * time.Second)
	export(t, grpcExp, "billing", func(tr trace.Tracer) {
		c := consume(ctx, tr, consumed, trace.Link{SpanContext: pub})
		c.End(trace.WithTimestamp(consumed.Add(5 * time.Millisecond)))
		con = c.SpanContext()
	})
	return pub, con
}

// A batch consumer, as the messaging semantic conventions describe it, starts a trace of its own
// and links to the span that published its message (trace.WithLinks). Sent by the stock SDK (the
// producer over OTLP/HTTP, the consumer over OTLP/gRPC), the link and the 40 s the message waited
// show in get_trace_detail of the consumer's trace, which offers the producer's, and in
// get_service_metrics of the consumer.
func TestSDKExporters_LinkedConsumerShowsItsQueueLag(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			tdb := newTenantDB(t, dialect)
			srv := startServer(t, tdb.serverURL, "127.0.0.1:0", "127.0.0.1:0")
			published := time.Now().Add(-10 * time.Minute)
			pub, con := publishAndConsume(t, srv, tdb.key, published, func(ctx context.Context, tr trace.Tracer, at time.Time, link trace.Link) trace.Span {
				link.Attributes = []attribute.KeyValue{attribute.String("messaging.message.id", "m-1")}
				ctx, c := tr.Start(ctx, "order-events process", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), trace.WithTimestamp(at), trace.WithLinks(link))
				_, db := tr.Start(ctx, "INSERT invoices", trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(at.Add(time.Millisecond)))
				db.End(trace.WithTimestamp(at.Add(3 * time.Millisecond)))
				return c
			})
			if con.TraceID() == pub.TraceID() {
				t.Fatal("the consumer must start a trace of its own")
			}

			session := mcpSession(t, srv.httpAddr, tdb.key)
			var detail struct {
				QueueLag struct {
					LagMS           float64 `json:"lag_ms"`
					ProducerTraceID string  `json:"producer_trace_id"`
					Producer        struct {
						Service   string `json:"service"`
						Operation string `json:"operation"`
					} `json:"producer"`
				} `json:"queue_lag"`
				Waterfall []struct {
					SpanID     string  `json:"span_id"`
					QueueLagMS float64 `json:"queue_lag_ms"`
					Links      []struct {
						TraceID string `json:"trace_id"`
						SpanID  string `json:"span_id"`
						Service string `json:"service"`
					} `json:"links"`
				} `json:"waterfall"`
			}
			callTool(t, session, "get_trace_detail", map[string]any{"trace_id": con.TraceID().String()}, &detail)
			q := detail.QueueLag
			if q.LagMS != 40000 || q.ProducerTraceID != pub.TraceID().String() || q.Producer.Service != "orders" || q.Producer.Operation != "order-events publish" {
				t.Errorf("queue lag %+v; want 40000 ms after orders' order-events publish of trace %s", q, pub.TraceID())
			}
			if len(detail.Waterfall) == 0 || detail.Waterfall[0].SpanID != con.SpanID().String() || detail.Waterfall[0].QueueLagMS != 40000 ||
				len(detail.Waterfall[0].Links) != 1 || detail.Waterfall[0].Links[0].TraceID != pub.TraceID().String() ||
				detail.Waterfall[0].Links[0].SpanID != pub.SpanID().String() || detail.Waterfall[0].Links[0].Service != "orders" {
				t.Errorf("waterfall %+v; want the consumer with its 40 s lag and its link to orders' span %s", detail.Waterfall, pub.SpanID())
			}

			var metrics struct {
				QueueLag []struct {
					Operation string  `json:"operation"`
					Messages  int64   `json:"messages"`
					P95MS     float64 `json:"p95_ms"`
				} `json:"queue_lag"`
			}
			callTool(t, session, "get_service_metrics", map[string]any{"service": "billing", "since": "1h"}, &metrics)
			if len(metrics.QueueLag) != 1 || metrics.QueueLag[0].Operation != "order-events process" || metrics.QueueLag[0].Messages != 1 ||
				metrics.QueueLag[0].P95MS < 39000 || metrics.QueueLag[0].P95MS > 41000 {
				t.Errorf("get_service_metrics queue lag %+v; want one message of order-events process, p95 about 40 s", metrics.QueueLag)
			}
		})
	}
}

// The other direction, from the stock SDK: the producer's trace does not know its consumers (they
// link to it), yet get_trace_detail of it names the trace that consumed its message, how long the
// message waited and that the consumer failed, marks the publishing span, and suggests opening it.
func TestSDKExporters_AProducerTraceNamesTheTraceThatConsumedItsMessage(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			tdb := newTenantDB(t, dialect)
			srv := startServer(t, tdb.serverURL, "127.0.0.1:0", "127.0.0.1:0")
			published := time.Now().Add(-10 * time.Minute)
			pub, con := publishAndConsume(t, srv, tdb.key, published, func(ctx context.Context, tr trace.Tracer, at time.Time, link trace.Link) trace.Span {
				_, c := tr.Start(ctx, "order-events process", trace.WithSpanKind(trace.SpanKindConsumer), trace.WithNewRoot(), trace.WithTimestamp(at), trace.WithLinks(link))
				c.SetStatus(codes.Error, "card declined")
				return c
			})

			var detail struct {
				Consumers []struct {
					TraceID   string  `json:"trace_id"`
					Service   string  `json:"service"`
					Operation string  `json:"operation"`
					LagMS     float64 `json:"lag_ms"`
					Status    string  `json:"status"`
				} `json:"consumers"`
				Consumed struct {
					Traces int `json:"traces"`
				} `json:"consumed"`
				Waterfall []struct {
					SpanID     string `json:"span_id"`
					ConsumedBy []struct {
						TraceID string `json:"trace_id"`
					} `json:"consumed_by"`
				} `json:"waterfall"`
				Next []struct {
					Tool string         `json:"tool"`
					Args map[string]any `json:"args"`
				} `json:"next"`
			}
			callTool(t, mcpSession(t, srv.httpAddr, tdb.key), "get_trace_detail", map[string]any{"trace_id": pub.TraceID().String()}, &detail)
			if len(detail.Consumers) != 1 || detail.Consumed.Traces != 1 {
				t.Fatalf("consumers %+v of %d traces; want the one billing trace %s", detail.Consumers, detail.Consumed.Traces, con.TraceID())
			}
			if c := detail.Consumers[0]; c.TraceID != con.TraceID().String() || c.Service != "billing" || c.Operation != "order-events process" || c.LagMS != 40000 || c.Status != "error" {
				t.Errorf("consumer %+v; want billing's failed order-events process of trace %s, 40000 ms after the publish", c, con.TraceID())
			}
			marked := false
			for _, r := range detail.Waterfall {
				marked = marked || (r.SpanID == pub.SpanID().String() && len(r.ConsumedBy) == 1 && r.ConsumedBy[0].TraceID == con.TraceID().String())
			}
			if !marked {
				t.Errorf("waterfall %+v; want the publish span %s marked as consumed by trace %s", detail.Waterfall, pub.SpanID(), con.TraceID())
			}
			if len(detail.Next) == 0 || detail.Next[0].Tool != "get_trace_detail" || detail.Next[0].Args["trace_id"] != con.TraceID().String() {
				t.Errorf("next calls %+v; want get_trace_detail of the consumer first", detail.Next)
			}
		})
	}
}
