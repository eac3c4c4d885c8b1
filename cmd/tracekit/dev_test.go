package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracekit/tracekit/server/analysis/alerting"
)

// What `make run` prints tells where both OTLP transports listen.
func TestPrintConnectionHelp_ShowsBothOTLPEndpoints(t *testing.T) {
	var b bytes.Buffer
	printConnectionHelp(&b, "http://127.0.0.1:8080", "http://127.0.0.1:4317", "tk_key")
	for _, want := range []string{
		"MCP URL: http://127.0.0.1:8080/mcp",
		"OTLP/HTTP:  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:8080 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
		"OTLP/gRPC:  OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 OTEL_EXPORTER_OTLP_PROTOCOL=grpc",
		`OTEL_EXPORTER_OTLP_HEADERS="Authorization=Bearer tk_key"`,
		"the API keys page,\n  http://127.0.0.1:8080/keys (sign in with the API key above)",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("missing %q in:\n%s", want, b.String())
		}
	}
	b.Reset()
	printConnectionHelp(&b, "http://127.0.0.1:8080", "", "tk_key")
	if !strings.Contains(b.String(), "OTLP/gRPC is off") {
		t.Errorf("with --grpc-addr '' the help does not say gRPC is off:\n%s", b.String())
	}
}

// `tracekit dev --alert-rules FILE` takes rules for the user's own services (the example shop's file
// among them) and refuses a bad file before the demo loads.
func TestDev_AlertRulesFile(t *testing.T) {
	rules, err := alerting.LoadRules(filepath.Join("..", "..", "examples", "shop", "alert-rules.json"))
	if err != nil || len(rules) != 2 || rules[0].Service != "shop" {
		t.Fatalf("examples/shop/alert-rules.json: %v, %v", rules, err)
	}
	bad := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(bad, []byte(`[{"id":"x","service":"shop","metric":"p95","comparison":">","threshold":1,"window_seconds":60,"severity":"high"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runDev(context.Background(), []string{"--data-dir", t.TempDir(), "--no-demo", "--addr", "127.0.0.1:0", "--grpc-addr", "", "--alert-rules", bad})
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "latency_p95_ms") {
		t.Fatalf("a rules file with an unknown metric: %v; want an error naming the file and the metrics to use", err)
	}
}
