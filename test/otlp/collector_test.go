package otlp

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tracekit/tracekit/server/store/storetest"
)

// collectorConfig forwards what the Collector receives on one port with its gRPC OTLP exporter and
// what it receives on another with its HTTP OTLP exporter (otlp_grpc and otlp_http; before
// v0.1xx they were called otlp and otlphttp, still accepted as aliases), both retrying quickly.
const collectorConfig = `
receivers:
  otlp/to_grpc:
    protocols:
      grpc:
        endpoint: %[1]s
  otlp/to_http:
    protocols:
      grpc:
        endpoint: %[2]s
processors:
  batch:
    timeout: 100ms
exporters:
  otlp_grpc:
    endpoint: %[3]s
    tls:
      insecure: true
    headers:
      authorization: Bearer %[5]s
    retry_on_failure: &retry
      initial_interval: 100ms
      max_interval: 1s
      max_elapsed_time: 5m
  otlp_http:
    endpoint: http://%[4]s
    compression: gzip
    headers:
      x-api-key: %[5]s
    retry_on_failure: *retry
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces/grpc:
      receivers: [otlp/to_grpc]
      processors: [batch]
      exporters: [otlp_grpc]
    traces/http:
      receivers: [otlp/to_http]
      processors: [batch]
      exporters: [otlp_http]
`

// startCollector runs bin/otelcol with the config above and waits for its receivers.
func startCollector(t *testing.T, toGRPC, toHTTP, tkGRPC, tkHTTP, key string) {
	t.Helper()
	bin, err := filepath.Abs(filepath.Join(repoRoot, "bin", "otelcol"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("the OpenTelemetry Collector is required for this test: run `make otelcol` (builds %s): %v", bin, err)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "collector.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, collectorConfig, toGRPC, toHTTP, tkGRPC, tkHTTP, key), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "collector.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", cfg)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("collector log:\n%s", b)
		}
	})
	for _, addr := range []string{toGRPC, toHTTP} {
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-done:
				t.Fatalf("the collector exited (see its log)")
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("the collector does not listen on %s", addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// sendThrough sends traces×spans spans of service to the Collector at addr with the stock SDK and
// fails unless the Collector accepted all of them.
func sendThrough(t *testing.T, addr, service string, traces, spans int) {
	t.Helper()
	ctx := context.Background()
	exp, err := otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(addr), otlptracegrpc.WithInsecure())
	if err != nil {
		t.Fatal(err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", service))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithMaxExportBatchSize(50)), sdktrace.WithResource(res))
	tracer := tp.Tracer("tracekit/test/otlp")
	for i := 0; i < traces; i++ {
		c, root := tracer.Start(ctx, "GET /items", trace.WithSpanKind(trace.SpanKindServer))
		for j := 1; j < spans; j++ {
			_, sp := tracer.Start(c, fmt.Sprintf("step-%d", j))
			sp.End()
		}
		root.End()
	}
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatalf("the collector did not accept %s's spans: %v", service, err)
	}
}

// Spans go SDK → Collector → TraceKit over both of the Collector's OTLP exporters. TraceKit is
// stopped (SIGTERM), and later killed (SIGKILL) in the middle of exports, while the Collector keeps
// accepting spans; after each restart the Collector's retries deliver them: every span the Collector
// accepted is stored exactly once.
func TestCollector_ForwardsOverGRPCAndHTTPAcrossARestart(t *testing.T) {
	for _, dialect := range []string{"postgres", "sqlite"} {
		t.Run(dialect, func(t *testing.T) {
			tdb := newTenantDB(t, dialect)
			tkHTTP, tkGRPC := freeAddr(t), freeAddr(t)
			srv := startServer(t, tdb.serverURL, tkHTTP, tkGRPC)
			toGRPC, toHTTP := freeAddr(t), freeAddr(t)
			startCollector(t, toGRPC, toHTTP, tkGRPC, tkHTTP, tdb.key)

			const traces, spans = 20, 5
			sendThrough(t, toGRPC, "via-grpc", traces, spans)
			sendThrough(t, toHTTP, "via-http", traces, spans)
			waitForSpans(t, tdb.admin, map[string]int{"via-grpc": traces * spans, "via-http": traces * spans})

			srv.stop(syscall.SIGTERM)
			sendThrough(t, toGRPC, "via-grpc", traces, spans)
			sendThrough(t, toHTTP, "via-http", traces, spans)
			time.Sleep(time.Second) // the Collector's exports fail and are queued for retry meanwhile
			if n := storetest.QueryInt(t, tdb.admin, "SELECT count(*) FROM spans"); n != 2*traces*spans {
				t.Fatalf("%d spans stored while TraceKit was down, want the %d from before", n, 2*traces*spans)
			}
			srv = startServer(t, tdb.serverURL, tkHTTP, tkGRPC)
			waitForSpans(t, tdb.admin, map[string]int{"via-grpc": 2 * traces * spans, "via-http": 2 * traces * spans})

			// Killed while the Collector is exporting: batches committed but not yet acknowledged are
			// sent again after the restart, and must not be stored twice.
			var wg sync.WaitGroup
			for _, via := range []struct{ addr, service string }{{toGRPC, "via-grpc"}, {toHTTP, "via-http"}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sendThrough(t, via.addr, via.service, 10*traces, spans)
				}()
			}
			time.Sleep(300 * time.Millisecond)
			srv.stop(syscall.SIGKILL)
			wg.Wait()
			startServer(t, tdb.serverURL, tkHTTP, tkGRPC)
			waitForSpans(t, tdb.admin, map[string]int{"via-grpc": 12 * traces * spans, "via-http": 12 * traces * spans})
		})
	}
}

// waitForSpans waits until each service has want spans stored, then checks none is stored twice.
func waitForSpans(t *testing.T, dsn string, want map[string]int) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for service, n := range want {
		q := fmt.Sprintf("SELECT count(*) FROM spans WHERE tenant_id = 'acme' AND service = '%s'", service)
		got := 0
		for {
			if got = storetest.QueryInt(t, dsn, q); got >= n || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		distinct := storetest.QueryInt(t, dsn, fmt.Sprintf(
			"SELECT count(*) FROM (SELECT DISTINCT trace_id, span_id FROM spans WHERE tenant_id = 'acme' AND service = '%s') d", service))
		if got != n || distinct != n {
			t.Errorf("%s: %d spans stored (%d distinct), want %d, each once", service, got, distinct, n)
		}
	}
}
