// Package debugger is the SDK-facing live-debugging API: agents poll the active breakpoints of their
// service and upload snapshot captures; people (or tools with a write-scoped key) create and delete
// breakpoints. Snapshot variables are redacted before they are stored.
package debugger

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/sdk/go/condition"
	"github.com/tracekit/tracekit/sdk/go/redact"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
)

// Limits on what a caller may create or upload.
const (
	DefaultExpiry   = time.Hour
	MaxExpiry       = 7 * 24 * time.Hour
	DefaultHitLimit = 100
	maxSnapshot     = 256 << 10 // bytes of a snapshot request
	maxDepth        = 32
	// PollInterval is how often agents are asked to poll for breakpoints.
	PollInterval = 30 * time.Second
)

// Spec is what creating a breakpoint takes.
type Spec struct {
	Service string `json:"service"`
	// File and Line, or Label: where the agent captures. A label names a capture site in the code
	// (debugger.Capture(ctx, "checkout.total", …)) wherever it moves; it is stored as the file with
	// line 0.
	File  string `json:"file,omitempty"`
	Line  int    `json:"line,omitempty"`
	Label string `json:"label,omitempty"`
	// Condition is evaluated by the agent against the captured variables (sdk/go/condition).
	Condition string `json:"condition,omitempty"`
	// HitLimit caps captures; nil means DefaultHitLimit, 0 unlimited.
	HitLimit *int `json:"hit_limit,omitempty"`
	// ExpiresIn is a Go duration ("30m"); empty means DefaultExpiry. At most MaxExpiry.
	ExpiresIn string `json:"expires_in,omitempty"`
}

// NewBreakpoint validates spec and returns the breakpoint to store, created at now.
func NewBreakpoint(spec Spec, now time.Time) (store.Breakpoint, error) {
	b := store.Breakpoint{Service: strings.TrimSpace(spec.Service), File: strings.TrimSpace(spec.File), Line: spec.Line,
		Condition: strings.TrimSpace(spec.Condition), HitLimit: DefaultHitLimit, CreatedNS: now.UnixNano()}
	label := strings.TrimSpace(spec.Label)
	switch {
	case b.Service == "":
		return b, errors.New("service is required: the service.name of the instrumented application")
	case label != "" && (b.File != "" || b.Line != 0):
		return b, errors.New("give either file and line or a label, not both")
	case label != "":
		b.File = label
	case b.File == "":
		return b, errors.New("file and line, or label, is required: the source file path as the agent reports it, or the label of a debugger.Capture call")
	case b.Line < 1:
		return b, fmt.Errorf("line must be 1 or more, got %d", b.Line)
	}
	if _, err := condition.Parse(b.Condition); err != nil {
		return b, err
	}
	if spec.HitLimit != nil {
		if *spec.HitLimit < 0 {
			return b, fmt.Errorf("hit limit must be 0 (unlimited) or more, got %d", *spec.HitLimit)
		}
		b.HitLimit = *spec.HitLimit
	}
	expiry := DefaultExpiry
	if spec.ExpiresIn != "" {
		d, err := time.ParseDuration(spec.ExpiresIn)
		if err != nil || d <= 0 || d > MaxExpiry {
			return b, fmt.Errorf("expires_in %q: want a duration such as 30m or 4h, at most %s", spec.ExpiresIn, MaxExpiry)
		}
		expiry = d
	}
	b.ExpiresNS = now.Add(expiry).UnixNano()
	id := make([]byte, 6)
	if _, err := rand.Read(id); err != nil {
		return b, err
	}
	b.ID = "bp_" + hex.EncodeToString(id)
	return b, nil
}

// Breakpoint is a breakpoint as the API shows it.
type Breakpoint struct {
	ID        string `json:"id"`
	Service   string `json:"service"`
	File      string `json:"file,omitempty"`
	Line      int    `json:"line,omitempty"`
	Label     string `json:"label,omitempty"`
	Condition string `json:"condition,omitempty"`
	HitLimit  int    `json:"hit_limit"`
	HitCount  int    `json:"hit_count"`
	ExpiresAt string `json:"expires_at,omitempty"`
	CreatedAt string `json:"created_at"`
}

