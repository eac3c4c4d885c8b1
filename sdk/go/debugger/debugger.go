// Package debugger is TraceKit's live-debugging agent for Go applications. Start it once with the
// service's name; it polls the server for the service's active breakpoints, and
//
//	debugger.Capture(ctx, "checkout.total", map[string]any{"cart": cart, "total": total})
//
// sends the variables and the stack to TraceKit when an active breakpoint names this label or the
// file and line of this call, its condition holds for the variables, and its hit limit and expiry
// allow. The capture is linked to the OpenTelemetry span in ctx and redacted (sdk/go/redact, the
// server's rules) before it leaves the process.
//
// With no active breakpoint, Capture costs one atomic load (see docs/benchmarks.md). Building the
// variables map costs its allocations at the call site whether or not anything is captured; on hot
// paths use CaptureFunc, whose function runs only when a breakpoint matches.
//
// The HTTP protocol (GET /v1/breakpoints, POST /v1/snapshots) is described in
// docs/agent-protocol.yaml for agents in other languages.
package debugger

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/tracekit/tracekit/sdk/go/condition"
	"github.com/tracekit/tracekit/sdk/go/redact"
)

// Config is what Start needs. Empty fields take the environment variables named beside them.
type Config struct {
	Service  string // service.name of the application ($OTEL_SERVICE_NAME)
	Endpoint string // TraceKit's base URL, e.g. http://127.0.0.1:8080 ($TRACEKIT_ENDPOINT)
	APIKey   string // an API key with the ingest scope ($TRACEKIT_API_KEY)
	// PollInterval replaces the server's poll_interval_seconds: for tests and local development.
	PollInterval time.Duration
	HTTPClient   *http.Client // default: 10 s timeout
	Logger       *slog.Logger // default slog.Default()
}

// Limits of one capture, below the server's (256 KiB per snapshot, 32 levels).
const (
	maxVariableBytes = 16 << 10
	maxSnapshotBytes = 192 << 10
	maxDepth         = 24
	maxFrames        = 32
	queueLength      = 64
)

// Agent polls breakpoints and uploads captures for one service.
type Agent struct {
	cfg     Config
	active  atomic.Pointer[set] // nil: no active breakpoint
	uploads chan upload
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	pollNow chan chan error
	// Dropped counts captures not sent because the upload queue was full.
	Dropped atomic.Int64
}

var std atomic.Pointer[Agent]

