package oauth_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The TypeScript SDK's client, which most desktop clients are built on, goes through the same flow:
// a client we did not write. Its dependencies are installed by `make test-deps`.
func TestTypeScriptSDKClient_SignsInWithAnAPIKeyInChromiumAndCallsATool(t *testing.T) {
	node := requireTool(t, "node")
	dir := filepath.Join("testdata", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the TypeScript SDK is not installed in %s; run `make test-deps`", dir)
		}
		t.Skipf("the TypeScript SDK is not installed in %s; run `make test-deps`", dir)
	}
	b := newBrowser(t)
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs", tn.url+"/mcp")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var result struct {
		IsError, Structured, RefreshToken bool
		Iss, ClientID                     string
	}
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "AUTHORIZE "):
			if err := b.signIn(strings.TrimPrefix(line, "AUTHORIZE "), tn.key); err != nil {
				t.Fatalf("sign-in page: %v", err)
			}
		case strings.HasPrefix(line, "RESULT "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "RESULT ")), &result); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("TypeScript client: %v\n%s", err, stderr.String())
	}
	if result.ClientID == "" || result.IsError || !result.Structured || !result.RefreshToken || result.Iss != tn.url {
		t.Fatalf("TypeScript client result %+v\n%s", result, stderr.String())
	}
}
