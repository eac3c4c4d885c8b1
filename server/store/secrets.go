package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"
)

// secretBytes is the size of a tenant's secret: the key size of the HMAC-SHA256 derivations made
// from it.
const secretBytes = 32

// Secret returns the tenant's random secret, creating it on first use. Replicas racing to create it
// all end up with the one that was stored first. Keys derived from it are the same on every replica
// of the tenant's server, without any configuration.
func (t *Tenant) Secret(ctx context.Context) ([]byte, error) {
	read := func() ([]byte, error) {
		var s string
		err := t.db.x.GetContext(ctx, &s, t.rebind(`SELECT secret FROM tenant_secrets WHERE tenant_id = ?`), t.id)
		if err != nil {
			return nil, notFound(err)
		}
		return hex.DecodeString(s)
	}
	secret, err := read()
	if !errors.Is(err, ErrNotFound) {
		if err != nil {
			return nil, fmt.Errorf("read tenant secret: %w", err)
		}
		return secret, nil
	}
	fresh := make([]byte, secretBytes)
	rand.Read(fresh)
	if _, err := t.db.x.ExecContext(ctx, t.rebind(`INSERT INTO tenant_secrets (tenant_id, secret, created_ns) VALUES (?, ?, ?)
		ON CONFLICT (tenant_id) DO NOTHING`), t.id, hex.EncodeToString(fresh), time.Now().UnixNano()); err != nil {
		return nil, fmt.Errorf("create tenant secret: %w", err)
	}
	if secret, err = read(); err != nil {
		return nil, fmt.Errorf("read tenant secret: %w", err)
	}
	return secret, nil
}