// Start checks cfg, starts polling in the background and makes the agent the one Capture and
// CaptureFunc use. Close stops it. Start does not wait for the server: until the first poll
// answers, nothing is captured.
func Start(cfg Config) (*Agent, error) {
	if cfg.Service == "" {
		cfg.Service = os.Getenv("OTEL_SERVICE_NAME")
	}
	if cfg.Endpoint == "" {
		cfg.Endpoint = os.Getenv("TRACEKIT_ENDPOINT")
	}
	if cfg.APIKey == "" {
		cfg.APIKey = os.Getenv("TRACEKIT_API_KEY")
	}
	switch {
	case cfg.Service == "":
		return nil, errors.New("debugger: Service is required (or $OTEL_SERVICE_NAME): the service.name your traces carry")
	case cfg.Endpoint == "":
		return nil, errors.New("debugger: Endpoint is required (or $TRACEKIT_ENDPOINT), e.g. http://127.0.0.1:8080")
	case cfg.APIKey == "":
		return nil, errors.New("debugger: APIKey is required (or $TRACEKIT_API_KEY): a TraceKit API key with the ingest scope")
	case strings.ContainsAny(cfg.APIKey, " \t\r\n"):
		return nil, errors.New("debugger: APIKey contains white space: give the key alone (tk_…), without a newline or a \"Bearer\" prefix")
	}
	if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("debugger: Endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	cfg.Endpoint = strings.TrimRight(cfg.Endpoint, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	a := &Agent{cfg: cfg, uploads: make(chan upload, queueLength), cancel: cancel, pollNow: make(chan chan error)}
	a.wg.Add(2)
	go a.pollLoop(ctx)
	go a.sendLoop(ctx)
	std.Store(a)
	return a, nil
}

// Close stops polling, sends the captures already queued (for up to 5 s) and stops capturing.
func (a *Agent) Close() error {
	std.CompareAndSwap(a, nil)
	a.active.Store(nil)
	a.cancel()
	a.wg.Wait()
	return nil
}

// Refresh polls the breakpoints now instead of at the next interval.
func (a *Agent) Refresh(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case a.pollNow <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Capture captures vars and the stack here if an active breakpoint matches label or this line.
func Capture(ctx context.Context, label string, vars map[string]any) {
	if a := std.Load(); a != nil {
		if s := a.active.Load(); s != nil {
			a.hit(ctx, s, label, vars, nil)
		}
	}
}

// CaptureFunc is Capture with the variables built only when a breakpoint matches: on a hot path the
// call then allocates nothing.
func CaptureFunc(ctx context.Context, label string, vars func() map[string]any) {
	if a := std.Load(); a != nil {
		if s := a.active.Load(); s != nil {
			a.hit(ctx, s, label, nil, vars)
		}
	}
}

// Capture is the package-level Capture for this agent, when an application runs several.
func (a *Agent) Capture(ctx context.Context, label string, vars map[string]any) {
	if s := a.active.Load(); s != nil {
		a.hit(ctx, s, label, vars, nil)
	}
}

// set is the service's active breakpoints, indexed for Capture.
type set struct {
	byLabel map[string][]*breakpoint
	byLine  map[int][]*breakpoint
}

type breakpoint struct {
	id, file string // file: slash-separated, as the user wrote it
	cond     *condition.Expr
	expires  time.Time    // zero: never
	left     atomic.Int64 // captures left; negative: unlimited
	gone     atomic.Bool  // the server refused a capture: deleted, expired or used up
	warned   atomic.Bool  // its condition failed once and was logged
	matched  sync.Map     // caller file -> bool, so the suffix test runs once per call site
	_        [0]func()    // not comparable
}

// hit runs on the caller's goroutine when breakpoints are active: it finds the matching ones and
// captures for each. It is called from Capture's frame, so the application's frame is 2 up.
func (a *Agent) hit(ctx context.Context, s *set, label string, vars map[string]any, build func() map[string]any) {
	matches := s.byLabel[label]
	if len(s.byLine) > 0 {
		if _, file, line, ok := runtime.Caller(2); ok {
			for _, b := range s.byLine[line] {
				if b.at(file) {
					matches = append(matches[:len(matches):len(matches)], b)
				}
			}
		}
	}
	if len(matches) == 0 {
		return
	}
	var pcs [maxFrames]uintptr
	n := runtime.Callers(3, pcs[:])
	now := time.Now()
	for _, b := range matches {
		if !b.live(now) {
			continue
		}
		if vars == nil && build != nil {
			vars = build()
		}
		a.fire(ctx, now, b, vars, pcs[:n])
	}
}

// live reports whether the breakpoint may still capture at now.
func (b *breakpoint) live(now time.Time) bool {
	return !b.gone.Load() && (b.expires.IsZero() || now.Before(b.expires)) && b.left.Load() != 0
}

// at reports whether the breakpoint's file names callerFile: the same path, or its last elements
// ("shop/main.go" names /home/me/src/shop/main.go).
func (b *breakpoint) at(callerFile string) bool {
	if m, ok := b.matched.Load(callerFile); ok {
		return m.(bool)
	}
	f := filepath.ToSlash(callerFile)
	m := f == b.file || strings.HasSuffix(f, "/"+b.file)
	b.matched.Store(callerFile, m)
	return m
}

type upload struct {
	bp  *breakpoint
	req snapshotRequest
}

type snapshotRequest struct {
	BreakpointID string         `json:"breakpoint_id"`
	TraceID      string         `json:"trace_id,omitempty"`
	SpanID       string         `json:"span_id,omitempty"`
	CapturedAt   string         `json:"captured_at"`
	Variables    map[string]any `json:"variables"`
	Stack        []frame        `json:"stack"`
}

type frame struct {
	Function string `json:"function"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}

func (a *Agent) fire(ctx context.Context, now time.Time, b *breakpoint, vars map[string]any, pcs []uintptr) {
	tree := encodeVariables(vars)
	ok, err := b.cond.Eval(tree)
	if err != nil && !b.warned.Swap(true) {
		a.cfg.Logger.Warn("tracekit debugger: breakpoint condition failed; not capturing", "breakpoint", b.id, "error", err)
	}
	if !ok || !b.take() {
		return
	}
	redact.Value(tree)
	req := snapshotRequest{BreakpointID: b.id, CapturedAt: now.UTC().Format(time.RFC3339Nano), Variables: tree, Stack: stack(pcs)}
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		req.TraceID, req.SpanID = sc.TraceID().String(), sc.SpanID().String()
	}
	select {
	case a.uploads <- upload{b, req}:
	default:
		a.Dropped.Add(1)
		b.left.Add(1)
	}
}

// take uses one of the breakpoint's captures, if it has one left.
func (b *breakpoint) take() bool {
	for {
		n := b.left.Load()
		switch {
		case n < 0:
			return true
		case n == 0:
			return false
		case b.left.CompareAndSwap(n, n-1):
			return true
		}
	}
}

// encodeVariables turns the application's values into the JSON tree conditions and redaction
// read: each variable through encoding/json (exported fields, as json.Marshal sees them), too big
// or too deep ones replaced by a note saying so.
func encodeVariables(vars map[string]any) map[string]any {
	out := make(map[string]any, len(vars))
	total := 0
	for k, v := range vars {
		b, err := json.Marshal(v)
		switch {
		case err != nil:
			out[k] = fmt.Sprintf("<%T: not captured: %v>", v, err)
			continue
		case len(b) > maxVariableBytes:
			out[k] = fmt.Sprintf("<%T: %d bytes encoded, more than %d: not captured>", v, len(b), maxVariableBytes)
			continue
		case total+len(b) > maxSnapshotBytes:
			out[k] = "<not captured: the snapshot is full>"
			continue
		case redact.Depth(b) > maxDepth:
			out[k] = fmt.Sprintf("<%T: nests deeper than %d levels: not captured>", v, maxDepth)
			continue
		}
		total += len(b)
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var tree any
		_ = dec.Decode(&tree) // json.Marshal's output always decodes
		out[k] = tree
	}
	return out
}

func stack(pcs []uintptr) []frame {
	out := make([]frame, 0, len(pcs))
	frames := runtime.CallersFrames(pcs)
	for {
		f, more := frames.Next()
		out = append(out, frame{Function: f.Function, File: f.File, Line: f.Line})
		if !more {
			return out
		}
	}
}

// The background work: polling and sending.

type breakpointList struct {
	Breakpoints []struct {
		ID        string `json:"id"`
		File      string `json:"file"`
		Line      int    `json:"line"`
		Label     string `json:"label"`
		Condition string `json:"condition"`
		HitLimit  int    `json:"hit_limit"`
		HitCount  int    `json:"hit_count"`
		ExpiresAt string `json:"expires_at"`
	} `json:"breakpoints"`
	PollIntervalSeconds int `json:"poll_interval_seconds"`
}

func (a *Agent) pollLoop(ctx context.Context) {
	defer a.wg.Done()
	failures := 0
	for {
		interval, err := a.poll(ctx)
		if ctx.Err() != nil {
			return // closed
		}
		if a.cfg.PollInterval > 0 {
			interval = a.cfg.PollInterval
		}
		if err != nil {
			// Back off 1 s, 2 s, 4 s … up to the poll interval while the server is unreachable.
			failures++
			interval = min(interval, time.Second<<min(failures-1, 10))
			if failures == 1 || failures%10 == 0 {
				a.cfg.Logger.Warn("tracekit debugger: cannot read breakpoints", "error", err, "failures", failures)
			}
		} else {
			failures = 0
		}
		timer := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case reply := <-a.pollNow:
			timer.Stop()
			_, err := a.poll(ctx)
			reply <- err
		}
	}
}

// poll reads the active breakpoints and installs them; it returns the interval the server asks for.
func (a *Agent) poll(ctx context.Context) (time.Duration, error) {
	interval := 30 * time.Second
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.cfg.Endpoint+"/v1/breakpoints?service="+url.QueryEscape(a.cfg.Service), nil)
	if err != nil {
		return interval, err
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		return interval, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return interval, fmt.Errorf("GET /v1/breakpoints: %s: %s", resp.Status, readError(resp.Body))
	}
	var list breakpointList
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&list); err != nil {
		return interval, fmt.Errorf("GET /v1/breakpoints: %w", err)
	}
	if list.PollIntervalSeconds > 0 {
		interval = time.Duration(list.PollIntervalSeconds) * time.Second
	}
	a.install(list)
	return interval, nil
}

func (a *Agent) install(list breakpointList) {
	s := &set{byLabel: map[string][]*breakpoint{}, byLine: map[int][]*breakpoint{}}
	for _, in := range list.Breakpoints {
		cond, err := condition.Parse(in.Condition)
		if err != nil {
			a.cfg.Logger.Warn("tracekit debugger: skipping a breakpoint whose condition does not parse", "breakpoint", in.ID, "error", err)
			continue
		}
		b := &breakpoint{id: in.ID, file: strings.TrimPrefix(filepath.ToSlash(in.File), "./"), cond: cond}
		if in.ExpiresAt != "" {
			if b.expires, err = time.Parse(time.RFC3339, in.ExpiresAt); err != nil {
				a.cfg.Logger.Warn("tracekit debugger: skipping a breakpoint with a bad expiry", "breakpoint", in.ID, "expires_at", in.ExpiresAt)
				continue
			}
		}
		b.left.Store(-1)
		if in.HitLimit > 0 {
			b.left.Store(int64(max(in.HitLimit-in.HitCount, 0)))
		}
		switch {
		case in.Label != "":
			s.byLabel[in.Label] = append(s.byLabel[in.Label], b)
		case in.File != "" && in.Line > 0:
			s.byLine[in.Line] = append(s.byLine[in.Line], b)
		}
	}
	if len(s.byLabel) == 0 && len(s.byLine) == 0 {
		s = nil
	}
	a.active.Store(s)
}

func (a *Agent) sendLoop(ctx context.Context) {
	defer a.wg.Done()
	for {
		select {
		case u := <-a.uploads:
			a.send(ctx, u)
		case <-ctx.Done():
			// Send what is queued, for a few seconds at most.
			flush, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				select {
				case u := <-a.uploads:
					a.send(flush, u)
				default:
					return
				}
			}
		}
	}
}

func (a *Agent) send(ctx context.Context, u upload) {
	body, err := json.Marshal(u.req)
	if err != nil {
		a.cfg.Logger.Warn("tracekit debugger: cannot encode a capture", "breakpoint", u.bp.id, "error", err)
		return
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.cfg.Endpoint+"/v1/snapshots", bytes.NewReader(body))
	if err != nil {
		return
	}
	req.Header.Set("Authorization", "Bearer "+a.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := a.cfg.HTTPClient.Do(req)
	if err != nil {
		a.cfg.Logger.Warn("tracekit debugger: capture not sent", "breakpoint", u.bp.id, "error", err)
		return
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusCreated:
	case http.StatusGone, http.StatusNotFound:
		u.bp.gone.Store(true) // deleted, expired or used up: stop until the next poll drops it
	default:
		a.cfg.Logger.Warn("tracekit debugger: capture refused", "breakpoint", u.bp.id, "status", resp.Status, "error", readError(resp.Body))
	}
}

func readError(r io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(r, 1024))
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return strings.TrimSpace(string(b))
}
