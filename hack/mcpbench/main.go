// Command mcpbench measures the MCP tools as assistants use them: it starts `tracekit server` on a
// PostgreSQL database holding a day of demo traffic (loaded through OTLP, anomalies detected), then
// drives /mcp with concurrent Go SDK clients calling the tools at their default limits, and reports
// per-tool latency, answer sizes in tokens (characters/4) and calls per second.
//
// Loading 5 million spans takes a while, so -keep leaves the database in place and -database-url
// measures an already loaded one:
//
//	go run ./hack/mcpbench -spans 5000000 -keep          # prints the database URL
//	go run ./hack/mcpbench -database-url postgres://…    # measure again
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/hack/benchserver"
	"github.com/tracekit/tracekit/server/analysis/anomaly"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

const tenant = "bench"

func main() {
	bin := flag.String("tracekit", "bin/tracekit", "tracekit binary to benchmark")
	admin := flag.String("postgres", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "PostgreSQL admin URL; a scratch database is created")
	dbURL := flag.String("database-url", "", "measure this already loaded database instead of creating one")
	spans := flag.Int("spans", 5_000_000, "spans of demo traffic to load into a new database")
	keep := flag.Bool("keep", false, "keep the new database for later runs")
	clients := flag.Int("clients", 32, "concurrent MCP clients")
	dur := flag.Duration("duration", 30*time.Second, "measurement time")
	v := volumeFlags()
	flag.Parse()
	if err := run(*bin, *admin, *dbURL, *spans, *keep, *clients, *dur, v); err != nil {
		fmt.Fprintln(os.Stderr, "mcpbench:", err)
		os.Exit(1)
	}
}

func run(bin, admin, dsn string, spans int, keep bool, clients int, dur time.Duration, v *volume) error {
	ctx := context.Background()
	load := dsn == "" || v.fromDay > 0
	if v.name != "" && dsn == "" {
		var err error
		if dsn, err = v.database(ctx, admin); err != nil {
			return err
		}
		fmt.Printf("database: %s\n", dsn)
	} else if dsn == "" {
		var drop func() error
		var err error
		if dsn, drop, err = storetest.NewDatabase(ctx, admin, "tracekit_mcpbench_"); err != nil {
			return err
		}
		if keep {
			fmt.Printf("database: %s\n", dsn)
		} else {
			defer dropDatabase(drop)
		}
	}
	db, err := store.Open(ctx, dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	if err := db.Migrate(ctx); err != nil {
		return err
	}
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: tenant}); err != nil {
		return err
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, tenant, "mcpbench", nil)
	if err != nil {
		return err
	}

	srv, base, err := benchserver.Start(bin, dsn)
	if err != nil {
		return err
	}
	defer srv.Process.Kill()

	if load {
		if err := v.load(ctx, base, key, spans); err != nil {
			return err
		}
		if _, err := anomaly.Detect(ctx, db.ForTenant(tenant), time.Now(), anomaly.Config{}); err != nil {
			return err
		}
		if conn, err := pgx.Connect(ctx, dsn); err == nil {
			_, _ = conn.Exec(ctx, "VACUUM ANALYZE")
			conn.Close(ctx)
		}
	}
	if v.loadOnly {
		return nil
	}

	mix, err := callMix(ctx, base, key)
	if err != nil {
		return err
	}
	// Every call distinct first (a random max_tokens defeats the server's answer sharing), so the
	// figures are the tools' own; then the mix as it comes, repeated calls included.
	for _, distinct := range []bool{true, false} {
		if err := measure(ctx, base, key, mix, clients, dur, distinct, srv.Process.Pid); err != nil {
			return err
		}
	}
	if v.rca > 0 {
		if err := measureRCA(ctx, base, key, v.rca); err != nil {
			return err
		}
	}
	if err := storage(ctx, dsn); err != nil {
		return err
	}
	if v.dropDay {
		return dropOldestDay(ctx, db, dsn)
	}
	return nil
}

// call is one tool call of the mix.
type call struct {
	tool string
	args map[string]any
}

