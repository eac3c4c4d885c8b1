package ingest

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"runtime"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
)

// otlpJSON returns an OTLP/JSON request of about size bytes: spans with hex ids and a few attributes.
func otlpJSON(size int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[`)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"traceId":"%s","spanId":"%s","name":"SELECT orders","kind":3,"startTimeUnixNano":"1796392800000000000","endTimeUnixNano":"1796392800005000000",`+
			`"attributes":[{"key":"db.system","value":{"stringValue":"postgresql"}},{"key":"db.statement","value":{"stringValue":"SELECT * FROM orders WHERE id = $1"}}]}`,
			hex.EncodeToString(fmt.Appendf(nil, "%016d", i)), hex.EncodeToString(fmt.Appendf(nil, "%08d", i%1e8)))
	}
	b.WriteString(`]}]}]}`)
	return b.Bytes()
}

// Eight concurrent 15 MiB OTLP/JSON bodies used to take the server to 1.5–3.4 GB: the hex ids were
// rewritten through a map[string]any of the whole document (about ten times the body). The rewrite
// is now in place, so decoding costs little more than the decoded request itself.
func TestDecodeJSON_AllocatesLittleMoreThanTheDecodedRequest(t *testing.T) {
	body := otlpJSON(8 << 20)
	decodedOnly := allocated(t, func() {
		fixed, err := hexIDsToBase64(bytes.Clone(body))
		if err != nil {
			t.Fatal(err)
		}
		_ = fixed
	})
	total := allocated(t, func() {
		req := &collectorpb.ExportTraceServiceRequest{}
		if err := decode(encJSON, bytes.Clone(body), req); err != nil {
			t.Fatal(err)
		}
		if n := len(req.ResourceSpans[0].ScopeSpans[0].Spans); n < 1000 {
			t.Fatalf("decoded %d spans", n)
		}
	})
	// The clone of the body is counted in both; the id rewrite must add next to nothing to it.
	if extra := decodedOnly - int64(len(body)); extra > int64(len(body))/10 {
		t.Errorf("rewriting the ids of a %d-byte body allocated %d bytes beyond its copy, want under a tenth of it", len(body), extra)
	}
	// protojson itself allocates about five times the body (objects and its scanning garbage); the
	// old rewrite made it twenty-two.
	if total > 8*int64(len(body)) {
		t.Errorf("decoding a %d-byte JSON body allocated %d bytes, want under 8 times the body", len(body), total)
	}
}

func allocated(t *testing.T, fn func()) int64 {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return int64(after.TotalAlloc - before.TotalAlloc)
}
