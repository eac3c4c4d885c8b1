package debugger_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracekit/tracekit/sdk/go/debugger"
)

// fakeServer serves GET /v1/breakpoints from a list the test sets and records POST /v1/snapshots.
type fakeServer struct {
	*httptest.Server
	mu          sync.Mutex
	breakpoints []map[string]any
	interval    int
	polls       int
	snapshots   chan map[string]any
	refuse      int // status for uploads; 0: 201
}

func newFake(t *testing.T) *fakeServer {
	f := &fakeServer{snapshots: make(chan map[string]any, 100), interval: 30}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tk_test" {
			http.Error(w, `{"error":"bad key"}`, http.StatusUnauthorized)
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		switch {
		case r.Method == "GET" && r.URL.Path == "/v1/breakpoints" && r.URL.Query().Get("service") == "shop":
			f.polls++
			json.NewEncoder(w).Encode(map[string]any{"breakpoints": f.breakpoints, "poll_interval_seconds": f.interval})
		case r.Method == "POST" && r.URL.Path == "/v1/snapshots":
			var s map[string]any
			b, _ := io.ReadAll(r.Body)
			if err := json.Unmarshal(b, &s); err != nil {
				t.Errorf("upload is not JSON: %s", b)
			}
			s["raw"] = string(b)
			if f.refuse != 0 {
				w.WriteHeader(f.refuse)
				return
			}
			f.snapshots <- s
			w.WriteHeader(http.StatusCreated)
		default:
			t.Errorf("unexpected %s %s", r.Method, r.URL)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeServer) set(bps ...map[string]any) {
	f.mu.Lock()
	f.breakpoints = bps
	f.mu.Unlock()
}

func start(t *testing.T, f *fakeServer) *debugger.Agent {
	t.Helper()
	a, err := debugger.Start(debugger.Config{Service: "shop", Endpoint: f.URL, APIKey: "tk_test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func refresh(t *testing.T, a *debugger.Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
}

// captureAtKnownLine returns the line of its Capture call.
func captureAtKnownLine(ctx context.Context, vars map[string]any) int {
	_, _, line, _ := runtime.Caller(0)
	debugger.Capture(ctx, "", vars) // keep on the line after runtime.Caller
	return line + 1
}

func (f *fakeServer) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case s := <-f.snapshots:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("no snapshot uploaded")
		return nil
	}
}

func (f *fakeServer) none(t *testing.T) {
	t.Helper()
	select {
	case s := <-f.snapshots:
		t.Fatalf("unexpected snapshot: %v", s["raw"])
	case <-time.After(300 * time.Millisecond):
	}
}

func spanContext() context.Context {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	return trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
}

func TestCapture_ByLabelOrFileAndLine_LinkedToTheSpanAndRedactedBeforeSending(t *testing.T) {
	f := newFake(t)
	a := start(t, f)
	line := captureAtKnownLine(context.Background(), nil)
	f.set(map[string]any{"id": "bp_label", "label": "checkout.total", "condition": "total > 100", "hit_limit": 100},
		map[string]any{"id": "bp_line", "file": "debugger/debugger_test.go", "line": line})
	refresh(t, a)

	ctx := spanContext()
	type card struct {
		Number string `json:"number"`
		Last4  string `json:"last4"`
	}
	debugger.Capture(ctx, "checkout.total", map[string]any{"total": 99.5})
	f.none(t) // condition false
	debugger.Capture(ctx, "checkout.total", map[string]any{"total": 150.25, "password": "hunter2",
		"card": card{"4111 1111 1111 1111", "1111"}, "customer": "alice@example.com"})
	s := f.next(t)
	raw := s["raw"].(string)
	for _, secret := range []string{"hunter2", "4111 1111 1111 1111", "alice@example.com"} {
		if strings.Contains(raw, secret) {
			t.Errorf("%s left the process: %s", secret, raw)
		}
	}
	vars := s["variables"].(map[string]any)
	if s["breakpoint_id"] != "bp_label" || s["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || s["span_id"] != "00f067aa0ba902b7" ||
		vars["total"] != 150.25 || vars["card"].(map[string]any)["last4"] != "1111" {
		t.Errorf("capture: %s", raw)
	}
	top := s["stack"].([]any)[0].(map[string]any)
	if !strings.HasSuffix(top["file"].(string), "debugger_test.go") || !strings.Contains(top["function"].(string), "TestCapture_ByLabel") {
		t.Errorf("stack does not start at the caller: %v", top)
	}

	captureAtKnownLine(context.Background(), map[string]any{"n": 1})
	if s := f.next(t); s["breakpoint_id"] != "bp_line" || s["trace_id"] != nil || s["stack"].([]any)[0].(map[string]any)["line"] != float64(line) {
		t.Errorf("file:line capture: %v", s["raw"])
	}
	debugger.Capture(context.Background(), "other.label", map[string]any{"n": 1})
	f.none(t)
}

func TestCapture_StopsAtHitLimitExpiryAndWhenTheServerSaysGone(t *testing.T) {
	f := newFake(t)
	a := start(t, f)
	f.set(map[string]any{"id": "bp_limited", "label": "limited", "hit_limit": 5, "hit_count": 3},
		map[string]any{"id": "bp_expired", "label": "expired", "expires_at": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)},
		map[string]any{"id": "bp_lazy", "label": "lazy"})
	refresh(t, a)
	for range 5 {
		debugger.Capture(context.Background(), "limited", map[string]any{"i": 1})
	}
	f.next(t)
	f.next(t)
	f.none(t) // 5 - 3 = 2 captures left
	debugger.Capture(context.Background(), "expired", map[string]any{"i": 1})
	f.none(t)

	built := 0
	debugger.CaptureFunc(context.Background(), "unknown", func() map[string]any { built++; return nil })
	if built != 0 {
		t.Errorf("CaptureFunc built the variables of a label with no breakpoint")
	}
	f.mu.Lock()
	f.refuse = http.StatusGone
	f.mu.Unlock()
	debugger.CaptureFunc(context.Background(), "lazy", func() map[string]any { built++; return map[string]any{"i": 1} })
	time.Sleep(200 * time.Millisecond) // the refusal is read by the sending goroutine
	debugger.CaptureFunc(context.Background(), "lazy", func() map[string]any { built++; return map[string]any{"i": 1} })
	if built != 1 {
		t.Errorf("captured %d times after the server answered 410, want 1", built)
	}
}

func TestStart_HonoursThePollIntervalAndRefusesAnIncompleteConfig(t *testing.T) {
	f := newFake(t)
	f.interval = 1
	start(t, f)
	deadline := time.Now().Add(5 * time.Second)
	for {
		f.mu.Lock()
		polls := f.polls
		f.mu.Unlock()
		if polls >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d polls in 5 s with poll_interval_seconds 1", polls)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, cfg := range []debugger.Config{{Endpoint: f.URL, APIKey: "k"}, {Service: "s", APIKey: "k", Endpoint: "localhost:8080"},
		{Service: "s", Endpoint: f.URL, APIKey: "tk_a\nAPI key: tk_b"}} {
		t.Setenv("OTEL_SERVICE_NAME", "")
		t.Setenv("TRACEKIT_ENDPOINT", "")
		t.Setenv("TRACEKIT_API_KEY", "")
		if _, err := debugger.Start(cfg); err == nil {
			t.Errorf("Start(%+v) accepted", cfg)
		}
	}
}

func TestCapture_AllocatesNothingWithoutAnActiveBreakpoint(t *testing.T) {
	f := newFake(t)
	a := start(t, f)
	refresh(t, a)
	vars := map[string]any{"total": 1.5}
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { debugger.Capture(ctx, "checkout.total", vars) }); n != 0 {
		t.Errorf("Capture: %v allocations per call", n)
	}
	total := 2.5
	if n := testing.AllocsPerRun(1000, func() {
		debugger.CaptureFunc(ctx, "checkout.total", func() map[string]any { return map[string]any{"total": total} })
	}); n != 0 {
		t.Errorf("CaptureFunc: %v allocations per call", n)
	}
}

