package ingest_test

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// grpcEnv is newEnv with the same receiver also serving OTLP/gRPC.
type grpcEnv struct {
	env
	client collectorpb.TraceServiceClient
}

func newGRPCEnv(t *testing.T, dsn string, cfg ingest.Config) grpcEnv {
	t.Helper()
	e := newEnv(t, dsn, cfg)
	gs := e.ingester.GRPCServer()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(ln)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return grpcEnv{env: e, client: collectorpb.NewTraceServiceClient(conn)}
}

func withMD(kv ...string) context.Context {
	return metadata.NewOutgoingContext(context.Background(), metadata.Pairs(kv...))
}

func TestExportGRPC_StoresSpansWithEitherKeyMetadataAndGzip(t *testing.T) {
	for _, dialect := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"postgres", storetest.PostgresDSN}, {"sqlite", storetest.SQLiteDSN}} {
		t.Run(dialect.name, func(t *testing.T) {
			e := newGRPCEnv(t, dialect.dsn(t), ingest.Config{})
			if _, err := e.client.Export(withMD("authorization", "Bearer "+e.key), request("checkout", 1, 3)); err != nil {
				t.Fatalf("authorization metadata: %v", err)
			}
			if _, err := e.client.Export(withMD("x-api-key", e.key), request("checkout", 2, 4)); err != nil {
				t.Fatalf("x-api-key metadata: %v", err)
			}
			if _, err := e.client.Export(withMD("authorization", "bearer "+e.key), request("checkout", 3, 5), grpc.UseCompressor(gzip.Name)); err != nil {
				t.Fatalf("gzip: %v", err)
			}
			// Stored exactly as over HTTP, entry spans and extracted fields included.
			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 12 {
				t.Errorf("stored %d spans, want 12", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE is_entry = true AND http_route = '/orders/{id}' AND http_status_code = 200 AND "+storetest.SpanText(e.dsn, "service_version")+" = '1.2.3'"); n != 3 {
				t.Errorf("entry spans with extracted HTTP fields: %d, want 3", n)
			}
		})
	}
}

func TestExportGRPC_PartialSuccessLikeHTTP(t *testing.T) {
	e := newGRPCEnv(t, storetest.SQLiteDSN(t), ingest.Config{})
	req := request("svc", 1, 3)
	req.ResourceSpans[0].ScopeSpans[0].Spans[2].SpanId = []byte{1, 2}
	resp, err := e.client.Export(withMD("authorization", "Bearer "+e.key), req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.PartialSuccess.GetRejectedSpans() != 1 || !strings.Contains(resp.PartialSuccess.GetErrorMessage(), "8 bytes") {
		t.Errorf("partial success = %v, want 1 rejected span with the reason", resp.PartialSuccess)
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 2 {
		t.Errorf("%d spans stored, want 2", n)
	}
}

func retryDelay(err error) time.Duration {
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok {
			return ri.GetRetryDelay().AsDuration()
		}
	}
	return 0
}

func TestExportGRPC_RefusesWithOTLPStatusCodes(t *testing.T) {
	e := newGRPCEnv(t, storetest.SQLiteDSN(t), ingest.Config{MaxBodyBytes: 4096})
	readOnly, _, err := e.db.Admin().CreateAPIKey(context.Background(), "acme", "reader", []string{store.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		ctx     context.Context
		req     *collectorpb.ExportTraceServiceRequest
		code    codes.Code
		message string
	}{
		{"no key", context.Background(), request("svc", 1, 2), codes.Unauthenticated, "authorization or x-api-key metadata"},
		{"wrong key", withMD("authorization", "Bearer tk_nottherightkeyatallnottherightkeyatall"), request("svc", 1, 2), codes.Unauthenticated, "unknown or revoked"},
		{"key without the ingest scope", withMD("x-api-key", readOnly), request("svc", 1, 2), codes.PermissionDenied, "'ingest' scope"},
		{"message over the limit", withMD("authorization", "Bearer "+e.key), request("svc", 2, 200), codes.ResourceExhausted, "larger than max"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.client.Export(c.ctx, c.req)
			if st := status.Convert(err); st.Code() != c.code || !strings.Contains(st.Message(), c.message) {
				t.Errorf("got %v %q, want %v with %q", st.Code(), st.Message(), c.code, c.message)
			}
			// Only backpressure is worth retrying: without RetryInfo, exporters drop the batch.
			if d := retryDelay(err); d != 0 {
				t.Errorf("RetryInfo %v on a request that will never succeed", d)
			}
		})
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 0 {
		t.Errorf("%d spans stored from refused requests", n)
	}
}

func TestExportGRPC_AsksToRetryWhenBusyOrStorageIsDown(t *testing.T) {
	e := newGRPCEnv(t, storetest.SQLiteDSN(t), ingest.Config{MaxInFlight: 1, QueueTimeout: time.Nanosecond})
	ctx := withMD("authorization", "Bearer "+e.key)
	req := request("svc", 1, 2000)
	var (
		mu       sync.Mutex
		accepted int
		busy     int
	)
	for round := 0; round < 20 && busy == 0; round++ {
		var wg sync.WaitGroup
		for i := 0; i < 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, err := e.client.Export(ctx, req)
				mu.Lock()
				defer mu.Unlock()
				switch st := status.Convert(err); st.Code() {
				case codes.OK:
					accepted++
				case codes.ResourceExhausted:
					busy++
					if retryDelay(err) <= 0 || !strings.Contains(st.Message(), "busy") {
						t.Errorf("RESOURCE_EXHAUSTED without RetryInfo or reason: %v", err)
					}
				default:
					t.Errorf("unexpected %v", err)
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

	e.db.Close()
	var err error
	for i := 0; i < 100; i++ { // the last batch's slot is released just after its answer was sent
		if _, err = e.client.Export(ctx, request("svc", 9, 2)); status.Code(err) != codes.ResourceExhausted {
			break
		}
	}
	if st := status.Convert(err); st.Code() != codes.Unavailable || retryDelay(err) <= 0 || !strings.Contains(st.Message(), "nothing from this request was kept") {
		t.Errorf("with the database closed: %v, want UNAVAILABLE with RetryInfo", err)
	}
}