func view(b store.Breakpoint) Breakpoint {
	v := Breakpoint{ID: b.ID, Service: b.Service, File: b.File, Line: b.Line, Condition: b.Condition,
		HitLimit: b.HitLimit, HitCount: b.HitCount, CreatedAt: rfc3339(b.CreatedNS)}
	if b.Line == 0 {
		v.Label, v.File = b.File, ""
	}
	if b.ExpiresNS != 0 {
		v.ExpiresAt = rfc3339(b.ExpiresNS)
	}
	return v
}

func rfc3339(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339) }

// Handler serves the live-debugging API.
type Handler struct {
	DB   *store.DB
	Auth auth.Authenticator
	Now  func() time.Time // default time.Now
}

// Register mounts the API on r with the real clock; see Handler.Register.
func Register(r gin.IRouter, db *store.DB, a auth.Authenticator) {
	(&Handler{DB: db, Auth: a}).Register(r)
}

// Register mounts the API on r:
//
//	GET    /v1/breakpoints?service=S  active breakpoints (any scope: agents use their ingest key; an
//	                                  OAuth token needs the debugging tool group, as list_breakpoints)
//	POST   /v1/breakpoints            create (write scope)
//	DELETE /v1/breakpoints/:id        delete (write scope)
//	POST   /v1/snapshots              upload a capture (ingest scope)
func (h *Handler) Register(r gin.IRouter) {
	r.GET("/v1/breakpoints", auth.Require(h.Auth, ""), auth.RequireTool("list_breakpoints"), h.list)
	r.POST("/v1/breakpoints", auth.Require(h.Auth, store.ScopeWrite), h.create)
	r.DELETE("/v1/breakpoints/:id", auth.Require(h.Auth, store.ScopeWrite), h.delete)
	r.POST("/v1/snapshots", auth.Require(h.Auth, store.ScopeIngest), h.snapshot)
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) tenant(c *gin.Context) *store.Tenant {
	p, _ := auth.FromContext(c.Request.Context())
	return h.DB.ForTenant(p.TenantID)
}

func fail(c *gin.Context, code int, msg string) { c.AbortWithStatusJSON(code, gin.H{"error": msg}) }

func (h *Handler) list(c *gin.Context) {
	bps, err := h.tenant(c).ActiveBreakpoints(c.Request.Context(), c.Query("service"), h.now().UnixNano())
	if err != nil {
		fail(c, http.StatusServiceUnavailable, err.Error())
		return
	}
	out := make([]Breakpoint, len(bps))
	for i, b := range bps {
		out[i] = view(b)
	}
	c.JSON(http.StatusOK, gin.H{"breakpoints": out, "poll_interval_seconds": int(PollInterval.Seconds())})
}

func (h *Handler) create(c *gin.Context) {
	var spec Spec
	dec := json.NewDecoder(io.LimitReader(c.Request.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		fail(c, http.StatusBadRequest, "invalid breakpoint JSON: "+err.Error())
		return
	}
	b, err := NewBreakpoint(spec, h.now())
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	if err := h.tenant(c).CreateBreakpoint(c.Request.Context(), b); err != nil {
		fail(c, http.StatusServiceUnavailable, err.Error())
		return
	}
	c.JSON(http.StatusCreated, view(b))
}

func (h *Handler) delete(c *gin.Context) {
	err := h.tenant(c).DeleteBreakpoint(c.Request.Context(), c.Param("id"), h.now().UnixNano())
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "no breakpoint "+c.Param("id")+" (already deleted?)")
	case err != nil:
		fail(c, http.StatusServiceUnavailable, err.Error())
	default:
		c.Status(http.StatusNoContent)
	}
}

// SnapshotRequest is what an agent uploads when a breakpoint is hit.
type SnapshotRequest struct {
	BreakpointID string          `json:"breakpoint_id"`
	TraceID      string          `json:"trace_id,omitempty"` // 32 hex digits, links the capture to its trace
	SpanID       string          `json:"span_id,omitempty"`  // 16 hex digits
	CapturedAt   string          `json:"captured_at,omitempty"`
	Variables    json.RawMessage `json:"variables"` // a JSON object
	Stack        json.RawMessage `json:"stack"`     // a JSON array of frames
}

