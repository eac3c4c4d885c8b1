// Command ingestbench measures durable OTLP ingest: it starts `tracekit server` on a fresh
// PostgreSQL database, drives OTLP/HTTP (POST /v1/traces) or OTLP/gRPC (TraceService/Export) with
// concurrent protobuf batches, and reports accepted spans/s, request latency, the CPU per span of the
// server and of its PostgreSQL backends, and the server's peak RSS. Every counted span was
// acknowledged, so it is committed. By default it measures both database paths side by side: the
// server connected as the database owner (COPY) and as the tenant's own role (what a cluster's tenant
// server uses: INSERT … SELECT FROM unnest under row-level security), in the order owner, tenant,
// tenant, owner so that a machine getting busier or quieter favours neither, and prints the ratio.
// Run it with `make bench-ingest` (ARGS="-path tenant" for one path, "-protocol grpc" for OTLP/gRPC,
// "-protocol both" for the two transports side by side, each run on a fresh database).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"math"
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

	"github.com/jackc/pgx/v5"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/hack/benchserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// linked is the share of spans that are messaging consumers starting a trace of their own, linked
// to the producer span before them (span links; store.LinkedTraceKey indexes them).
var linked = flag.Float64("linked", 0, "fraction of spans (0-0.5) that are consumers linking to an earlier producer span in another trace")

func main() {
	bin := flag.String("tracekit", "bin/tracekit", "tracekit binary to benchmark")
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL; a scratch database is created and dropped")
	clients := flag.Int("clients", 16, "concurrent exporters")
	batch := flag.Int("batch", 1000, "spans per export request")
	dur := flag.Duration("duration", 30*time.Second, "measurement time")
	hostile := flag.Bool("hostile", false, "drive the hostile mix beside the exporters (8 concurrent 15 MiB JSON bodies, 16 gzip bombs, 8 trickling senders) and report the share of their batches accepted")
	protocol := flag.String("protocol", "http", "http (OTLP/HTTP protobuf), grpc (OTLP/gRPC) or both, one after the other")
	path := flag.String("path", "both", "the server's database connection: owner (COPY), tenant (the tenant's own role, under row-level security) or both side by side")
	flag.Parse()
	if *linked < 0 || *linked > 0.5 {
		fmt.Fprintf(os.Stderr, "ingestbench: -linked %v: want a fraction from 0 to 0.5: each consumer follows a producer\n", *linked)
		os.Exit(2)
	}
	paths := []string{*path}
	switch *path {
	case "owner", "tenant":
	case "both":
		paths = []string{"owner", "tenant", "tenant", "owner"}
	default:
		fmt.Fprintf(os.Stderr, "ingestbench: -path %q: use owner, tenant or both\n", *path)
		os.Exit(2)
	}
	protocols := []string{*protocol}
	switch *protocol {
	case "http", "grpc":
	case "both":
		protocols = []string{"http", "grpc"}
	default:
		fmt.Fprintf(os.Stderr, "ingestbench: -protocol %q: use http, grpc or both\n", *protocol)
		os.Exit(2)
	}
	if *hostile {
		protocols = []string{"hostile"}
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "ingestbench:", err)
		os.Exit(1)
	}
	for _, p := range protocols {
		if p == "hostile" {
			if err := runHostile(*bin, *admin, *clients, *batch, *dur); err != nil {
				fail(err)
			}
			continue
		}
		results := map[string][]result{}
		for _, role := range paths {
			r, err := run(*bin, *admin, p, role, *clients, *batch, *dur)
			if err != nil {
				fail(err)
			}
			results[role] = append(results[role], r)
		}
		if len(results) == 2 {
			summarise(p, results)
		}
	}
}

// result is one run's figures.
type result struct {
	spansPerSec float64
	serverCPU   float64 // µs per span
	postgresCPU float64 // µs per span, the server's PostgreSQL backends
}

