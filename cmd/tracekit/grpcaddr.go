package main

import (
	"flag"
	"fmt"
	"net"
)

// grpcAddrFlag registers --grpc-addr, where OTLP/gRPC is received; empty turns it off.
func grpcAddrFlag(fs *flag.FlagSet, def, env string) *string {
	usage := "OTLP/gRPC listen address (TraceService/Export); empty turns OTLP/gRPC off"
	if env != "" {
		usage += " ($" + env + ")"
	}
	return fs.String("grpc-addr", def, usage)
}

// listenGRPC listens on addr, or returns nil when OTLP/gRPC is off.
func listenGRPC(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("OTLP/gRPC: listen on %s: %w (is a Collector or another tracekit using it? choose another --grpc-addr, or --grpc-addr '' to turn OTLP/gRPC off)", addr, err)
	}
	return ln, nil
}
