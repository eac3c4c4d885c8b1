package main

import (
	"bytes"
	"strings"
	"testing"
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
