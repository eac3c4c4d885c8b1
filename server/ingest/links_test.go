package ingest_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// storedLinks reads back the links of the first span of trace n.
func storedLinks(t *testing.T, db *store.DB, n int) []store.Link {
	t.Helper()
	spans, _, err := db.ForTenant("acme").TraceSpans(context.Background(), hex.EncodeToString(id(n, 16)), 10)
	if err != nil || len(spans) == 0 {
		t.Fatalf("trace %d: %d spans, %v", n, len(spans), err)
	}
	return store.ParseLinks(spans[0].Links)
}

// A batch consumer's span links to the messages it processed. The links are stored with their
// attributes, up to 128 links of 16 attributes each; a link with malformed ids is dropped and the
// answer says so, and its span and the other links are kept. Over OTLP/JSON, link ids are hex.
func TestExport_StoresSpanLinksAndReportsTheOnesDropped(t *testing.T) {
	for _, dialect := range []struct {
		name string
		dsn  func(testing.TB) string
	}{{"postgres", storetest.PostgresDSN}, {"sqlite", storetest.SQLiteDSN}} {
		t.Run(dialect.name, func(t *testing.T) {
			e := newEnv(t, dialect.dsn(t), ingest.Config{})
			req := request("billing", 1, 1)
			sp := req.ResourceSpans[0].ScopeSpans[0].Spans[0]
			sp.Kind = tracepb.Span_SPAN_KIND_CONSUMER
			for i := range 129 {
				sp.Links = append(sp.Links, &tracepb.Span_Link{TraceId: id(100+i, 16), SpanId: id(7, 8)})
			}
			for i := range 20 {
				sp.Links[0].Attributes = append(sp.Links[0].Attributes, str(fmt.Sprintf("k%02d", i), "v"))
			}
			sp.Links[0].Attributes[0] = str("messaging.message.id", strings.Repeat("x", 20000))
			sp.Links = append(sp.Links, &tracepb.Span_Link{TraceId: id(99, 16), SpanId: []byte{1, 2, 3, 4}})

			resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, req))
			var out collectorpb.ExportTraceServiceResponse
			if err := proto.Unmarshal(body, &out); err != nil || resp.StatusCode != 200 {
				t.Fatalf("%d %v %q", resp.StatusCode, err, body)
			}
			msg := out.PartialSuccess.GetErrorMessage()
			if out.PartialSuccess.GetRejectedSpans() != 0 || !strings.Contains(msg, "2 span link(s) dropped, their spans kept") ||
				!strings.Contains(msg, "a 4-byte span id: a link's trace id must be 16 bytes and its span id 8 bytes") {
				t.Errorf("partial success = %v, want no span rejected and the two links dropped, with the reason", out.PartialSuccess)
			}
			links := storedLinks(t, e.db, 1)
			if len(links) != 128 || links[0].TraceID != hex.EncodeToString(id(100, 16)) || links[0].SpanID != hex.EncodeToString(id(7, 8)) ||
				links[127].TraceID != hex.EncodeToString(id(227, 16)) {
				t.Fatalf("stored %d links (first %+v), want the first 128 valid ones", len(links), links[0].SpanRef)
			}
			var attrs map[string]string
			if err := json.Unmarshal(links[0].Attributes, &attrs); err != nil || len(attrs) != 16 || len(attrs["messaging.message.id"]) > 8<<10 ||
				!strings.HasSuffix(attrs["messaging.message.id"], "…[truncated]") || links[1].Attributes != nil {
				t.Errorf("first link's attributes: %d of them (%v), want 16 with the long value cut; second link's %s", len(attrs), err, links[1].Attributes)
			}

			// OTLP/JSON: the link's ids are hex, like the span's.
			js := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"billing"}}]},"scopeSpans":[{"spans":[
				{"traceId":"` + hex.EncodeToString(id(2, 16)) + `","spanId":"` + hex.EncodeToString(id(1, 8)) + `","name":"orders process","kind":5,
				 "startTimeUnixNano":"` + fmt.Sprint(sp.StartTimeUnixNano) + `","endTimeUnixNano":"` + fmt.Sprint(sp.EndTimeUnixNano) + `",
				 "links":[{"traceId":"` + hex.EncodeToString(id(3, 16)) + `","spanId":"` + hex.EncodeToString(id(4, 8)) + `"}]}]}]}]}`
			if resp, body := post(t, e.url, e.key, "application/json", []byte(js)); resp.StatusCode != 200 || strings.Contains(string(body), "partialSuccess") {
				t.Fatalf("json: %d %q", resp.StatusCode, body)
			}
			if links := storedLinks(t, e.db, 2); len(links) != 1 || links[0].TraceID != hex.EncodeToString(id(3, 16)) || links[0].SpanID != hex.EncodeToString(id(4, 8)) {
				t.Errorf("JSON span's links %+v, want trace %x span %x", links, id(3, 16), id(4, 8))
			}
			// A span without links stores none.
			if resp, body := post(t, e.url, e.key, "application/x-protobuf", marshal(t, request("billing", 5, 1))); resp.StatusCode != 200 {
				t.Fatalf("export: %d %q", resp.StatusCode, body)
			}
			if links := storedLinks(t, e.db, 5); links != nil {
				t.Errorf("span without links read back with %+v", links)
			}
		})
	}
}
