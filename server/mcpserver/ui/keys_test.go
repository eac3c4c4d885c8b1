package ui

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// keysServer serves the keys page over SQLite for tenant acme and returns its URL and a read-only key.
func keysServer(t *testing.T) (string, string, *store.DB) {
	t.Helper()
	ctx := context.Background()
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "reader", []string{store.ScopeRead})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	Register(r, WebConfig{Auth: &auth.APIKeys{DB: db}, PublicURL: srv.URL, DB: db, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	return srv.URL, key, db
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func keysRequest(t *testing.T, method, u, key string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(&http.Cookie{Name: cookie, Value: key})
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// Bad create forms are answered 400 with a sentence saying what to change, and nothing is created;
// a read-only sign-in cannot mint an ingest or write key; a post without the page's token is refused.
func TestKeysPage_RefusesBadFormsWithClearErrors(t *testing.T) {
	base, key, db := keysServer(t)
	status, page := keysRequest(t, http.MethodGet, base+"/ui/keys", key, nil)
	m := csrfField.FindStringSubmatch(page)
	if status != http.StatusOK || m == nil {
		t.Fatalf("GET /ui/keys: %d, no CSRF field in\n%s", status, page)
	}
	csrf := m[1]
	yesterday := time.Now().UTC().AddDate(0, 0, -1).Format(time.DateOnly)
	for _, c := range []struct {
		name   string
		form   url.Values
		status int
		want   string
	}{
		{"unknown scope", url.Values{"name": {"x"}, "scope": {"admin"}}, 400, `Unknown scope &#34;admin&#34;: choose among read, ingest and write.`},
		{"expiry in the past", url.Values{"name": {"x"}, "scope": {"read"}, "tools": {"traces"}, "expires": {yesterday}}, 400, "The expiry " + yesterday + " is in the past"},
		{"expiry not a date", url.Values{"name": {"x"}, "scope": {"read"}, "tools": {"traces"}, "expires": {"soon"}}, 400, "is not a date; use YYYY-MM-DD"},
		{"name too long", url.Values{"name": {strings.Repeat("n", 101)}, "scope": {"read"}, "tools": {"traces"}}, 400, "The name is 101 characters long; keep it to 100."},
		{"no name", url.Values{"scope": {"read"}, "tools": {"traces"}}, 400, "Name the key"},
		{"unknown tool group", url.Values{"name": {"x"}, "scope": {"read"}, "tools": {"shell"}}, 400, "Unknown tool group &#34;shell&#34;"},
		{"scope beyond the sign-in", url.Values{"name": {"x"}, "scope": {"ingest"}}, 400, "does not hold the &#34;ingest&#34; scope"},
		{"live debugging beyond the sign-in", url.Values{"name": {"x"}, "scope": {"read", "write"}, "tools": {"debugging"}}, 400, "does not hold the &#34;write&#34; scope"},
		{"no CSRF token", url.Values{"name": {"x"}, "scope": {"read"}, "tools": {"traces"}, "csrf": {"forged"}}, 403, "reload the keys page"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.form.Get("csrf") == "" {
				c.form.Set("csrf", csrf)
			}
			status, body := keysRequest(t, http.MethodPost, base+"/ui/keys", key, c.form)
			if status != c.status || !strings.Contains(body, c.want) {
				t.Errorf("%d, want %d with %q in\n%s", status, c.status, c.want, body)
			}
		})
	}
	if keys, _ := db.ForTenant("acme").APIKeys(context.Background()); len(keys) != 1 {
		t.Errorf("%d keys after refused forms, want only the reader's", len(keys))
	}
	// The page may not be framed, and /keys leads to it.
	req, _ := http.NewRequest(http.MethodGet, base+"/ui/keys", nil)
	req.AddCookie(&http.Cookie{Name: cookie, Value: key})
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Errorf("keys page headers: %v", res.Header)
	}
	if status, body := keysRequest(t, http.MethodGet, base+"/keys", key, nil); status != http.StatusSeeOther {
		t.Errorf("GET /keys: %d %s", status, body)
	}
	if status, _ := keysRequest(t, http.MethodGet, base+"/ui/keys", "", nil); status != http.StatusSeeOther {
		t.Errorf("GET /ui/keys signed out: %d, want a redirect to the sign-in page", status)
	}
}

// Signing in to the pages with a revoked key says so, and the attempt lands in the tenant's audit
// trail with where it came from.
func TestSignIn_RevokedKeyIsNamedAndAudited(t *testing.T) {
	base, _, db := keysServer(t)
	ctx := context.Background()
	key, k, err := db.ForTenant("acme").CreateAPIKey(ctx, store.NewAPIKey{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ForTenant("acme").RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodPost, base+"/ui/signin", strings.NewReader(url.Values{"key": {key}, "next": {"/ui/keys"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", "test-browser/1")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "This API key was revoked on ") {
		t.Errorf("sign-in with a revoked key: %d\n%s", res.StatusCode, body)
	}
	events, err := db.ForTenant("acme").AuditEvents(ctx, store.AuditFilter{})
	if err != nil || len(events) != 1 || events[0].Action != store.AuditSignInRefused || !strings.Contains(events[0].Actor, k.ID) ||
		events[0].IP != "127.0.0.1" || events[0].UserAgent != "test-browser/1" {
		t.Errorf("audit trail: %+v, %v", events, err)
	}
}
