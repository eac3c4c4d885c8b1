// Command ingestbench measures durable OTLP ingest: it starts `tracekit server` on a fresh
// PostgreSQL database, drives POST /v1/traces with concurrent protobuf batches, and reports accepted
// spans/s, request latency and the server's peak RSS. Every counted span was acknowledged, so it is
// committed. Run it with `make bench-ingest`.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/hack/benchserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func main() {
	bin := flag.String("tracekit", "bin/tracekit", "tracekit binary to benchmark")
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL; a scratch database is created and dropped")
	clients := flag.Int("clients", 16, "concurrent exporters")
	batch := flag.Int("batch", 1000, "spans per export request")
	dur := flag.Duration("duration", 30*time.Second, "measurement time")
	hostile := flag.Bool("hostile", false, "drive the hostile mix beside the exporters (8 concurrent 15 MiB JSON bodies, 16 gzip bombs, 8 trickling senders) and report the share of their batches accepted")
	flag.Parse()
	run := run
	if *hostile {
		run = runHostile
	}
	if err := run(*bin, *admin, *clients, *batch, *dur); err != nil {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
}

// bench is a started server with a tenant and its ingest key.
type bench struct {
	srv  *exec.Cmd
	url  string
	key  string
	drop func() error
}

func (b *bench) close() {
	b.srv.Process.Kill()
	b.srv.Wait()
	dropDatabase(b.drop)
}

// start creates a scratch database with a tenant and an API key, and starts bin on it.
func start(bin, admin string) (*bench, error) {
	ctx := context.Background()
	dsn, drop, err := storetest.NewDatabase(ctx, admin, "tracekit_bench_")
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*bench, error) { dropDatabase(drop); return nil, err }
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return fail(err)
	}
	if err := db.Migrate(ctx); err != nil {
		return fail(err)
	}
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "bench"}); err != nil {
		return fail(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "bench", "ingestbench", nil)
	if err != nil {
		return fail(err)
	}
	db.Close()
	srv, base, err := benchserver.Start(bin, dsn)
	if err != nil {
		return fail(err)
	}
	return &bench{srv: srv, url: base + "/v1/traces", key: key, drop: drop}, nil
}

// watchRSS samples pid's peak RSS until stop is closed.
func watchRSS(pid int, stop <-chan struct{}) *atomic.Int64 {
	var peak atomic.Int64
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(200 * time.Millisecond):
				if rss := vmHWM(pid); rss > peak.Load() {
					peak.Store(rss)
				}
			}
		}
	}()
	return &peak
}

func run(bin, admin string, clients, batch int, dur time.Duration) error {
	b, err := start(bin, admin)
	if err != nil {
		return err
	}
	defer b.close()
	url, key, srv := b.url, b.key, b.srv
	bodies := make([]body, 64)
	for i := range bodies {
		bodies[i] = marshal(request(batch, uint64(i)))
	}
	var seq atomic.Uint64
	var (
		spans   atomic.Int64
		failed  atomic.Int64
		mu      sync.Mutex
		latency []time.Duration
	)
	stop := make(chan struct{})
	peakRSS := watchRSS(srv.Process.Pid, stop)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			var local []time.Duration
			for i := c; time.Now().Before(deadline); i += clients {
				// Every request carries new trace ids: the server stores a span once, so resending the
				// same bodies would measure only how fast it skips duplicates.
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(bodies[i%len(bodies)].withTraceIDs(seq.Add(1))))
				req.Header.Set("Content-Type", "application/x-protobuf")
				req.Header.Set("Authorization", "Bearer "+key)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
					continue
				}
				local = append(local, time.Since(t0))
				spans.Add(int64(batch))
			}
			mu.Lock()
			latency = append(latency, local...)
			mu.Unlock()
		}(c)
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(stop)
	sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
	pct := func(p float64) time.Duration {
		if len(latency) == 0 {
			return 0
		}
		return latency[int(p*float64(len(latency)-1))]
	}
	fmt.Printf("clients=%d batch=%d duration=%s\n", clients, batch, elapsed.Round(time.Millisecond))
	fmt.Printf("accepted spans: %d (%.0f spans/s), failed requests: %d\n", spans.Load(), float64(spans.Load())/elapsed.Seconds(), failed.Load())
	fmt.Printf("request latency: p50 %s, p99 %s\n", pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond))
	fmt.Printf("server peak RSS: %d MB\n", peakRSS.Load()/1024)
	return nil
}

// body is a marshaled request and where its trace ids are, so that each send can make them new.
type body struct {
	b      []byte
	traces []int // offsets of the 16-byte trace ids
}

func marshal(req *collectorpb.ExportTraceServiceRequest) body {
	b, _ := proto.Marshal(req)
	out := body{b: b}
	for _, rs := range req.ResourceSpans {
		for _, sp := range rs.ScopeSpans[0].Spans {
			if off := bytes.Index(b, sp.TraceId); off >= 0 {
				out.traces = append(out.traces, off)
			}
		}
	}
	return out
}

// withTraceIDs copies the body with the first 8 bytes of every trace id replaced by seq.
func (b body) withTraceIDs(seq uint64) []byte {
	buf := append([]byte(nil), b.b...)
	for _, off := range b.traces {
		binary.BigEndian.PutUint64(buf[off:], seq)
	}
	return buf
}

// request is a batch shaped like real traffic: traces of 10 spans across 3 services, with
// HTTP and DB attributes.
func request(n int, seed uint64) *collectorpb.ExportTraceServiceRequest {
	rnd := rand.New(rand.NewPCG(seed, 42))
	services := []string{"frontend", "checkout-service", "payment-service"}
	byService := make([][]*tracepb.Span, len(services))
	now := uint64(time.Now().UnixNano())
	for i := 0; i < n; i++ {
		tid := make([]byte, 16)
		sid := make([]byte, 8)
		pid := make([]byte, 8)
		for j := range tid {
			tid[j] = byte(rnd.Uint32())
		}
		for j := range sid {
			sid[j] = byte(rnd.Uint32())
			pid[j] = byte(rnd.Uint32())
		}
		svc := i % len(services)
		start := now - uint64(rnd.IntN(3600))*1e9
		sp := &tracepb.Span{TraceId: tid, SpanId: sid, Name: "SELECT orders", Kind: tracepb.Span_SPAN_KIND_CLIENT,
			StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(rnd.IntN(50e6)),
			Attributes: []*commonpb.KeyValue{kv("db.system", "postgresql"), kv("db.statement", "SELECT * FROM orders WHERE id = $1")}}
		if i%10 == 0 {
			sp.Kind = tracepb.Span_SPAN_KIND_SERVER
			sp.Name = "POST /checkout"
			sp.Attributes = []*commonpb.KeyValue{kv("http.request.method", "POST"), kv("http.route", "/checkout"),
				{Key: "http.response.status_code", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: 200}}}, kv("user.id", strconv.Itoa(rnd.IntN(1000)))}
		} else {
			sp.ParentSpanId = pid
		}
		byService[svc] = append(byService[svc], sp)
	}
	req := &collectorpb.ExportTraceServiceRequest{}
	for i, s := range services {
		req.ResourceSpans = append(req.ResourceSpans, &tracepb.ResourceSpans{
			Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("service.name", s), kv("service.version", "1.0.0"), kv("host.name", s+"-7d9f")}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: byService[i]}},
		})
	}
	return req
}

func kv(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// vmHWM is a process's peak resident set size in KiB.
func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func dropDatabase(drop func() error) {
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