var (
	traceIDPattern = regexp.MustCompile(`^[0-9a-f]{32}$`)
	spanIDPattern  = regexp.MustCompile(`^[0-9a-f]{16}$`)
)

// Snapshot validates and redacts an upload and returns the row to store and how many secrets were
// redacted.
func Snapshot(req SnapshotRequest, now time.Time) (store.Snapshot, int, error) {
	s := store.Snapshot{BreakpointID: req.BreakpointID, TraceID: strings.ToLower(req.TraceID), SpanID: strings.ToLower(req.SpanID),
		CapturedNS: now.UnixNano()}
	switch {
	case s.BreakpointID == "":
		return s, 0, errors.New("breakpoint_id is required")
	case s.TraceID != "" && !traceIDPattern.MatchString(s.TraceID):
		return s, 0, fmt.Errorf("trace_id %q: want 32 hex digits (the W3C trace id)", req.TraceID)
	case s.SpanID != "" && !spanIDPattern.MatchString(s.SpanID):
		return s, 0, fmt.Errorf("span_id %q: want 16 hex digits", req.SpanID)
	}
	if req.CapturedAt != "" {
		at, err := time.Parse(time.RFC3339Nano, req.CapturedAt)
		if err != nil {
			return s, 0, fmt.Errorf("captured_at %q: want RFC 3339, e.g. 2025-06-01T12:00:00Z", req.CapturedAt)
		}
		s.CapturedNS = at.UnixNano()
	}
	var redacted int
	var err error
	if s.Variables, redacted, err = redactJSON(req.Variables, '{', "variables", "an object of name to value"); err != nil {
		return s, 0, err
	}
	var n int
	if s.Stack, n, err = redactJSON(req.Stack, '[', "stack", "an array of frames"); err != nil {
		return s, 0, err
	}
	return s, redacted + n, nil
}

// redactJSON decodes raw (which must start with open, or be absent), redacts it and encodes it again.
func redactJSON(raw json.RawMessage, open byte, field, want string) ([]byte, int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, 0, nil
	}
	if raw[0] != open {
		return nil, 0, fmt.Errorf("%s must be %s", field, want)
	}
	if redact.Depth(raw) > maxDepth {
		return nil, 0, fmt.Errorf("%s nests deeper than %d levels; capture fewer levels", field, maxDepth)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber() // keep numbers exactly as captured
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", field, err)
	}
	v, n := redact.Value(v)
	b, err := json.Marshal(v)
	return b, n, err
}

func (h *Handler) snapshot(c *gin.Context) {
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxSnapshot+1))
	if err != nil {
		fail(c, http.StatusBadRequest, "read snapshot: "+err.Error())
		return
	}
	if len(body) > maxSnapshot {
		fail(c, http.StatusRequestEntityTooLarge, fmt.Sprintf("snapshot larger than %d KiB: capture fewer or shallower variables", maxSnapshot>>10))
		return
	}
	var req SnapshotRequest
	if err := json.Unmarshal(body, &req); err != nil {
		fail(c, http.StatusBadRequest, "invalid snapshot JSON: "+err.Error())
		return
	}
	s, redacted, err := Snapshot(req, h.now())
	if err != nil {
		fail(c, http.StatusBadRequest, err.Error())
		return
	}
	id, err := h.tenant(c).RecordSnapshot(c.Request.Context(), s, h.now().UnixNano())
	switch {
	case errors.Is(err, store.ErrNotFound):
		fail(c, http.StatusNotFound, "no breakpoint "+s.BreakpointID+"; poll GET /v1/breakpoints for the active ones")
	case errors.Is(err, store.ErrBreakpointInactive):
		fail(c, http.StatusGone, "breakpoint "+s.BreakpointID+" is deleted, expired or has reached its hit limit: stop capturing it")
	case err != nil:
		fail(c, http.StatusServiceUnavailable, err.Error())
	default:
		c.JSON(http.StatusCreated, gin.H{"id": id, "redacted": redacted})
	}
}
