package ingest_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	neturl "net/url"
	"strings"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var dialects = []struct {
	name string
	dsn  func(testing.TB) string
}{{"postgres", storetest.PostgresDSN}, {"sqlite", storetest.SQLiteDSN}}

func exportOK(t *testing.T, e env, body []byte) *collectorpb.ExportTraceServiceResponse {
	t.Helper()
	resp, msg := post(t, e.url, e.key, "application/x-protobuf", body)
	var out collectorpb.ExportTraceServiceResponse
	if resp.StatusCode != 200 {
		t.Fatalf("got %d %q, want 200", resp.StatusCode, msg)
	}
	if err := proto.Unmarshal(msg, &out); err != nil {
		t.Fatal(err)
	}
	return &out
}

// incompressible returns n random letters: PostgreSQL compresses repetitive index keys below its
// row size limit, which real names are not.
func incompressible(n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(rand.IntN(26))
	}
	return string(b)
}

// One resource with a 7,000-character service.name used to make the whole request fail with 503
// (the btree index on service refused the row) and so every resend: the neighbour was never stored.
func TestExport_OverlongTextsAreCutWithAMarkerAndTheRequestStored(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d.dsn(t), ingest.Config{})
			long := "sss" + incompressible(7000)
			req := request(long, 1, 2, str("db.statement", strings.Repeat("q", 100_000)), str(strings.Repeat("k", 5000), "v"))
			req.ResourceSpans[0].Resource.Attributes = append(req.ResourceSpans[0].Resource.Attributes,
				str("service.version", strings.Repeat("v", 7000)), str("host.name", strings.Repeat("h", 7000)))
			req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = "nnn" + incompressible(7000)
			neighbour := request("neighbour", 2, 3)
			req.ResourceSpans = append(req.ResourceSpans, neighbour.ResourceSpans...)
			if out := exportOK(t, e, marshal(t, req)); out.PartialSuccess.GetRejectedSpans() != 0 {
				t.Errorf("rejected %v, want everything stored", out.PartialSuccess)
			}
			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 5 {
				t.Errorf("%d spans stored, want 5 (both resources)", n)
			}
			for _, q := range []string{
				"SELECT max(length(service)) FROM spans",
				"SELECT max(length(" + storetest.SpanText(e.dsn, "service_version") + ")) FROM spans",
				"SELECT max(length(" + storetest.SpanText(e.dsn, "host_name") + ")) FROM spans",
				"SELECT max(length(name)) FROM services",
				"SELECT max(length(name)) FROM metric_rollups",
			} {
				if n := storetest.QueryInt(t, e.dsn, q); n > 1024 {
					t.Errorf("%s = %d, want at most 1024", q, n)
				}
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE service LIKE 'sss%…[truncated]' AND operation LIKE 'nnn%…[truncated]' AND db_statement LIKE 'qqq%…[truncated]'"); n != 1 {
				t.Errorf("%d spans with the cut service, name and statement ending in the marker, want 1", n)
			}
		})
	}
}

// A 7,000-character span name used to be accepted, and then every compaction of the tenant failed on
// the unique index of merged rollups: partial rows piled up and metrics degraded, for good.
func TestExport_OverlongSpanNameDoesNotStopCompaction(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d.dsn(t), ingest.Config{})
			req := request("checkout", 1, 1)
			req.ResourceSpans[0].ScopeSpans[0].Spans[0].Name = "nnn" + incompressible(7000)
			exportOK(t, e, marshal(t, req))
			exportOK(t, e, marshal(t, request("checkout", 2, 1)))
			now := time.Now().UnixNano()
			if _, err := e.db.ForTenant("acme").CompactRollups(context.Background(), now, int64(time.Hour*24), int64(time.Hour*24*90)); err != nil {
				t.Fatalf("compaction: %v", err)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM metric_rollups WHERE partial"); n != 0 {
				t.Errorf("%d partial rollup rows left after compaction, want 0", n)
			}
		})
	}
}

