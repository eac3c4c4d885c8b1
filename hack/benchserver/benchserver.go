// Package benchserver starts `tracekit server` for the load tools under hack/: the real binary in its
// own process, so a benchmark measures what a deployment runs.
package benchserver

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// Start runs `bin server` on a free loopback port against the database at dsn and returns the
// process and its base URL (http://host:port) once it listens. The server's errors and any
// non-JSON output are passed on to stderr; the caller kills the process when done.
func Start(bin, dsn string) (*exec.Cmd, string, error) {
	srv := exec.Command(bin, "server", "--addr", "127.0.0.1:0", "--database-url", dsn)
	srv.Stdout = os.Stdout
	stderr, err := srv.StderrPipe()
	if err != nil {
		return nil, "", err
	}
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, `"addr":"`); i >= 0 {
			rest := line[i+8:]
			go func() {
				for sc.Scan() {
					if l := sc.Text(); strings.Contains(l, `"level":"ERROR"`) || !strings.HasPrefix(l, "{") {
						fmt.Fprintln(os.Stderr, "server:", l)
					}
				}
			}()
			return srv, "http://" + rest[:strings.IndexByte(rest, '"')], nil
		}
	}
	srv.Process.Kill()
	srv.Wait()
	return nil, "", fmt.Errorf("%s server exited before listening", bin)
}
