// Package example_test runs examples/shop, as a new user would, against `tracekit server` on
// PostgreSQL: a breakpoint made with `tracekit breakpoint create` captures the request's variables,
// and the MCP tools return them linked to the request's trace.
package example_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/hack/benchserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// build compiles the Go package in dir (a module directory relative to this one) into bin.
func build(t *testing.T, dir, out string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), out)
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", dir, err, b)
	}
	return bin
}

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

func callTool(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, out any) string {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil || res.IsError {
		t.Fatalf("%s(%v): %v %+v", tool, args, err, res)
	}
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, out); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestShop_BreakpointFromTheCLICapturesTheRequestsVariablesLinkedToItsTrace(t *testing.T) {
	ctx := context.Background()
	dsn := storetest.PostgresDSN(t)
	db := storetest.Open(t, dsn)
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "shop", nil)
	if err != nil {
		t.Fatal(err)
	}
	tracekit := build(t, "../../cmd/tracekit", "tracekit")
	shopBin := build(t, "../../examples/shop", "shop")

	srv, base, err := benchserver.Start(tracekit, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })

	shop := exec.Command(shopBin, "-addr", "127.0.0.1:0")
	shop.Env = append(os.Environ(), "TRACEKIT_ENDPOINT="+base, "TRACEKIT_API_KEY="+key, "TRACEKIT_POLL_INTERVAL=200ms",
		"OTEL_EXPORTER_OTLP_ENDPOINT=", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=")
	stdout, _ := shop.StdoutPipe()
	shop.Stderr = os.Stderr
	if err := shop.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { shop.Process.Signal(os.Interrupt); shop.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "shop listening on ") {
		t.Fatalf("shop did not start: %q %v", line, err)
	}
	shopURL := strings.Fields(line)[3]

	create := exec.Command(tracekit, "breakpoint", "create", "--database-url", dsn, "--tenant", "acme", "--service", "shop",
		"--label", "checkout.total", "--condition", "total > 20 && customer.name == 'alice'", "--hit-limit", "3")
	out, err := create.Output()
	if err != nil {
		t.Fatalf("tracekit breakpoint create: %v %s", err, out)
	}
	bp := strings.TrimSpace(string(out))

	client := mcp.NewClient(&mcp.Implementation{Name: "example-test", Version: "1"}, nil)
	s, err := client.Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp",
		HTTPClient: &http.Client{Transport: bearer{key}}, MaxRetries: -1}, &mcp.ClientSessionOptions{ProtocolVersion: "2025-06-18"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	type snapshot struct {
		BreakpointID string         `json:"breakpoint_id"`
		TraceID      string         `json:"trace_id"`
		SpanID       string         `json:"span_id"`
		Variables    map[string]any `json:"variables"`
	}
	var snaps struct {
		Snapshots []snapshot `json:"snapshots"`
	}
	traces := map[string]string{} // trace id -> user of the request
	var raw string
	for deadline := time.Now().Add(30 * time.Second); len(snaps.Snapshots) == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot after 30 s of requests (%d requests)", len(traces))
		}
		for _, user := range []string{"bob", "alice"} { // the condition selects alice's requests
			resp, err := http.Get(shopURL + "/checkout?items=3&user=" + user)
			if err != nil {
				t.Fatal(err)
			}
			var body struct {
				TraceID string `json:"trace_id"`
			}
			json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			traces[body.TraceID] = user
		}
		time.Sleep(300 * time.Millisecond)
		raw = callTool(t, s, "search_snapshots", map[string]any{"breakpoint_id": bp}, &snaps)
	}
	got := snaps.Snapshots[0]
	if traces[got.TraceID] != "alice" || len(got.SpanID) != 16 {
		t.Errorf("snapshot not linked to one of alice's requests (trace %s): %s", got.TraceID, raw)
	}
	if got.Variables["total"] != 61.75 || got.Variables["cart"] == nil {
		t.Errorf("captured variables: %s", raw)
	}
	for _, secret := range []string{"4111 1111 1111 1111", "alice@example.com", `"737"`} {
		if strings.Contains(raw, secret) {
			t.Errorf("%s captured in clear: %s", secret, raw)
		}
	}

	// A file:line breakpoint on the same call, as a person reading the source would set it.
	src, err := os.ReadFile("../../examples/shop/main.go")
	if err != nil {
		t.Fatal(err)
	}
	before, _, _ := strings.Cut(string(src), `debugger.Capture(ctx, "checkout.total"`)
	at := fmt.Sprintf("shop/main.go:%d", strings.Count(before, "\n")+1)
	out, err = exec.Command(tracekit, "breakpoint", "create", "--database-url", dsn, "--tenant", "acme", "--service", "shop",
		"--hit-limit", "1", at).Output()
	if err != nil {
		t.Fatalf("tracekit breakpoint create %s: %v %s", at, err, out)
	}
	lineBP := strings.TrimSpace(string(out))
	var lineSnaps struct {
		Snapshots []snapshot `json:"snapshots"`
		Total     int        `json:"total"`
	}
	for deadline := time.Now().Add(30 * time.Second); lineSnaps.Total == 0; time.Sleep(300 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no capture at %s", at)
		}
		resp, err := http.Get(shopURL + "/checkout?items=1&user=chen")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		callTool(t, s, "search_snapshots", map[string]any{"breakpoint_id": lineBP}, &lineSnaps)
	}
	// Hit limits hold: the label breakpoint stops at 3 however often alice checks out.
	for range 6 {
		resp, err := http.Get(shopURL + "/checkout?items=3&user=alice")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	time.Sleep(time.Second) // uploads are sent in the background
	var all struct {
		Total int `json:"total"`
	}
	if callTool(t, s, "search_snapshots", map[string]any{"breakpoint_id": bp}, &all); all.Total != 3 {
		t.Errorf("%d captures of a breakpoint with hit limit 3", all.Total)
	}

	// The trace the snapshot points to arrived with its database and model-call spans.
	var detail struct {
		Waterfall []struct {
			Operation string `json:"operation"`
		} `json:"waterfall"`
	}
	var names string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		res, err := s.CallTool(ctx, &mcp.CallToolParams{Name: "get_trace_detail", Arguments: map[string]any{"trace_id": got.TraceID}})
		if err == nil && !res.IsError {
			b, _ := json.Marshal(res.StructuredContent)
			json.Unmarshal(b, &detail)
			names = fmt.Sprint(detail.Waterfall)
			if strings.Contains(names, "SELECT products") && strings.Contains(names, "chat gpt-4o-mini") && strings.Contains(names, "{GET /checkout}") {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("trace %s of the snapshot: spans %s, err %v", got.TraceID, names, err)
		}
	}
}
