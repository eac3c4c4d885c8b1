// Package ingest receives OpenTelemetry traces over OTLP/HTTP (POST /v1/traces) and stores them.
// A request is acknowledged only after its spans are committed, so nothing acknowledged is lost.
package ingest

import (
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
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

// receiver is the OTLP/HTTP transport in front of the ingest core.
type receiver struct {
	*Ingester
	batches *prometheus.CounterVec
	mem     *memBudget
	chunks  sync.Pool // *[]byte of readChunk bytes
}

// Register mounts POST /v1/traces on r and returns the ingest core behind it, for other transports.
func Register(r gin.IRouter, cfg Config) *Ingester {
	in := New(cfg)
	in.Mount(r)
	return in
}

// Mount serves OTLP/HTTP (POST /v1/traces) on r through in.
func (in *Ingester) Mount(r gin.IRouter) {
	rc := &receiver{
		Ingester: in,
		batches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracekit_ingest_requests_total",
			Help: "OTLP export requests, by HTTP status code."}, []string{"code"}),
		mem:    newMemBudget(in.cfg.MaxBufferedBytes),
		chunks: sync.Pool{New: func() any { b := make([]byte, readChunk); return &b }},
	}
	if in.cfg.Registry != nil {
		in.cfg.Registry.MustRegister(rc.batches)
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
			rc.cfg.Logger.Error("ingest authentication failed", "err", err, "cause", errors.Unwrap(err))
			rc.unavailable(c, enc)
		}
		return
	}
	if !p.HasScope(store.ScopeIngest) {
		rc.fail(c, enc, http.StatusForbidden, codes.PermissionDenied, errNoIngestScope)
		return
	}
	if c.Request.ContentLength > rc.cfg.MaxBodyBytes {
		rc.tooLarge(c, enc)
		return
	}

	// The body is read (and decoded) before a write slot is taken, within BodyTimeout and the memory
	// budget: a slow or stalled sender costs only its own connection, never other exporters' slots.
	start := time.Now()
	_ = http.NewResponseController(c.Writer).SetReadDeadline(start.Add(rc.cfg.BodyTimeout))
	room := reservation{b: rc.mem}
	defer room.release()
	admitBy := start.Add(rc.cfg.QueueTimeout)
	body, chunks, err := rc.readBody(c.Request, &room, admitBy)
	defer func() { rc.putChunks(chunks) }()
	if err != nil {
		switch {
		case errors.Is(err, errTooLarge):
			rc.tooLarge(c, enc)
		case errors.Is(err, errNoRoom):
			rc.busy(c, enc)
		case errors.Is(err, os.ErrDeadlineExceeded):
			rc.fail(c, enc, http.StatusRequestTimeout, codes.DeadlineExceeded,
				fmt.Sprintf("the request body did not arrive within %s; send it faster or in smaller batches", rc.cfg.BodyTimeout))
		default:
			rc.fail(c, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		}
		return
	}
	// Decoding costs memory in proportion to the body: reserve it too.
	if !room.grow(c.Request.Context(), decodeCost(enc, len(body)), admitBy) {
		rc.busy(c, enc)
		return
	}
	req := &collectorpb.ExportTraceServiceRequest{}
	err = decode(enc, body, req)
	rc.putChunks(chunks) // decoding copies what it keeps
	chunks = nil
	if err != nil {
		rc.fail(c, enc, http.StatusBadRequest, codes.InvalidArgument, err.Error())
		return
	}
	release, err := rc.Admit(c.Request.Context())
	if err != nil {
		rc.busy(c, enc)
		return
	}
	defer release()
	res, err := rc.Export(c.Request.Context(), p.TenantID, req)
	if err != nil {
		rc.unavailable(c, enc)
		return
	}
	resp := &collectorpb.ExportTraceServiceResponse{}
	if res.Rejected > 0 || res.Message != "" { // no span rejected: a warning (OTLP partial success)
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: res.Rejected, ErrorMessage: res.Message}
	}
	rc.write(c, enc, http.StatusOK, resp)
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

var (
	errTooLarge = errors.New("request body too large")
	errNoRoom   = errors.New("no room in the memory budget")
)

// readChunk is the unit in which bodies are read and memory is reserved.
const readChunk = 256 << 10

// decodeCost is about what decoding a body of n bytes, and converting it to rows, allocates
// (protojson allocates about five times its input, TestDecodeJSON_AllocatesLittleMoreThanTheDecodedRequest).
func decodeCost(enc encoding, n int) int64 {
	if enc == encJSON {
		return int64(n) * 5
	}
	return int64(n) * 3
}

// readBody reads the (decompressed) body in chunks, reserving room for each before reading it; it
// returns the body and the pooled chunks it was read into (for putChunks once the body is decoded).
func (rc *receiver) readBody(r *http.Request, res *reservation, admitBy time.Time) ([]byte, []*[]byte, error) {
	var body io.Reader = r.Body
	switch ce := r.Header.Get("Content-Encoding"); ce {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, nil, err
			}
			return nil, nil, fmt.Errorf("Content-Encoding is gzip but the body is not gzip data: %v", err)
		}
		defer zr.Close()
		body = zr
	default:
		return nil, nil, fmt.Errorf("unsupported Content-Encoding %q: send gzip or no encoding", ce)
	}
	// Read one byte past the limit to tell "exactly at the limit" from "over it" (gzip bombs included).
	body = io.LimitReader(body, rc.cfg.MaxBodyBytes+1)
	var (
		chunks []*[]byte
		total  int
	)
	for {
		if !res.grow(r.Context(), readChunk, admitBy) {
			return nil, chunks, errNoRoom
		}
		c := rc.chunks.Get().(*[]byte)
		chunks = append(chunks, c)
		n, err := io.ReadFull(body, *c)
		*c = (*c)[:n]
		total += n
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return nil, chunks, err
			}
			return nil, chunks, fmt.Errorf("read request body: %v", err)
		}
	}
	if int64(total) > rc.cfg.MaxBodyBytes {
		return nil, chunks, errTooLarge
	}
	if len(chunks) == 1 {
		return *chunks[0], chunks, nil
	}
	if !res.grow(r.Context(), int64(total), admitBy) {
		return nil, chunks, errNoRoom
	}
	out := make([]byte, 0, total)
	for _, c := range chunks {
		out = append(out, *c...)
	}
	return out, chunks, nil
}

func (rc *receiver) putChunks(chunks []*[]byte) {
	for _, c := range chunks {
		*c = (*c)[:readChunk]
		rc.chunks.Put(c)
	}
}

func (rc *receiver) busy(c *gin.Context, enc encoding) {
	c.Header("Retry-After", "1")
	rc.fail(c, enc, http.StatusTooManyRequests, codes.ResourceExhausted, "the server is busy writing other batches; retry after the delay in Retry-After")
}

func (rc *receiver) tooLarge(c *gin.Context, enc encoding) {
	rc.fail(c, enc, http.StatusRequestEntityTooLarge, codes.InvalidArgument,
		fmt.Sprintf("request body exceeds %d bytes after decompression; send smaller batches (e.g. lower the exporter's max batch size)", rc.cfg.MaxBodyBytes))
}

func (rc *receiver) unavailable(c *gin.Context, enc encoding) {
	c.Header("Retry-After", "2")
	rc.fail(c, enc, http.StatusServiceUnavailable, codes.Unavailable, "database unavailable: nothing from this request was kept; retry after the delay in Retry-After")
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
