package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// A key with an expiry works until then and is refused afterwards with ErrKeyExpired (not as unknown);
// a revoked key with ErrKeyRevoked; an expiry in the past, an unknown scope and an overlong name are
// refused at creation.
func TestAPIKeys_ExpiryAndRevocationAreReportedAsSuch(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
			t.Fatal(err)
		}
		tn := db.ForTenant("acme")
		soon := time.Now().Add(300 * time.Millisecond)
		key, k, err := tn.CreateAPIKey(ctx, store.NewAPIKey{Name: "ci", Scopes: []string{store.ScopeIngest}, ToolGroups: []string{"traces"}, Expires: soon, CreatedBy: "alice"})
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.LookupAPIKey(ctx, key)
		if err != nil || got.ExpiresNS != soon.UnixNano() || got.ToolGroups != "traces" || got.CreatedBy != "alice" || got.ID != k.ID {
			t.Fatalf("fresh key: %+v, %v", got, err)
		}
		time.Sleep(time.Until(soon) + 10*time.Millisecond)
		if got, err := db.LookupAPIKey(ctx, key); !errors.Is(err, store.ErrKeyExpired) || !errors.Is(err, store.ErrNotFound) || got.ID != k.ID {
			t.Errorf("expired key: %+v, %v; want the key with ErrKeyExpired", got, err)
		}

		key2, k2, err := tn.CreateAPIKey(ctx, store.NewAPIKey{Name: "laptop"})
		if err != nil {
			t.Fatal(err)
		}
		if err := db.TouchAPIKey(ctx, k2.ID, time.Now()); err != nil {
			t.Fatal(err)
		}
		revoked, err := tn.RevokeAPIKey(ctx, k2.Prefix)
		if err != nil || revoked.ID != k2.ID || revoked.RevokedNS == 0 {
			t.Fatalf("revoke by prefix: %+v, %v", revoked, err)
		}
		if got, err := db.LookupAPIKey(ctx, key2); !errors.Is(err, store.ErrKeyRevoked) || got.LastUsedNS == 0 {
			t.Errorf("revoked key: %+v, %v; want ErrKeyRevoked and its last use", got, err)
		}
		if _, err := tn.RevokeAPIKey(ctx, k2.ID); err == nil || !strings.Contains(err.Error(), "no active key") {
			t.Errorf("second revoke: %v", err)
		}

		for _, c := range []struct {
			n    store.NewAPIKey
			want string
		}{
			{store.NewAPIKey{Name: "x", Expires: time.Now().Add(-time.Hour)}, "in the past"},
			{store.NewAPIKey{Name: "x", Scopes: []string{"admin"}}, `unknown scope "admin"`},
			{store.NewAPIKey{Name: strings.Repeat("n", store.MaxKeyNameLen+1)}, "keep it to 100"},
		} {
			if _, _, err := tn.CreateAPIKey(ctx, c.n); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("create %+v: %v, want %q", c.n, err, c.want)
			}
		}
	})
}

// The audit trail keeps each event with its tenant, newest last, filtered by tenant and time.
func TestAudit_RecordsAndFiltersByTenantAndTime(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		t0 := time.Now().Add(-time.Hour)
		events := []struct {
			tenant string
			e      store.AuditEvent
		}{
			{"acme", store.AuditEvent{AtNS: t0.UnixNano(), Actor: "API key key_a (ci, tk_abc…)", Method: "api_key", Action: store.AuditKeyCreate, Target: "key_b", IP: "192.0.2.1", UserAgent: strings.Repeat("u", 600)}},
			{"globex", store.AuditEvent{AtNS: t0.Add(time.Minute).UnixNano(), Actor: "bob", Action: store.AuditKeyRevoke}},
			{"acme", store.AuditEvent{Actor: "alice@example.com", Method: "oauth", Action: store.AuditKeyRevoke, Target: "key_b"}},
		}
		for _, ev := range events {
			if err := db.ForTenant(ev.tenant).RecordAudit(ctx, ev.e); err != nil {
				t.Fatal(err)
			}
		}
		acme, err := db.ForTenant("acme").AuditEvents(ctx, store.AuditFilter{})
		if err != nil || len(acme) != 2 || acme[0].Action != store.AuditKeyCreate || acme[1].Actor != "alice@example.com" {
			t.Fatalf("acme's trail: %+v, %v", acme, err)
		}
		if e := acme[0]; e.TenantID != "acme" || e.IP != "192.0.2.1" || len(e.UserAgent) > 510 || !e.At.Equal(time.Unix(0, t0.UnixNano())) {
			t.Errorf("first event: %+v", e)
		}
		all, err := db.Admin().AuditEvents(ctx, store.AuditFilter{})
		if err != nil || len(all) != 3 {
			t.Errorf("every tenant: %d events, %v", len(all), err)
		}
		recent, err := db.Admin().AuditEvents(ctx, store.AuditFilter{Since: t0.Add(30 * time.Second)})
		if err != nil || len(recent) != 2 || recent[0].TenantID != "globex" {
			t.Errorf("since: %+v, %v", recent, err)
		}
		if err := db.Admin().DeleteTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if left, _ := db.Admin().AuditEvents(ctx, store.AuditFilter{Tenant: "acme"}); len(left) != 0 {
			t.Errorf("%d audit events left after deleting the tenant", len(left))
		}
	})
}
