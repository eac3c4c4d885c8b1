package auth_test

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// An expired or revoked key is refused with what happened, when, and where to get a new key (what
// ingest, /mcp and the web sign-in all answer), even while the key is cached as valid; a key limited
// to some tool groups signs in limited to them, and its use is recorded.
func TestAPIKeys_RefuseExpiredAndRevokedKeysSayingWhy(t *testing.T) {
	ctx := context.Background()
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	tn := db.ForTenant("acme")
	expires := time.Now().Add(500 * time.Millisecond)
	short, _, err := tn.CreateAPIKey(ctx, store.NewAPIKey{Name: "ci", Scopes: []string{store.ScopeRead}, ToolGroups: []string{"traces", "llm"}, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	revoked, rk, err := tn.CreateAPIKey(ctx, store.NewAPIKey{Name: "old"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tn.RevokeAPIKey(ctx, rk.ID); err != nil {
		t.Fatal(err)
	}
	a := &auth.APIKeys{DB: db, Tenant: "acme", KeysPage: "https://tk.example/t/acme/keys"}
	req := func(key string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/v1/traces", nil)
		r.Header.Set("Authorization", "Bearer "+key)
		return r
	}
	p, err := a.Authenticate(req(short))
	if err != nil || !slices.Equal(p.ToolGroups, []string{"traces", "llm"}) || p.MayUseTool("search_snapshots") || !strings.Contains(p.Actor(), "ci, tk_") {
		t.Fatalf("fresh key: %+v (%s), %v", p, p.Actor(), err)
	}
	if keys, _ := tn.APIKeys(ctx); keys[len(keys)-1].LastUsedNS == 0 {
		t.Errorf("the key's use was not recorded: %+v", keys[len(keys)-1])
	}
	time.Sleep(time.Until(expires) + 10*time.Millisecond) // still in the 30 s cache
	_, err = a.Authenticate(req(short))
	if !errors.Is(err, auth.ErrInvalidCredentials) || !strings.Contains(err.Error(), "expired on "+expires.UTC().Format("2006-01-02T15:04:05Z")) ||
		!strings.Contains(err.Error(), "https://tk.example/t/acme/keys") {
		t.Errorf("expired key: %v", err)
	}
	if _, err := a.Authenticate(req(revoked)); !errors.Is(err, auth.ErrInvalidCredentials) || !strings.Contains(err.Error(), "was revoked on ") {
		t.Errorf("revoked key: %v", err)
	}
	// Another tenant's server says nothing about this tenant's keys.
	other := &auth.APIKeys{DB: db, Tenant: "globex"}
	if _, err := other.Authenticate(req(revoked)); err == nil || strings.Contains(err.Error(), "was revoked on") {
		t.Errorf("revoked key at another tenant's server: %v", err)
	}
}

// The audit trail names the person of a company sign-in, else the credential.
func TestPrincipal_ActorNamesThePersonElseTheCredential(t *testing.T) {
	for _, c := range []struct {
		p    auth.Principal
		want string
	}{
		{auth.Principal{Method: "oauth", Subject: "s1", User: "alice@example.com", IdPGroups: []string{"platform"}}, "alice@example.com (company sign-in, group platform)"},
		{auth.Principal{Method: "api_key", Subject: "key_ab12", Name: "ci, tk_Ab12Cd…"}, "API key key_ab12 (ci, tk_Ab12Cd…)"},
		{auth.Principal{Method: "oauth", Subject: "s2", Name: "tk_Ab12Cd"}, "tk_Ab12Cd"},
		{auth.Principal{Method: "oauth", Subject: "s3"}, "oauth subject s3"},
	} {
		if got := c.p.Actor(); got != c.want {
			t.Errorf("Actor of %+v = %q, want %q", c.p, got, c.want)
		}
	}
}
