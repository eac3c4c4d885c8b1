package ingest_test

import (
	"bytes"
	"net/http"
	"testing"

	"github.com/tracekit/tracekit/server/ingest"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// BenchmarkExport drives the receiver over HTTP with concurrent 1,000-span protobuf batches against
// PostgreSQL; b.N is requests. `make bench-ingest` measures the same through the real binary.
func BenchmarkExport(b *testing.B) {
	e := newEnvTB(b, storetest.PostgresDSN(b), ingest.Config{})
	bodies := make([][]byte, 16)
	for i := range bodies {
		bodies[i] = marshal(b, request("checkout", i+1, 1000))
	}
	b.SetParallelism(4)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, e.url, bytes.NewReader(bodies[i%len(bodies)]))
			req.Header.Set("Content-Type", "application/x-protobuf")
			req.Header.Set("Authorization", "Bearer "+e.key)
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				b.Errorf("export: %v %v", err, resp)
				return
			}
			resp.Body.Close()
			i++
		}
	})
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "spans/s")
}
