// Package ingest receives OpenTelemetry traces over OTLP/HTTP (POST /v1/traces) and stores them.
// A request is acknowledged only after its spans are committed, so nothing acknowledged is lost.
package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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
	// QueueTimeout is how long a request waits for a slot before 429 (default 5 s).
	QueueTimeout time.Duration
	Logger       *slog.Logger
	Registry     prometheus.Registerer
	// Prices prices LLM calls before each tenant's overrides; nil means the built-in table.
	Prices *genai.PriceTable
}

type receiver struct {
	cfg     Config
	slots   chan struct{}
	prices  priceCache
	spans   *prometheus.CounterVec
	batches *prometheus.CounterVec
	bufs    sync.Pool
}

// Register mounts POST /v1/traces on r.
func Register(r gin.IRouter, cfg Config) {
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = 16 << 20
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = 8
	}
	if cfg.QueueTimeout == 0 {
		cfg.QueueTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	rc := &receiver{
		cfg:   cfg,
		slots: make(chan struct{}, cfg.MaxInFlight),
		spans: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracekit_ingest_spans_total",
			Help: "Spans received over OTLP, by outcome (accepted, rejected)."}, []string{"outcome"}),
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracekit_ingest_requests_total",
			Help: "OTLP export requests, by HTTP status code."}, []string{"code"}),
		bufs: sync.Pool{New: func() any { return new(bytes.Buffer) }},
	}
	rc.prices.db = cfg.DB
	rc.prices.base = genai.Builtin
	if cfg.Prices != nil {
		rc.prices.base = *cfg.Prices
	}
	if cfg.Registry != nil {
		cfg.Registry.MustRegister(rc.spans, rc.batches)
	}
	r.POST("/v1/traces", rc.export)
}

// encoding is the request's wire format; the answer uses the same one, as OTLP/HTTP requires.
type encoding int

const (
	encProto encoding = iota
	encJSON
)

func (rc *receiver) export(c *gin.Context) {
	enc, ok := requestEncoding(c.GetHeader("Content-Type"))
	if !ok {
		rc.fail(c, encJSON, http.StatusUnsupportedMediaType, codes.InvalidArgument,
			"Content-Type must be application/x-protobuf or application/json")
		return
	}
	p, err := rc.cfg.Auth.Authenticate(c.Request)
	if err != nil {
		if errors.Is(err, auth.ErrNoCredentials) || errors.Is(err, auth.ErrInvalidCredentials) {
			rc.fail(c, enc, http.StatusUnauthorized, codes.Unauthenticated, err.Error())
		} else {
			rc.unavailable(c, enc, err)
		}
		return
	}
	if !p.HasScope(store.ScopeIngest) {
		rc.fail(c, enc, http.StatusForbidden, codes.PermissionDenied, "this API key lacks the 'ingest' scope; create one with: tracekit apikey create --scopes ingest")
		return
	}
	if c.Request.ContentLength > rc.cfg.MaxBodyBytes {
		rc.tooLarge(c, enc)
		return
	}

	// Backpressure: wait briefly for a slot, then ask the exporter to retry later.
	if !rc.acquire(c.Request.Context()) {
		c.Header("Retry-After", "1")
		rc.fail(c, enc, http.StatusTooManyRequests, codes.ResourceExhausted, "the server is busy writing other batches; retry after the delay in Retry-After")
		return
	}
	defer func() { <-rc.slots }()

	buf := rc.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer rc.bufs.Put(buf)
	if err := rc.readBody(c.Request, buf); err != nil {
		if errors.Is(err, errTooLarge) {
			rc.tooLarge(c, enc)
		} else {
			rc.fail(c, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		}
		return
	}

	req := &collectorpb.ExportTraceServiceRequest{}
	if err := decode(enc, buf.Bytes(), req); err != nil {
		rc.fail(c, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	tenant := rc.cfg.DB.ForTenant(p.TenantID)
	prices, err := rc.prices.get(c.Request.Context(), tenant)
	if err != nil {
		rc.cfg.Logger.Warn("tenant LLM price overrides unusable, using built-in prices", "tenant", p.TenantID, "err", err)
	}
	conv := convert(req.ResourceSpans, prices)
	// Writes outlive a client that hangs up: once started, a batch is either committed or rolled back.
	ctx := context.WithoutCancel(c.Request.Context())
	if err := tenant.InsertBatch(ctx, conv.batch); err != nil {
		rc.unavailable(c, enc, err)
		return
	}
	rc.spans.WithLabelValues("accepted").Add(float64(len(conv.batch.Spans)))
	resp := &collectorpb.ExportTraceServiceResponse{}
	if conv.rejected > 0 {
		rc.spans.WithLabelValues("rejected").Add(float64(conv.rejected))
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: conv.rejected,
			ErrorMessage: fmt.Sprintf("%d span(s) rejected; last reason: %s", conv.rejected, conv.reason)}
	}
	rc.write(c, enc, http.StatusOK, resp)
}

// acquire takes a write slot, waiting at most QueueTimeout.
func (rc *receiver) acquire(ctx context.Context) bool {
	select {
	case rc.slots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(rc.cfg.QueueTimeout)
	defer timer.Stop()
	select {
	case rc.slots <- struct{}{}:
		return true
	case <-timer.C:
		return false
	case <-ctx.Done():
		return false
	}
}

func requestEncoding(contentType string) (encoding, bool) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return 0, false
	}
	switch mt {
	case "application/x-protobuf", "application/protobuf":
		return encProto, true
	case "application/json":
		return encJSON, true
	}
	return 0, false
}

var errTooLarge = errors.New("request body too large")

func (rc *receiver) readBody(r *http.Request, buf *bytes.Buffer) error {
	var body io.Reader = r.Body
	switch ce := r.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			return fmt.Errorf("Content-Encoding is gzip but the body is not gzip data: %v", err)
		}
		defer zr.Close()
		body = zr
	default:
		return fmt.Errorf("unsupported Content-Encoding %q: send gzip or no encoding", ce)
	}
	// Read one byte past the limit to tell "exactly at the limit" from "over it" (gzip bombs included).
	n, err := buf.ReadFrom(io.LimitReader(body, rc.cfg.MaxBodyBytes+1))
	if err != nil {
		return fmt.Errorf("read request body: %v", err)
	}
	if n > rc.cfg.MaxBodyBytes {
		return errTooLarge
	}
	return nil
}

