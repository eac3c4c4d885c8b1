// Package benchserver starts `tracekit server` for the load tools under hack/: the real binary in its
// own process, so a benchmark measures what a deployment runs.
package benchserver

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Start runs `bin server` on free loopback ports against the database at dsn and returns the
// process and its base URL (http://host:port) once it listens.
func Start(bin, dsn string) (*exec.Cmd, string, error) {
	srv, base, _, err := StartGRPC(bin, dsn)
	return srv, base, err
}

// StartGRPC is Start that also returns the OTLP/gRPC listen address (host:port). The server's errors
// and any non-JSON output are passed on to stderr; the caller kills the process when done.
func StartGRPC(bin, dsn string) (*exec.Cmd, string, string, error) {
	srv := exec.Command(bin, "server", "--addr", "127.0.0.1:0", "--grpc-addr", "127.0.0.1:0", "--database-url", dsn)
	srv.Stdout = os.Stdout
	stderr, err := srv.StderrPipe()
	if err != nil {
		return nil, "", "", err
	}
	if err := srv.Start(); err != nil {
		return nil, "", "", err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		var ev struct {
			Msg      string `json:"msg"`
			Addr     string `json:"addr"`
			GRPCAddr string `json:"grpc_addr"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) != nil || ev.Msg != "serving" {
			continue
		}
		go func() {
			for sc.Scan() {
				if l := sc.Text(); strings.Contains(l, `"level":"ERROR"`) || !strings.HasPrefix(l, "{") {
					fmt.Fprintln(os.Stderr, "server:", l)
				}
			}
		}()
		return srv, "http://" + ev.Addr, ev.GRPCAddr, nil
	}
	srv.Process.Kill()
	srv.Wait()
	return nil, "", "", fmt.Errorf("%s server exited before listening", bin)
}