// Invalid UTF-8 in one protobuf string used to refuse the whole batch (400); the JSON path already
// stored such bytes as U+FFFD.
func TestExport_InvalidUTF8InProtobufIsReplacedNotFatal(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d.dsn(t), ingest.Config{})
			req := request("svc-@@", 1, 3, str("note", "a@@b"))
			req.ResourceSpans[0].ScopeSpans[0].Spans[1].Name = "op-@@"
			// Same length, so the length prefixes stay right: what a buggy exporter sends.
			body := bytes.ReplaceAll(marshal(t, req), []byte("@@"), []byte("\xff\xfe"))
			exportOK(t, e, body)
			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 3 {
				t.Errorf("%d spans stored, want 3", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE service = 'svc-\uFFFD\uFFFD'"); n != 3 {
				t.Errorf("%d spans with the repaired service name, want 3", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE operation = 'op-\uFFFD\uFFFD'"); n != 1 {
				t.Errorf("%d spans with the repaired name, want 1", n)
			}
		})
	}
}

// Timestamps far off (1990, year 2200, 2^64-1) used to be stored as sent (start_ns -1 for 2^64-1),
// where no query window or retention ever reaches them.
func TestExport_RejectsAbsurdTimestampsPerSpan(t *testing.T) {
	for _, d := range dialects {
		t.Run(d.name, func(t *testing.T) {
			e := newEnv(t, d.dsn(t), ingest.Config{})
			req := request("svc", 1, 5)
			spans := req.ResourceSpans[0].ScopeSpans[0].Spans
			y2200 := uint64(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
			spans[1].StartTimeUnixNano, spans[1].EndTimeUnixNano = uint64(time.Date(1990, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()), uint64(time.Date(1990, 1, 1, 0, 0, 1, 0, time.UTC).UnixNano())
			spans[2].StartTimeUnixNano, spans[2].EndTimeUnixNano = y2200, y2200+1e6
			spans[3].StartTimeUnixNano, spans[3].EndTimeUnixNano = math.MaxUint64, math.MaxUint64
			spans[4].EndTimeUnixNano = math.MaxUint64
			out := exportOK(t, e, marshal(t, req))
			if out.PartialSuccess.GetRejectedSpans() != 4 || !strings.Contains(out.PartialSuccess.GetErrorMessage(), "clock") {
				t.Errorf("partial success %v, want 4 rejected with the reason", out.PartialSuccess)
			}
			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 1 {
				t.Errorf("%d spans stored, want only the one with sane times", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT count(*) FROM spans WHERE start_ns < 0 OR start_ns > "+
				"9000000000000000000"); n != 0 {
				t.Errorf("%d spans stored with absurd start times", n)
			}
		})
	}
}

// The same batch sent twice (what an exporter does when a 200 is lost to a timeout) used to store
// and count every span twice.
func TestExport_StoresAndCountsASpanOnceHoweverOftenItArrives(t *testing.T) {
	envs := map[string]func(t *testing.T) env{
		// A cluster's tenant server: INSERT … SELECT FROM unnest under row-level security.
		"postgres-tenant-role": func(t *testing.T) env { return newEnvAsTenantRole(t, ingest.Config{}) },
	}
	for _, d := range dialects {
		envs[d.name] = func(t *testing.T) env { return newEnv(t, d.dsn(t), ingest.Config{}) }
	}
	for name, newEnv := range envs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t)
			genAI := []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("gen_ai.request.model", "gpt-4o"), num("gen_ai.usage.input_tokens", 10)}
			req := request("checkout", 1, 3, genAI...)
			body := marshal(t, req)
			exportOK(t, e, body) // first delivery
			exportOK(t, e, body) // a retry
			// Twice in one request, beside a new trace. A resent span is the same span: same ids and
			// start time (the start is part of PostgreSQL's unique key, which must hold the partition key).
			twice := proto.Clone(req).(*collectorpb.ExportTraceServiceRequest)
			twice.ResourceSpans = append(twice.ResourceSpans, proto.Clone(req).(*collectorpb.ExportTraceServiceRequest).ResourceSpans...)
			twice.ResourceSpans = append(twice.ResourceSpans, request("checkout", 2, 3, genAI...).ResourceSpans...)
			exportOK(t, e, marshal(t, twice))
			// Several writers at once, each with the same new trace.
			concurrent := marshal(t, request("checkout", 3, 3, genAI...))
			var wg sync.WaitGroup
			for range 8 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					exportOK(t, e, concurrent)
				}()
			}
			wg.Wait()

			if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 9 {
				t.Errorf("%d spans stored, want 9 (3 traces of 3)", n)
			}
			if n := storetest.Count(t, e.dsn, "llm_calls", "acme"); n != 3 {
				t.Errorf("%d LLM calls stored, want 3", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT sum(n) FROM metric_rollups WHERE kind = 1"); n != 3 {
				t.Errorf("rollups count %d requests, want 3", n)
			}
			if n := storetest.QueryInt(t, e.dsn, "SELECT sum(n) FROM metric_rollups WHERE kind = 2"); n != 3 {
				t.Errorf("rollups count %d LLM calls, want 3", n)
			}
		})
	}
}