func decode(enc encoding, body []byte, req *collectorpb.ExportTraceServiceRequest) error {
	if enc == encProto {
		if err := proto.Unmarshal(body, req); err != nil {
			return fmt.Errorf("body is not a valid OTLP ExportTraceServiceRequest protobuf: %v", err)
		}
		return nil
	}
	fixed, err := hexIDsToBase64(body)
	if err != nil {
		return fmt.Errorf("body is not valid OTLP JSON: %v", err)
	}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, req); err != nil {
		return fmt.Errorf("body is not a valid OTLP ExportTraceServiceRequest in JSON: %v", err)
	}
	return nil
}

// hexIDsToBase64 rewrites trace and span ids from OTLP/JSON's hex form to the base64 that
// protojson expects for bytes fields (OTLP/JSON deviates from the proto3 JSON mapping there).
func hexIDsToBase64(body []byte) ([]byte, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	for _, rs := range list(doc, "resourceSpans", "resource_spans") {
		for _, ss := range list(rs, "scopeSpans", "scope_spans") {
			for _, sp := range list(ss, "spans") {
				if err := fixIDs(sp); err != nil {
					return nil, err
				}
				for _, l := range list(sp, "links") {
					if err := fixIDs(l); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return json.Marshal(doc)
}

func list(v any, keys ...string) []map[string]any {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, k := range keys {
		if arr, ok := m[k].([]any); ok {
			out := make([]map[string]any, 0, len(arr))
			for _, e := range arr {
				if em, ok := e.(map[string]any); ok {
					out = append(out, em)
				}
			}
			return out
		}
	}
	return nil
}

func fixIDs(m map[string]any) error {
	for _, k := range []string{"traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id"} {
		s, ok := m[k].(string)
		if !ok || s == "" {
			continue
		}
		raw, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%s %q is not hex-encoded", k, s)
		}
		m[k] = base64.StdEncoding.EncodeToString(raw)
	}
	return nil
}

func (rc *receiver) tooLarge(c *gin.Context, enc encoding) {
	rc.fail(c, enc, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		fmt.Sprintf("request body exceeds %d bytes after decompression; send smaller batches (e.g. lower the exporter's max batch size)", rc.cfg.MaxBodyBytes))
}

func (rc *receiver) unavailable(c *gin.Context, enc encoding, err error) {
	rc.cfg.Logger.Error("ingest write failed", "err", err)
	c.Header("Retry-After", "2")
	rc.fail(c, enc, http.StatusServiceUnavailable, codes.Unavailable, "storage is unavailable, nothing from this request was kept; retry after the delay in Retry-After")
}

func (rc *receiver) fail(c *gin.Context, enc encoding, status int, code codes.Code, msg string) {
	rc.write(c, enc, status, &spb.Status{Code: int32(code), Message: msg})
}

func (rc *receiver) write(c *gin.Context, enc encoding, status int, m proto.Message) {
	rc.batches.WithLabelValues(strconv.Itoa(status)).Inc()
	var (
		b   []byte
		err error
		ct  = "application/x-protobuf"
	)
	if enc == encJSON {
		ct = "application/json"
		b, err = protojson.Marshal(m)
	} else {
		b, err = proto.Marshal(m)
	}
	if err != nil {
		c.Status(http.StatusInternalServerError)
		return
	}
	c.Data(status, ct, b)
}

// priceCache keeps each tenant's price table (built-in prices with its overrides) for a minute.
type priceCache struct {
	db   *store.DB
	base genai.PriceTable
	mu   sync.Mutex
	m    map[string]cachedPrices
}

type cachedPrices struct {
	table   genai.PriceTable
	expires time.Time
}

func (pc *priceCache) get(ctx context.Context, t *store.Tenant) (genai.PriceTable, error) {
	pc.mu.Lock()
	c, ok := pc.m[t.ID()]
	pc.mu.Unlock()
	if ok && time.Now().Before(c.expires) {
		return c.table, nil
	}
	raw, err := t.PriceOverrides(ctx)
	if err != nil {
		return pc.base, err
	}
	table, err := pc.base.WithOverrides(raw)
	pc.mu.Lock()
	if pc.m == nil {
		pc.m = map[string]cachedPrices{}
	}
	pc.m[t.ID()] = cachedPrices{table: table, expires: time.Now().Add(time.Minute)}
	pc.mu.Unlock()
	return table, err
}
