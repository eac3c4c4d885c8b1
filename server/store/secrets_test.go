package store_test

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func TestTenantSecret_IsCreatedOnceIsPerTenantAndGoesWithTheTenant(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		ctx := context.Background()
		for _, id := range []string{"acme", "globex"} {
			if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id}); err != nil {
				t.Fatal(err)
			}
		}
		// Replicas starting together agree on one secret.
		secrets := make([][]byte, 4)
		var wg sync.WaitGroup
		for i := range secrets {
			wg.Go(func() {
				s, err := db.ForTenant("acme").Secret(ctx)
				if err != nil {
					t.Error(err)
				}
				secrets[i] = s
			})
		}
		wg.Wait()
		for _, s := range secrets[1:] {
			if len(s) != 32 || !bytes.Equal(s, secrets[0]) {
				t.Fatalf("secrets differ: %x", secrets)
			}
		}
		other, err := db.ForTenant("globex").Secret(ctx)
		if err != nil || bytes.Equal(other, secrets[0]) {
			t.Fatalf("globex's secret %x (%v) equals acme's", other, err)
		}
		if err := db.Admin().DeleteTenant(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
			t.Fatal(err)
		}
		if again, err := db.ForTenant("acme").Secret(ctx); err != nil || bytes.Equal(again, secrets[0]) {
			t.Errorf("a re-created tenant got its predecessor's secret (%v)", err)
		}
	})
}

// A tenant's own database role creates and reads its secret, and cannot read or plant another's.
func TestTenantSecret_TenantRoleReachesOnlyItsOwn(t *testing.T) {
	ctx := context.Background()
	admin, _, teamA := storetest.TwoTenants(t)
	b, err := admin.ForTenant("team-b").Secret(ctx)
	if err != nil {
		t.Fatal(err)
	}
	asA, err := store.Open(ctx, teamA)
	if err != nil {
		t.Fatal(err)
	}
	defer asA.Close()
	if _, err := asA.ForTenant("team-a").Secret(ctx); err != nil {
		t.Fatalf("team-a's role: %v", err)
	}
	if got, err := asA.ForTenant("team-b").Secret(ctx); err == nil || bytes.Equal(got, b) {
		t.Errorf("team-a's role read or created team-b's secret: %x, %v", got, err)
	}
}
