// Package otlp sends spans to TraceKit the way real applications and pipelines do: the stock
// OpenTelemetry Go SDK's OTLP exporters configured by the standard environment variables, and an
// OpenTelemetry Collector built from the Go module proxy (bin/otelcol, `make otelcol`). The data is
// then read back through the MCP tools.
package otlp

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var repoRoot = filepath.Join("..", "..")

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// tracekitBin builds ./cmd/tracekit once per test binary.
func tracekitBin(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tracekit-otlp-test")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tracekit")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/tracekit")
		cmd.Dir = repoRoot
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("build tracekit: %v\n%s", buildErr, buildOut)
	}
	return binPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// tenantDB is a database with tenant acme and an API key. On PostgreSQL the server connects as
// acme's own role, as a tenant's server does in production.
type tenantDB struct {
	admin, serverURL, key string
}

func newTenantDB(t *testing.T, dialect string) tenantDB {
	t.Helper()
	var admin string
	if dialect == "postgres" {
		admin = storetest.PostgresDSN(t)
	} else {
		admin = storetest.SQLiteDSN(t)
	}
	db := storetest.Open(t, admin)
	ctx := context.Background()
	creds, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"})
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "otlp test", nil)
	if err != nil {
		t.Fatal(err)
	}
	serverURL := admin
	if creds.Role != "" {
		if serverURL, err = creds.DSN(admin); err != nil {
			t.Fatal(err)
		}
	}
	return tenantDB{admin: admin, serverURL: serverURL, key: key}
}

// tkServer is a running `tracekit server`.
type tkServer struct {
	cmd            *exec.Cmd
	httpAddr, grpc string
	done           chan struct{}
}

// startServer runs `tracekit server` on httpAddr and grpcAddr (port 0: any free port) and waits
// until it listens. Its log goes to the test log when the test fails.
func startServer(t *testing.T, dsn, httpAddr, grpcAddr string) *tkServer {
	t.Helper()
	logFile, err := os.CreateTemp(t.TempDir(), "server-*.log")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tracekitBin(t), "server", "--addr", httpAddr, "--grpc-addr", grpcAddr, "--database-url", dsn)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &tkServer{cmd: cmd, done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			logFile.WriteString(line + "\n")
			var ev struct {
				Msg      string `json:"msg"`
				Addr     string `json:"addr"`
				GRPCAddr string `json:"grpc_addr"`
			}
			if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "serving" && s.httpAddr == "" {
				s.httpAddr, s.grpc = ev.Addr, ev.GRPCAddr
				close(ready)
			}
		}
		cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		s.stop(syscall.SIGKILL)
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			t.Logf("tracekit server log:\n%s", b)
		}
	})
	select {
	case <-ready:
	case <-s.done:
		t.Fatalf("tracekit server exited before listening (log: %s)", logFile.Name())
	case <-time.After(60 * time.Second):
		t.Fatal("tracekit server did not listen within 60 s")
	}
	return s
}

// stop signals the server and waits for it to exit.
func (s *tkServer) stop(sig os.Signal) {
	select {
	case <-s.done:
		return
	default:
	}
	s.cmd.Process.Signal(sig)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
	}
}

// freeAddr is a loopback address nothing listens on, for a process that must listen on the same
// address again after a restart.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

type bearer struct{ key string }

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.key)
	return http.DefaultTransport.RoundTrip(r)
}

// mcpSession connects the MCP Go SDK's client to the server with the API key.
func mcpSession(t *testing.T, httpAddr, key string) *mcp.ClientSession {
	t.Helper()
	s, err := mcp.NewClient(&mcp.Implementation{Name: "otlp-test", Version: "1"}, nil).Connect(context.Background(),
		&mcp.StreamableClientTransport{Endpoint: "http://" + httpAddr + "/mcp", HTTPClient: &http.Client{Transport: bearer{key}}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("MCP connect: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// callTool calls a tool and decodes its structured answer into out.
func callTool(t *testing.T, s *mcp.ClientSession, tool string, args map[string]any, out any) {
	t.Helper()
	res, err := s.CallTool(context.Background(), &mcp.CallToolParams{Name: tool, Arguments: args})
	if err != nil {
		t.Fatalf("%s: %v", tool, err)
	}
	if res.IsError {
		var b strings.Builder
		for _, c := range res.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		t.Fatalf("%s(%v) failed: %s", tool, args, b.String())
	}
	raw, err := json.Marshal(res.StructuredContent)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		t.Fatalf("%s: %v\n%s", tool, err, raw)
	}
}
