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

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/oauth"
)

// The TypeScript SDK's client, which most desktop clients are built on, goes through the same flow:
// a client we did not write, once registering and once presenting a client metadata document, as
// Claude Code and VS Code do. Its dependencies are installed by `make test-deps`.
func TestTypeScriptSDKClient_SignsInWithAnAPIKeyInChromiumAndCallsATool(t *testing.T) {
	t.Run("registration", func(t *testing.T) { runTypeScriptClient(t, false) })
	t.Run("metadata document", func(t *testing.T) { runTypeScriptClient(t, true) })
}

func runTypeScriptClient(t *testing.T, document bool) {
	node := browsertest.RequireTool(t, "node")
	dir := filepath.Join("testdata", "tsclient")
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@modelcontextprotocol", "sdk")); err != nil {
		t.Fatalf("the TypeScript SDK is not installed in %s; run `make test-deps`", dir)
	}
	b := browsertest.New(t)
	docs := newDocumentHost(t)
	e := newEnv(t, envOptions{documents: oauth.NewTestDocumentFetcher(docs.roots)}, "acme")
	tn := e.tenants["acme"]
	args := []string{"client.mjs", tn.url + "/mcp"}
	var docURL string
	if document {
		// Port-less, as Claude Code publishes it: the client listens on whatever port is free.
		docURL = docs.publish("/oauth/ts-client-metadata", map[string]any{"client_name": "TypeScript SDK e2e",
			"redirect_uris": []string{"http://127.0.0.1/callback"}, "grant_types": []string{"authorization_code", "refresh_token"},
			"response_types": []string{"code"}, "token_endpoint_auth_method": "none"})
		args = append(args, docURL)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, args...)
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
			if err := b.SignIn(strings.TrimPrefix(line, "AUTHORIZE "), tn.key); err != nil {
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
	if document && result.ClientID != docURL {
		t.Fatalf("the client registered (client_id %s) instead of presenting its document", result.ClientID)
	}
}