// trickle opens a connection that sends a request's headers and then its body a byte at a time,
// until stop is closed; it returns the status line the server answered with, if any.
func trickle(t *testing.T, url, key string, stop <-chan struct{}) <-chan string {
	t.Helper()
	u, _ := neturl.Parse(url)
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-protobuf\r\nAuthorization: Bearer %s\r\nContent-Length: 100000\r\n\r\n", u.Path, u.Host, key)
	status := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(conn).ReadString('\n')
		status <- strings.TrimSpace(line)
	}()
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				if _, err := conn.Write([]byte{0x0a}); err != nil {
					return
				}
			}
		}
	}()
	return status
}

// Senders that trickle their bodies used to take every write slot (a slot was taken before the body
// was read, with no deadline), so every normal exporter got 429 until they gave up.
func TestExport_SlowSendersDelayOnlyThemselves(t *testing.T) {
	e := newEnv(t, storetest.PostgresDSN(t), ingest.Config{MaxInFlight: 2, QueueTimeout: 300 * time.Millisecond, BodyTimeout: 2 * time.Second})
	stop := make(chan struct{})
	defer close(stop)
	var slow []<-chan string
	for range 8 {
		slow = append(slow, trickle(t, e.url, e.key, stop))
	}
	time.Sleep(200 * time.Millisecond) // the trickling requests are being read
	for i := range 10 {
		exportOK(t, e, marshal(t, request("svc", 100+i, 10)))
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 100 {
		t.Errorf("%d spans stored, want the normal exporters' 100", n)
	}
	for _, s := range slow {
		select {
		case line := <-s:
			if !strings.Contains(line, "408") {
				t.Errorf("trickling sender answered %q, want 408 once its body took too long", line)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a trickling sender was never answered")
		}
	}
}

// An id of the wrong length in OTLP/JSON is refused for its span only, as in protobuf.
func TestExport_ShortJSONIdRejectsOnlyItsSpan(t *testing.T) {
	e := newEnv(t, storetest.SQLiteDSN(t), ingest.Config{})
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[` +
		`{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"ab","name":"short","startTimeUnixNano":"%d"},` +
		`{"traceId":"0102030405060708090a0b0c0d0e0f10","spanId":"0102030405060708","name":"ok","startTimeUnixNano":"%d"}]}]}]}`
	now := time.Now().UnixNano()
	resp, msg := post(t, e.url, e.key, "application/json", []byte(fmt.Sprintf(body, now, now)))
	if resp.StatusCode != 200 || !strings.Contains(string(msg), `"rejectedSpans":"1"`) {
		t.Fatalf("got %d %s, want 200 with one rejected span", resp.StatusCode, msg)
	}
	if n := storetest.Count(t, e.dsn, "spans", "acme"); n != 1 {
		t.Errorf("%d spans stored, want 1", n)
	}
}