// callMix builds the calls an assistant makes, with arguments taken from the data: every tool but
// get_rca (which may compute), at its default limits.
func callMix(ctx context.Context, base, key string) ([]call, error) {
	s, err := connect(ctx, base, key)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	var services struct {
		Services []struct{ Name string } `json:"services"`
	}
	if err := callInto(ctx, s, "list_services", map[string]any{"since": "24h"}, &services); err != nil {
		return nil, err
	}
	var traces struct {
		Traces []struct {
			TraceID string `json:"trace_id"`
		} `json:"traces"`
	}
	if err := callInto(ctx, s, "search_traces", map[string]any{"since": "24h", "limit": 100}, &traces); err != nil {
		return nil, err
	}
	if len(services.Services) == 0 || len(traces.Traces) == 0 {
		return nil, fmt.Errorf("the database holds no demo data: load it first")
	}
	mix := []call{
		{"list_services", nil},
		{"get_active_alerts", nil},
		{"search_anomalies", nil},
		{"list_breakpoints", nil},
		{"search_snapshots", nil},
		{"search_llm_calls", nil},
		{"search_llm_calls", map[string]any{"sort": "cost"}},
		{"get_llm_stats", nil},
		{"get_llm_stats", map[string]any{"group_by": "service"}},
		{"search_traces", nil},
		{"search_traces", map[string]any{"status": "error"}},
	}
	for _, svc := range services.Services {
		mix = append(mix,
			call{"search_traces", map[string]any{"service": svc.Name, "sort": "duration"}},
			call{"get_service_metrics", map[string]any{"service": svc.Name}})
	}
	for _, t := range traces.Traces[:min(20, len(traces.Traces))] {
		mix = append(mix, call{"get_trace_detail", map[string]any{"trace_id": t.TraceID}})
	}
	return mix, nil
}

type callError struct {
	call call
	err  error
	res  *mcp.CallToolResult
}

type sample struct {
	tool    string
	latency time.Duration
	tokens  int
	failed  bool
}

func measure(ctx context.Context, base, key string, mix []call, clients int, dur time.Duration, distinct bool, server int) error {
	sessions := make([]*mcp.ClientSession, clients)
	for i := range sessions {
		s, err := connect(ctx, base, key)
		if err != nil {
			return err
		}
		defer s.Close()
		sessions[i] = s
	}
	var (
		mu       sync.Mutex
		samples  []sample
		calls    atomic.Int64
		firstErr atomic.Pointer[callError]
	)
	deadline := time.Now().Add(dur)
	start, cpu0 := time.Now(), readCPU(server)
	var wg sync.WaitGroup
	for c, s := range sessions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 1))
			var local []sample
			for time.Now().Before(deadline) {
				m := mix[rng.IntN(len(mix))]
				if distinct {
					args := map[string]any{"max_tokens": 3000 + rng.IntN(2000)}
					for k, v := range m.args {
						args[k] = v
					}
					m.args = args
				}
				t0 := time.Now()
				res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: m.tool, Arguments: m.args})
				sm := sample{tool: m.tool, latency: time.Since(t0), failed: err != nil || res.IsError}
				if err == nil {
					sm.tokens = tokens(res)
				}
				if sm.failed && firstErr.CompareAndSwap(nil, &callError{m, err, res}) {
					fmt.Fprintf(os.Stderr, "first failure: %s %v: %v %v\n", m.tool, m.args, err, res)
				}
				local = append(local, sm)
				calls.Add(1)
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), readCPU(server).sub(cpu0)
	what := "repeated calls answered from the server's 10-second answer cache where identical"
	if distinct {
		what = "every call distinct"
	}
	report(samples, clients, elapsed, what)
	n := time.Duration(len(samples))
	fmt.Printf("\nCPU per call: server %s, PostgreSQL %s, clients (this process) %s; the machine's two cores were %.0f%% busy, %.0f%% of it other work\n",
		cpu.server/n, cpu.postgres/n, cpu.self/n, 100*cpu.busy.Seconds()/(2*elapsed.Seconds()),
		100*max(0, (cpu.busy-cpu.server-cpu.postgres-cpu.self).Seconds())/max(cpu.busy.Seconds(), 1e-9)) // ticks round
	return nil
}