// summarise prints each path's mean over its runs and the tenant path's share of the owner's.
func summarise(protocol string, results map[string][]result) {
	mean := func(rs []result) (m result) {
		for _, r := range rs {
			m.spansPerSec += r.spansPerSec / float64(len(rs))
			m.serverCPU += r.serverCPU / float64(len(rs))
			m.postgresCPU += r.postgresCPU / float64(len(rs))
		}
		return m
	}
	owner, tenant := mean(results["owner"]), mean(results["tenant"])
	fmt.Printf("\n%s, mean of %d runs each:\n", protocol, len(results["owner"]))
	fmt.Printf("  %-34s %9s %16s %18s\n", "path", "spans/s", "server µs/span", "PostgreSQL µs/span")
	fmt.Printf("  %-34s %9.0f %16.2f %18.2f\n", "owner connection, COPY", owner.spansPerSec, owner.serverCPU, owner.postgresCPU)
	fmt.Printf("  %-34s %9.0f %16.2f %18.2f\n", "tenant's own role, INSERT … unnest", tenant.spansPerSec, tenant.serverCPU, tenant.postgresCPU)
	fmt.Printf("tenant role / owner COPY: %.2f× spans/s, %.2f× the CPU per span (server + PostgreSQL)\n",
		tenant.spansPerSec/owner.spansPerSec, (tenant.serverCPU+tenant.postgresCPU)/(owner.serverCPU+owner.postgresCPU))
}

// bench is a started server with a tenant and its ingest key.
type bench struct {
	srv      *exec.Cmd
	url      string
	grpcAddr string
	key      string
	drop     func() error
	dsn      string // the scratch database, as its owner
}

func (b *bench) close() {
	b.srv.Process.Kill()
	b.srv.Wait()
	dropDatabase(b.drop)
}

