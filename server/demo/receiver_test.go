package demo

import (
	"compress/gzip"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	collectortracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

const testAPIKey = "tk_test_key"

// received is a span as the receiver decoded it, with its resource attributes.
type received struct {
	span     *tracepb.Span
	resource map[string]string
	scope    string
}

func (r received) service() string { return r.resource["service.name"] }

func (r received) attr(k string) string {
	for _, kv := range r.span.Attributes {
		if kv.Key == k {
			return anyString(kv.Value)
		}
	}
	return ""
}

func (r received) intAttr(k string) (int64, bool) {
	for _, kv := range r.span.Attributes {
		if kv.Key == k {
			v, ok := kv.Value.Value.(*commonpb.AnyValue_IntValue)
			return v.IntValue, ok
		}
	}
	return 0, false
}

func (r received) isError() bool {
	return r.span.GetStatus().GetCode() == tracepb.Status_STATUS_CODE_ERROR
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	default:
		return ""
	}
}

// receiver is a minimal OTLP/HTTP trace endpoint: it checks what the ingest would check and records
// the spans. reject, when set, may answer a request instead (for failure injection).
type receiver struct {
	reject func(n int, w http.ResponseWriter) bool

	mu       sync.Mutex
	requests int
	spans    []received
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	r := &receiver{}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	rc.mu.Lock()
	rc.requests++
	n := rc.requests
	rc.mu.Unlock()
	if rc.reject != nil && rc.reject(n, w) {
		return
	}
	switch {
	case req.Method != http.MethodPost || req.URL.Path != "/v1/traces":
		http.Error(w, "not found", http.StatusNotFound)
		return
	case req.Header.Get("Authorization") != "Bearer "+testAPIKey:
		http.Error(w, "invalid API key", http.StatusUnauthorized)
		return
	case req.Header.Get("Content-Type") != "application/x-protobuf" || req.Header.Get("Content-Encoding") != "gzip":
		http.Error(w, "want gzip protobuf", http.StatusUnsupportedMediaType)
		return
	}
	zr, err := gzip.NewReader(req.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	body, err := io.ReadAll(zr)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var export collectortracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var got []received
	for _, rs := range export.ResourceSpans {
		res := map[string]string{}
		for _, kv := range rs.GetResource().GetAttributes() {
			res[kv.Key] = anyString(kv.Value)
		}
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				got = append(got, received{span: s, resource: res, scope: ss.GetScope().GetName()})
			}
		}
	}
	rc.mu.Lock()
	rc.spans = append(rc.spans, got...)
	rc.mu.Unlock()
	out, _ := proto.Marshal(&collectortracepb.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(out)
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.requests
}

func (rc *receiver) received() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.spans
}

// traces groups spans by trace ID.
func byTrace(spans []received) map[string][]received {
	m := map[string][]received{}
	for _, s := range spans {
		id := hex.EncodeToString(s.span.TraceId)
		m[id] = append(m[id], s)
	}
	return m
}
