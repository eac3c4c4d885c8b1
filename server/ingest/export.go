package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/genai"
	"github.com/tracekit/tracekit/server/store"
)

// Config tunes the receiver. Zero values take the defaults noted.
type Config struct {
	DB   *store.DB
	Auth auth.Authenticator
	// MaxBodyBytes caps a request body after decompression (default 16 MiB); larger gets 413.
	MaxBodyBytes int64
	// MaxInFlight caps batches being decoded and written at once (default 8); it bounds memory and
	// database connections.
	MaxInFlight int
	// QueueTimeout is how long a request waits for a slot, or for room in the memory budget, before
	// 429 (default 5 s).
	QueueTimeout time.Duration
	// MaxBufferedBytes caps the request bytes OTLP/HTTP holds in memory at once: bodies being read and
	// what decoding them costs (default 128 MiB). Bodies are read before a write slot is taken, each
	// reserving room as its bytes arrive, so a slow sender holds only what it has sent.
	MaxBufferedBytes int64
	// BodyTimeout is how long a sender may take to send a request body (default 30 s); slower gets 408.
	BodyTimeout time.Duration
	Logger      *slog.Logger
	Registry    prometheus.Registerer
	// Prices prices LLM calls before each tenant's overrides; nil means the built-in table.
	Prices *genai.PriceTable
}

// Ingester is the transport-independent core of trace ingest: admission (write slots) and Export,
// which stores one decoded request for one tenant. OTLP/HTTP is one transport in front of it; any
// other (OTLP/gRPC) admits and exports through the same two calls, so both behave alike.
type Ingester struct {
	cfg    Config
	slots  chan struct{}
	prices priceCache
	spans  *prometheus.CounterVec
}

// New builds the ingest core; its metrics are registered on cfg.Registry when set.
func New(cfg Config) *Ingester {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 8
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 5 * time.Second
	}
	if cfg.MaxBufferedBytes == 0 {
		cfg.MaxBufferedBytes = 128 << 20
	}
	if cfg.BodyTimeout == 0 {
		cfg.BodyTimeout = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	in := &Ingester{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.MaxInFlight),
		spans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracekit_ingest_spans_total",
			Help: "Spans received over OTLP, by outcome (accepted, rejected)."}, []string{"outcome"}),
	}
	in.prices.db = cfg.DB
	in.prices.base = genai.Builtin
	if cfg.Prices != nil {
		in.prices.base = *cfg.Prices
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(in.spans)
	}
	return in
}

// Errors Export and Admit return, by what the sender should do. Transports map them to their codes.
var (
	// ErrBusy: every write slot stayed taken for QueueTimeout; retry later (HTTP 429, gRPC
	// RESOURCE_EXHAUSTED).
	ErrBusy = errors.New("the server is busy writing other batches; retry after a short delay")
	// ErrUnavailable: the database did not store the batch and nothing of it was kept; retry later
	// (HTTP 503, gRPC UNAVAILABLE).
	ErrUnavailable = errors.New("database unavailable: nothing from this request was kept; retry after a short delay")
)

// Result is what Export stored and what it refused. Rejected spans are the sender's problem (bad
// ids, timestamps…); Message says which and why, for OTLP's partial success.
type Result struct {
	Accepted int64
	Rejected int64
	Message  string
}

// Admit takes a write slot, waiting at most QueueTimeout; call release when the write is done.
// It returns ErrBusy when no slot freed up in time, or ctx's error.
func (in *Ingester) Admit(ctx context.Context) (release func(), err error) {
	release = func() { <-in.slots }
	select {
	case in.slots <- struct{}{}:
		return release, nil
	default:
	}
	timer := time.NewTimer(in.cfg.QueueTimeout)
	defer timer.Stop()
	select {
	case in.slots <- struct{}{}:
		return release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Export stores req's usable spans for tenant and reports the rest. The caller holds a slot from
// Admit. The write is not cancelled with ctx: once started, a batch is committed or rolled back
// whole, so an acknowledged request is never partly lost. A storage failure wraps ErrUnavailable.
func (in *Ingester) Export(ctx context.Context, tenant string, req *collectorpb.ExportTraceServiceRequest) (Result, error) {
	t := in.cfg.DB.ForTenant(tenant)
	prices, err := in.prices.get(ctx, t)
	if err != nil {
		in.cfg.Logger.Warn("tenant LLM price overrides unusable, using built-in prices", "tenant", tenant, "err", err)
	}
	conv := convert(req.GetResourceSpans(), prices)
	if err := t.InsertBatch(context.WithoutCancel(ctx), conv.batch); err != nil {
		in.cfg.Logger.Error("ingest write failed", "tenant", tenant, "err", err)
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	res := Result{Accepted: int64(len(conv.batch.Spans)), Rejected: conv.rejected}
	in.spans.WithLabelValues("accepted").Add(float64(res.Accepted))
	if conv.rejected > 0 {
		in.spans.WithLabelValues("rejected").Add(float64(conv.rejected))
		res.Message = fmt.Sprintf("%d span(s) rejected; last reason: %s", conv.rejected, conv.reason)
	}
	if conv.droppedLinks > 0 {
		links := fmt.Sprintf("%d span link(s) dropped, their spans kept; last reason: %s", conv.droppedLinks, conv.linkReason)
		res.Message = strings.TrimPrefix(res.Message+"; "+links, "; ")
	}
	return res, nil
}
