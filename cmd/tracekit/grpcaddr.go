package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"time"

	"google.golang.org/grpc"
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

// serveGRPC runs gs on ln until ctx ends, then lets running calls finish (at most 20 s, as serve
// drains HTTP requests); the returned channel is closed once it has stopped. A nil ln serves nothing.
func serveGRPC(ctx context.Context, ln net.Listener, gs *grpc.Server, logger *slog.Logger) <-chan struct{} {
	done := make(chan struct{})
	if ln == nil {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		errc := make(chan error, 1)
		go func() { errc <- gs.Serve(ln) }()
		select {
		case err := <-errc:
			logger.Error("OTLP/gRPC stopped serving", "err", err)
			return
		case <-ctx.Done():
		}
		stopped := make(chan struct{})
		go func() { gs.GracefulStop(); close(stopped) }()
		select {
		case <-stopped:
		case <-time.After(20 * time.Second):
			gs.Stop()
		}
	}()
	return done
}