// start creates a scratch database with a tenant and an API key, and starts bin on it connected as
// the database owner, or with role "tenant" as the tenant's own login role.
func start(bin, admin, role string) (*bench, error) {
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
	creds, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "bench"})
	if err != nil {
		return fail(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "bench", "ingestbench", nil)
	if err != nil {
		return fail(err)
	}
	db.Close()
	serverDSN := dsn
	if role == "tenant" {
		if serverDSN, err = creds.DSN(dsn); err != nil {
			return fail(err)
		}
	}
	srv, base, grpcAddr, err := benchserver.StartGRPC(bin, serverDSN)
	if err != nil {
		return fail(err)
	}
	return &bench{srv: srv, url: base + "/v1/traces", grpcAddr: grpcAddr, key: key, drop: drop, dsn: dsn}, nil
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

func run(bin, admin, protocol, role string, clients, batch int, dur time.Duration) (result, error) {
	b, err := start(bin, admin, role)
	if err != nil {
		return result{}, err
	}
	defer b.close()
	srv := b.srv
	export := httpExporter(b.url, b.key, clients)
	if protocol == "grpc" {
		if export, err = grpcExporter(b.grpcAddr, b.key); err != nil {
			return result{}, err
		}
	}
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
	deadline := time.Now().Add(dur)
	cpu0 := cpuSeconds(srv.Process.Pid)
	pg0, err := backendCPU(b.dsn)
	if err != nil {
		return result{}, err
	}
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
				body := bodies[i%len(bodies)].withTraceIDs(seq.Add(1))
				t0 := time.Now()
				if err := export(body); err != nil {
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
	cpu := cpuSeconds(srv.Process.Pid) - cpu0
	pg1, err := backendCPU(b.dsn)
	if err != nil {
		return result{}, err
	}
	pgCPU := 0.0
	for pid, s := range pg1 {
		pgCPU += s - pg0[pid] // a backend started during the run counts from 0
	}
	close(stop)
	sort.Slice(latency, func(i, j int) bool { return latency[i] < latency[j] })
	pct := func(p float64) time.Duration {
		if len(latency) == 0 {
			return 0
		}
		return latency[int(p*float64(len(latency)-1))]
	}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("path=%s protocol=%s clients=%d batch=%d linked=%g duration=%s load average %s\n", role, protocol, clients, batch, *linked,
		elapsed.Round(time.Millisecond), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Printf("accepted spans: %d (%.0f spans/s), failed requests: %d\n", spans.Load(), float64(spans.Load())/elapsed.Seconds(), failed.Load())
	fmt.Printf("request latency: p50 %s, p99 %s\n", pct(0.5).Round(time.Millisecond), pct(0.99).Round(time.Millisecond))
	fmt.Printf("server peak RSS: %d MB\n", peakRSS.Load()/1024)
	r := result{spansPerSec: float64(spans.Load()) / elapsed.Seconds()}
	if n := spans.Load(); n > 0 {
		// CPU per span is steadier than spans/s on a shared machine: it does not count waiting.
		r.serverCPU, r.postgresCPU = cpu/float64(n)*1e6, pgCPU/float64(n)*1e6
		fmt.Printf("server CPU: %.1f s, %.2f µs per span; its PostgreSQL backends: %.1f s, %.2f µs per span\n", cpu, r.serverCPU, pgCPU, r.postgresCPU)
	}
	if err := storage(b.dsn, "storage"); err != nil {
		return r, err
	}
	// What a day of these spans takes once it is over: the retention loop rebuilds its indexes packed.
	db, err := store.Open(context.Background(), b.dsn)
	if err != nil {
		return r, err
	}
	defer db.Close()
	if _, err := db.ForTenant("bench").CompactPartitions(context.Background(), math.MaxInt64); err != nil {
		return r, err
	}
	return r, storage(b.dsn, "storage once the day is over")
}

// storage prints the disk the stored spans take per span: the heap (with its TOAST) and the indexes
// of the spans table and all its partitions.
func storage(dsn, label string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "VACUUM ANALYZE spans"); err != nil {
		return err
	}
	var n, heap, indexes int64
	err = conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM spans),
		COALESCE(sum(pg_table_size(relid)), 0), COALESCE(sum(pg_indexes_size(relid)), 0)
		FROM pg_partition_tree('spans') WHERE isleaf`).Scan(&n, &heap, &indexes)
	if err != nil || n == 0 {
		return err
	}
	fmt.Printf("%s: %d spans, %.0f bytes per span (heap %.0f, indexes %.0f)\n", label, n,
		float64(heap+indexes)/float64(n), float64(heap)/float64(n), float64(indexes)/float64(n))
	return nil
}

// backendCPU is the CPU time of each PostgreSQL backend connected to the database of dsn, by pid
// (PostgreSQL runs on this host). Work of the WAL writer and checkpointer is not included.
func backendCPU(dsn string) (map[int]float64, error) {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return nil, fmt.Errorf("list PostgreSQL backends: %w", err)
	}
	out := make(map[int]float64, len(pids))
	for _, pid := range pids {
		out[int(pid)] = cpuSeconds(int(pid))
	}
	return out, nil
}

// httpExporter posts an encoded request to url as OTLP/HTTP protobuf.
func httpExporter(url, key string, clients int) func([]byte) error {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	return func(body []byte) error {
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	}
}

// grpcExporter calls TraceService/Export with an already encoded request over one connection, as
// an OTLP exporter does; encoding once keeps the load generator's CPU out of the comparison, as
// the HTTP mode's pre-encoded bodies do.
func grpcExporter(addr, key string) (func([]byte) error, error) {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodecV2(rawCodec{}), grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	md := metadata.Pairs("authorization", "Bearer "+key)
	return func(body []byte) error {
		ctx := metadata.NewOutgoingContext(context.Background(), md)
		var resp collectorpb.ExportTraceServiceResponse
		return conn.Invoke(ctx, collectorpb.TraceService_Export_FullMethodName, body, &resp)
	}, nil
}

// rawCodec sends []byte as the already encoded message and decodes answers as protobuf.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(v.([]byte))}, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	return proto.Unmarshal(data.Materialize(), v.(proto.Message))
}

func (rawCodec) Name() string { return "proto" }

// cpuSeconds is the user+system CPU time a process has used, from /proc/<pid>/stat.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th of the line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
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
			// Every occurrence: a link names its producer's trace too.
			for from := 0; ; {
				off := bytes.Index(b[from:], sp.TraceId)
				if off < 0 {
					break
				}
				out.traces = append(out.traces, from+off)
				from += off + len(sp.TraceId)
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
	var prev struct {
		span   *tracepb.Span
		linked bool
	}
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
		if *linked > 0 && i > 0 && !prev.linked && rnd.Float64() < *linked/(1-*linked) {
			// A consumer of the message the previous span published: it waited up to a minute.
			p := prev.span
			p.Kind, p.Name = tracepb.Span_SPAN_KIND_PRODUCER, "orders publish"
			sp.Kind, sp.Name, sp.ParentSpanId = tracepb.Span_SPAN_KIND_CONSUMER, "orders process", nil
			sp.StartTimeUnixNano = p.EndTimeUnixNano + uint64(rnd.IntN(60e3))*1e6
			sp.EndTimeUnixNano = sp.StartTimeUnixNano + uint64(rnd.IntN(50e6))
			sp.Links = []*tracepb.Span_Link{{TraceId: p.TraceId, SpanId: p.SpanId}}
		}
		prev.span, prev.linked = sp, sp.Links != nil
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