// cpuTimes are CPU times consumed so far, read from /proc (Linux).
type cpuTimes struct{ server, postgres, self, busy time.Duration }

func (a cpuTimes) sub(b cpuTimes) cpuTimes {
	return cpuTimes{a.server - b.server, a.postgres - b.postgres, a.self - b.self, a.busy - b.busy}
}

// readCPU reads the CPU time of the server process, of all PostgreSQL processes, of this process,
// and the machine's busy time, so a run shows where the cores went.
func readCPU(server int) cpuTimes {
	const tick = 10 * time.Millisecond // USER_HZ is 100 on Linux
	var c cpuTimes
	procs, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open {
			continue
		}
		f := strings.Fields(string(b[end+2:])) // from field 3 (state) on
		if len(f) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		t := time.Duration(utime+stime) * tick
		pid, _ := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
		switch {
		case pid == server:
			c.server += t
		case pid == os.Getpid():
			c.self += t
		case string(b[open+1:end]) == "postgres":
			c.postgres += t
		}
	}
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]) // cpu user nice system idle iowait irq softirq steal
		for i, v := range f[1:min(len(f), 9)] {
			if n, _ := strconv.ParseInt(v, 10, 64); i != 3 && i != 4 {
				c.busy += time.Duration(n) * tick
			}
		}
	}
	return c
}

func report(samples []sample, clients int, elapsed time.Duration, what string) {
	by := map[string][]sample{}
	var all []sample
	for _, s := range samples {
		by[s.tool] = append(by[s.tool], s)
		all = append(all, s)
	}
	tools := make([]string, 0, len(by))
	for t := range by {
		tools = append(tools, t)
	}
	sort.Strings(tools)
	fmt.Printf("\n%s; %d clients, %s: %d calls, %.0f calls/s\n\n", what, clients, elapsed.Round(time.Second), len(samples), float64(len(samples))/elapsed.Seconds())
	fmt.Println("| tool | calls | p50 ms | p95 ms | max ms | median tokens | max tokens | errors |")
	fmt.Println("| --- | --- | --- | --- | --- | --- | --- | --- |")
	for _, t := range append(tools, "all") {
		ss := by[t]
		if t == "all" {
			ss = all
		}
		lat := make([]time.Duration, len(ss))
		tok := make([]int, len(ss))
		failed := 0
		for i, s := range ss {
			lat[i], tok[i] = s.latency, s.tokens
			if s.failed {
				failed++
			}
		}
		slices.Sort(lat)
		slices.Sort(tok)
		ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
		fmt.Printf("| %s | %d | %s | %s | %s | %d | %d | %d |\n", t, len(ss), ms(lat[len(lat)/2]), ms(lat[len(lat)*95/100]),
			ms(lat[len(lat)-1]), tok[len(tok)/2], tok[len(tok)-1], failed)
	}
}

// tokens is what an answer costs an assistant: text and structured content, in characters/4.
func tokens(res *mcp.CallToolResult) int {
	n := 0
	for _, c := range res.Content {
		if t, ok := c.(*mcp.TextContent); ok {
			n += len(t.Text)
		}
	}
	b, _ := json.Marshal(res.StructuredContent)
	return (n + len(b)) / 4
}

type bearer struct {
	key string
	rt  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return b.rt.RoundTrip(r)
}

var transport = &http.Transport{MaxIdleConnsPerHost: 256}

func connect(ctx context.Context, base, key string) (*mcp.ClientSession, error) {
	client := mcp.NewClient(&mcp.Implementation{Name: "mcpbench", Version: "1"}, nil)
	return client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{key, transport}}, MaxRetries: -1, DisableStandaloneSSE: true},
		&mcp.ClientSessionOptions{ProtocolVersion: "2025-06-18"})
}

func callInto(ctx context.Context, s *mcp.ClientSession, tool string, args map[string]any, out any) error {
	res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		return err
	}
	if res.IsError {
		return fmt.Errorf("%s: %v", tool, res.Content)
	}
	b, _ := json.Marshal(res.StructuredContent)
	return json.Unmarshal(b, out)
}

func dropDatabase(drop func() error) {
	if err := drop(); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
