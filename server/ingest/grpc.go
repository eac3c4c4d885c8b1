package ingest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	_ "google.golang.org/grpc/encoding/gzip" // OTLP exporters may gzip their requests
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
)

// errNoIngestScope is what both transports answer to a key that may not send spans.
const errNoIngestScope = "this API key lacks the 'ingest' scope; create one with: tracekit apikey create --scopes ingest"

// grpcReceiver is the OTLP/gRPC transport in front of the ingest core.
type grpcReceiver struct {
	*Ingester
	calls *prometheus.CounterVec
}

// GRPCServer returns a gRPC server with TraceService/Export on this core, for the caller to serve on
// its own port (4317 by default). Messages are capped at MaxBodyBytes after decompression, like
// request bodies on the HTTP path; a larger one is refused with RESOURCE_EXHAUSTED, without RetryInfo.
func (in *Ingester) GRPCServer() *grpc.Server {
	rc := &grpcReceiver{Ingester: in, calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tracekit_ingest_grpc_requests_total",
		Help: "OTLP/gRPC export calls, by gRPC status code."}, []string{"code"})}
	if in.cfg.Registry != nil {
		in.cfg.Registry.MustRegister(rc.calls)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(int(in.cfg.MaxBodyBytes)))
	s.RegisterService(&traceService, rc)
	return s
}

// traceService is opentelemetry.proto.collector.trace.v1.TraceService with a hand-written handler:
// the generated one decodes the request before anything else runs, while here the caller is
// authenticated and a write slot taken first. grpc-go (v1.84, go.mod's; unary calls run as
// streams) reads the message off the connection only when dec is called, so a call waiting for a
// slot holds no message: the messages held at once are bounded by MaxInFlight × MaxBodyBytes.
// (OTLP/HTTP reads bodies before its slot, within its MaxBufferedBytes budget instead.)
var traceService = grpc.ServiceDesc{
	ServiceName: "opentelemetry.proto.collector.trace.v1.TraceService",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Export",
		Handler: func(srv any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			return srv.(*grpcReceiver).export(ctx, dec)
		},
	}},
	Metadata: "opentelemetry/proto/collector/trace/v1/trace_service.proto",
}

// exportGRPC is TraceService/Export: the API key comes from the authorization or x-api-key metadata,
// and failures carry the status codes the OTLP specification gives for the HTTP path's answers.
func (rc *grpcReceiver) export(ctx context.Context, dec func(any) error) (*collectorpb.ExportTraceServiceResponse, error) {
	// The authenticators read HTTP headers; gRPC metadata keys are the same names in lower case.
	r, _ := http.NewRequestWithContext(ctx, http.MethodPost, "/", nil)
	md, _ := metadata.FromIncomingContext(ctx)
	for _, k := range []string{"authorization", "x-api-key"} {
		if v := md.Get(k); len(v) > 0 {
			r.Header.Set(k, v[0])
		}
	}
	p, err := rc.cfg.Auth.Authenticate(r)
	if err != nil {
		if errors.Is(err, auth.ErrNoCredentials) || errors.Is(err, auth.ErrInvalidCredentials) {
			return nil, rc.fail(codes.Unauthenticated, err.Error()+" (gRPC: the authorization or x-api-key metadata)", 0)
		}
		rc.cfg.Logger.Error("ingest authentication failed", "err", err, "transport", "grpc")
		return nil, rc.fail(codes.Unavailable, ErrUnavailable.Error(), 2*time.Second)
	}
	if !p.HasScope(store.ScopeIngest) {
		return nil, rc.fail(codes.PermissionDenied, errNoIngestScope, 0)
	}
	release, err := rc.Admit(ctx)
	if err != nil {
		if errors.Is(err, ErrBusy) {
			return nil, rc.fail(codes.ResourceExhausted, ErrBusy.Error(), time.Second)
		}
		return nil, status.FromContextError(err).Err()
	}
	defer release()
	// The message is read with the slot held, so a sender that trickles it may hold the slot only
	// for BodyTimeout, the time OTLP/HTTP gives a body.
	req := &collectorpb.ExportTraceServiceRequest{}
	decoded := make(chan error, 1)
	go func() { decoded <- dec(req) }()
	timer := time.NewTimer(rc.cfg.BodyTimeout)
	defer timer.Stop()
	select {
	case err := <-decoded:
		if err != nil {
			return nil, rc.fail(codes.InvalidArgument, "the message is not a valid OTLP ExportTraceServiceRequest: "+status.Convert(err).Message(), 0)
		}
	case <-timer.C:
		return nil, rc.fail(codes.DeadlineExceeded, fmt.Sprintf("the message did not arrive within %s; send it faster or in smaller batches", rc.cfg.BodyTimeout), 0)
	}
	res, err := rc.Export(ctx, p.TenantID, req)
	if err != nil {
		return nil, rc.fail(codes.Unavailable, ErrUnavailable.Error(), 2*time.Second)
	}
	rc.calls.WithLabelValues(codes.OK.String()).Inc()
	resp := &collectorpb.ExportTraceServiceResponse{}
	if res.Rejected > 0 || res.Message != "" { // no span rejected: a warning (OTLP partial success)
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: res.Rejected, ErrorMessage: res.Message}
	}
	return resp, nil
}

// grpcFail builds an error status; retryAfter > 0 adds RetryInfo, without which OTLP exporters do
// not retry RESOURCE_EXHAUSTED.
func (rc *grpcReceiver) fail(code codes.Code, msg string, retryAfter time.Duration) error {
	rc.calls.WithLabelValues(code.String()).Inc()
	st := status.New(code, msg)
	if retryAfter > 0 {
		if d, err := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(retryAfter)}); err == nil {
			st = d
		}
	}
	return st.Err()
}
