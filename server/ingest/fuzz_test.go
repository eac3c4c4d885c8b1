package ingest

import (
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tracekit/tracekit/server/genai"
)

// The decoders take bytes from anyone holding an ingest key: whatever they are sent, they return a
// request or an error (never panic), and what they return converts to rows. The seeds below and
// those in testdata/fuzz/<FuzzName> run with every go test; search longer with
// go test ./server/ingest -run '^$' -fuzz FuzzDecodeProto -fuzztime 1m (make fuzz runs each briefly).

func FuzzDecodeProto(f *testing.F) {
	f.Add([]byte{})
	f.Add(otlpProtoSeed(f))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &collectorpb.ExportTraceServiceRequest{}
		if err := decode(encProto, body, req); err != nil {
			return
		}
		convert(req.GetResourceSpans(), genai.Builtin)
	})
}

func FuzzDecodeJSON(f *testing.F) {
	f.Add([]byte(`{}`))
	f.Add(otlpJSON(2 << 10))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &collectorpb.ExportTraceServiceRequest{}
		if err := decode(encJSON, body, req); err != nil {
			return
		}
		convert(req.GetResourceSpans(), genai.Builtin)
	})
}

func otlpProtoSeed(f *testing.F) []byte {
	req := &collectorpb.ExportTraceServiceRequest{}
	if err := decode(encJSON, otlpJSON(2<<10), req); err != nil {
		f.Fatal(err)
	}
	b, err := proto.Marshal(req)
	if err != nil {
		f.Fatal(err)
	}
	return b
}
