package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tracekit/tracekit/internal/browsertest"
	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// keysArtifacts is where the keys page's screenshots go: $TRACEKIT_ARTIFACTS when set, else
// bin/artifacts/keys of the repository (git-ignored), kept after the run.
func keysArtifacts(t *testing.T) string {
	dir := os.Getenv("TRACEKIT_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join("..", "..", "bin", "artifacts", "keys")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// A member signs in to <tenant URL>/keys in Chromium with their API key, creates a key with the
// ingest scope, and that key sends traces and calls an MCP tool; revoked on the page, it is refused
// by both. The tenant's server runs as the tenant's own PostgreSQL role, as in a tenant pod; the
// audit trail holds both actions and `tracekit audit` prints them.
func TestKeysPage_CreateUseRevokeInChromium(t *testing.T) {
	ctx := context.Background()
	admin := storetest.PostgresDSN(t)
	tenantURL, err := tenantCmd(t, admin, "create", "acme")
	if err != nil {
		t.Fatal(err)
	}
	adb := storetest.Open(t, admin)
	member, _, err := adb.Admin().CreateAPIKey(ctx, "acme", "alice", []string{store.ScopeRead, store.ScopeIngest})
	if err != nil {
		t.Fatal(err)
	}
	tdb, err := openDB(ctx, tenantURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tdb.Close() })
	var h http.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(srv.Close)
	// A short cache, so the revocation reaches this server during the test rather than within 30 s.
	h = app.New(app.Config{DB: tdb, Tenant: "acme", PublicURL: srv.URL, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Auth: &auth.APIKeys{DB: tdb, Tenant: "acme", TTL: 50 * time.Millisecond, KeysPage: srv.URL + "/keys"}})

	dir := keysArtifacts(t)
	b := browsertest.New(t)
	bctx, cancel := context.WithTimeout(b.Context(), 2*time.Minute)
	defer cancel()
	shot := func(name string) {
		png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	err = chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/keys"), chromedp.WaitVisible(chromedp.ID("key")),
		chromedp.SendKeys(chromedp.ID("key"), member), chromedp.Click(chromedp.ID("submit")), chromedp.WaitVisible(chromedp.ID("create")))
	if err != nil {
		t.Fatalf("sign in at /keys: %v", err)
	}
	loc, _ := chromedp.Run(bctx, chromedp.Location())
	actor, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("actor")))
	if err != nil || loc != srv.URL+"/ui/keys" || !strings.Contains(actor, "alice") {
		t.Errorf("after sign-in: at %s as %q (%v)", loc, actor, err)
	}
	// The member's key has no write scope, so the page does not offer it.
	offered, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('input[name=scope]')).map(b => b.value)`))
	if err != nil || strings.Join(offered, ",") != "read,ingest" {
		t.Errorf("scopes offered: %v (%v), want read,ingest", offered, err)
	}
	err = chromedp.Do(bctx, chromedp.SendKeys(chromedp.ID("name"), "otel-collector"),
		chromedp.Click(chromedp.CSS(`input[name=scope][value=ingest]`)),
		chromedp.Click(chromedp.ID("create-key")), chromedp.WaitVisible(chromedp.ID("new-key")))
	if err != nil {
		t.Fatalf("create in the browser: %v", err)
	}
	newKey, err := chromedp.Run(bctx, chromedp.Text(chromedp.ID("new-key")))
	if err != nil || !strings.HasPrefix(newKey, store.KeyPrefix) {
		t.Fatalf("create in the browser: key %q, %v", newKey, err)
	}
	shot("keys-created.png")

	ingest := func(key string) (int, string) {
		body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"checkout"}}]},"scopeSpans":[{"spans":[` +
			`{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef","name":"GET /cart","kind":2,"startTimeUnixNano":"` +
			strconvNS(time.Now().Add(-time.Second)) + `","endTimeUnixNano":"` + strconvNS(time.Now()) + `"}]}]}]}`
		return post(t, srv.URL+"/v1/traces", key, "application/json", body)
	}
	callTool := func(key string) (int, string) {
		return post(t, srv.URL+"/mcp", key, "application/json",
			`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_services","arguments":{"since":"1h"}}}`)
	}
	if status, body := ingest(newKey); status != http.StatusOK {
		t.Errorf("ingest with the new key: %d %s", status, body)
	}
	if status, body := callTool(newKey); status != http.StatusOK || !strings.Contains(body, "checkout") {
		t.Errorf("tools/call with the new key: %d %s", status, body)
	}

	prefix := newKey[:len(store.KeyPrefix)+6]
	err = chromedp.Do(bctx, chromedp.Click(chromedp.CSS(`tr[data-prefix="`+prefix+`"] button.revoke`)),
		// The page after creation has a notice too: wait for the revoked row of the new document.
		chromedp.WaitVisible(chromedp.CSS(`tr.revoked[data-prefix="`+prefix+`"]`)))
	if err != nil {
		t.Fatalf("revoke in the browser: %v", err)
	}
	state, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`tr[data-prefix="`+prefix+`"] .state`)))
	if err != nil || !strings.HasPrefix(state, "revoked") {
		t.Fatalf("revoke in the browser: state %q, %v", state, err)
	}
	shot("keys-revoked.png")
	time.Sleep(100 * time.Millisecond) // the server's key cache (TTL 50 ms)
	if status, body := ingest(newKey); status != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("ingest with the revoked key: %d %s", status, body)
	}
	if status, body := callTool(newKey); status != http.StatusUnauthorized || !strings.Contains(body, "revoked") {
		t.Errorf("tools/call with the revoked key: %d %s", status, body)
	}

	events, err := adb.Admin().AuditEvents(ctx, store.AuditFilter{Tenant: "acme"})
	if err != nil || len(events) != 2 || events[0].Action != store.AuditKeyCreate || events[1].Action != store.AuditKeyRevoke {
		t.Fatalf("audit trail: %+v, %v", events, err)
	}
	for _, e := range events {
		if !strings.Contains(e.Actor, "alice") || !strings.Contains(e.Target, prefix) || e.IP != "127.0.0.1" || !strings.Contains(e.UserAgent, "Chrome") {
			t.Errorf("audit event %+v: want alice's key, the new key, the browser's address and user agent", e)
		}
	}
	var out bytes.Buffer
	if err := auditCommand(ctx, []string{"--tenant", "acme", "--since", "1h", "--database-url", admin}, &out); err != nil {
		t.Fatal(err)
	}
	if s := out.String(); !strings.Contains(s, "apikey.create") || !strings.Contains(s, "apikey.revoke") || !strings.Contains(s, prefix) {
		t.Errorf("tracekit audit printed:\n%s", s)
	}
}

func strconvNS(t time.Time) string { return strconv.FormatInt(t.UnixNano(), 10) }

func post(t *testing.T, u, key, contentType, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}