// go test ./debugger -run '^$' -bench Capture -benchmem (recorded in docs/benchmarks.md)
func BenchmarkCapture(b *testing.B) {
	ctx := context.Background()
	total, items := 129.95, 3
	b.Run("no agent", func(b *testing.B) {
		for b.Loop() {
			debugger.Capture(ctx, "checkout.total", nil)
		}
	})
	f := newFakeB(b, `[]`)
	a, err := debugger.Start(debugger.Config{Service: "shop", Endpoint: f.URL, APIKey: "tk_test"})
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	vars := map[string]any{"total": total, "items": items}
	b.Run("no active breakpoint", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			debugger.Capture(ctx, "checkout.total", vars)
		}
	})
	b.Run("no active breakpoint, CaptureFunc literal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			debugger.CaptureFunc(ctx, "checkout.total", func() map[string]any { return map[string]any{"total": total, "items": items} })
		}
	})
	b.Run("no active breakpoint, map literal at the call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			debugger.Capture(ctx, "checkout.total", map[string]any{"total": total, "items": items})
		}
	})
	a.Close()
	f = newFakeB(b, `[{"id": "bp_1", "label": "other.label"}, {"id": "bp_2", "file": "elsewhere.go", "line": 7}]`)
	if a, err = debugger.Start(debugger.Config{Service: "shop", Endpoint: f.URL, APIKey: "tk_test"}); err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if err := a.Refresh(ctx); err != nil {
		b.Fatal(err)
	}
	b.Run("breakpoints active elsewhere", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			debugger.Capture(ctx, "checkout.total", vars)
		}
	})
}

func newFakeB(b *testing.B, breakpoints string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"breakpoints": ` + breakpoints + `, "poll_interval_seconds": 30}`))
	}))
	b.Cleanup(s.Close)
	return s
}
