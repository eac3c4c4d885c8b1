package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"
)

// KeyPrefix starts every TraceKit API key, so leaked keys are recognisable by secret scanners.
const KeyPrefix = "tk_"

// Scopes an API key may carry.
const (
	ScopeRead   = "read"   // MCP tools and read APIs
	ScopeIngest = "ingest" // OTLP ingest and snapshot uploads
	ScopeWrite  = "write"  // breakpoint management
)

// DefaultScopes are given to keys created without explicit scopes.
var DefaultScopes = []string{ScopeRead, ScopeIngest}

// APIKey describes a key; the key itself is never stored, only its SHA-256.
type APIKey struct {
	ID        string `db:"id" json:"id"`
	TenantID  string `db:"tenant_id" json:"tenant_id"`
	Name      string `db:"name" json:"name"`
	Prefix    string `db:"prefix" json:"prefix"`
	Hash      string `db:"hash" json:"-"`
	Scopes    string `db:"scopes" json:"scopes"`
	CreatedNS int64  `db:"created_ns" json:"created_ns"`
	RevokedNS int64  `db:"revoked_ns" json:"revoked_ns"`
}

// HasScope reports whether the key grants scope.
func (k APIKey) HasScope(scope string) bool {
	return slices.Contains(strings.Split(k.Scopes, ","), scope)
}

// HashAPIKey is the stored form of a key. Keys carry 256 random bits, so a fast hash is enough.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateAPIKey makes a new key for tenant and returns it once, in clear; only its hash is kept.
func (a *Admin) CreateAPIKey(ctx context.Context, tenant, name string, scopes []string) (string, APIKey, error) {
	db := a.db
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	for _, s := range scopes {
		if s != ScopeRead && s != ScopeIngest && s != ScopeWrite {
			return "", APIKey{}, fmt.Errorf("unknown scope %q: use %s, %s or %s", s, ScopeRead, ScopeIngest, ScopeWrite)
		}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", APIKey{}, err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k := APIKey{
		ID:        "key_" + randomToken(6),
		TenantID:  tenant,
		Name:      name,
		Prefix:    key[:len(KeyPrefix)+6],
		Hash:      HashAPIKey(key),
		Scopes:    strings.Join(scopes, ","),
		CreatedNS: time.Now().UnixNano(),
	}
	_, err := db.x.NamedExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes, created_ns)
		VALUES (:id, :tenant_id, :name, :prefix, :hash, :scopes, :created_ns)`, k)
	if err != nil {
		if strings.Contains(err.Error(), "foreign key") || strings.Contains(err.Error(), "FOREIGN KEY") {
			return "", APIKey{}, fmt.Errorf("create API key: tenant %q does not exist; create it with: tracekit tenant create %s (or a TraceKitTenant resource)", tenant, tenant)
		}
		return "", APIKey{}, fmt.Errorf("create API key for tenant %q: %w", tenant, err)
	}
	return key, k, nil
}

// LookupAPIKey finds the active key, whichever tenant it belongs to (a tenant role sees only its own
// keys). It returns ErrNotFound for unknown or revoked keys.
func (db *DB) LookupAPIKey(ctx context.Context, key string) (APIKey, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return APIKey{}, ErrNotFound
	}
	h := HashAPIKey(key)
	var k APIKey
	err := db.x.GetContext(ctx, &k, db.x.Rebind(`SELECT id, tenant_id, name, prefix, hash, scopes, created_ns, revoked_ns
		FROM api_keys WHERE hash = ? AND revoked_ns = 0`), h)
	if err != nil {
		return APIKey{}, notFound(err)
	}
	// The index lookup already matched; comparing again in constant time keeps timing independent of
	// where two hashes first differ should the lookup ever become a scan.
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return APIKey{}, ErrNotFound
	}
	return k, nil
}

// APIKeys lists the tenant's keys, newest first, revoked ones included.
func (t *Tenant) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT id, tenant_id, name, prefix, hash, scopes, created_ns, revoked_ns
		FROM api_keys WHERE tenant_id = ? ORDER BY created_ns DESC`), t.id)
	return out, err
}

// RevokeAPIKey revokes tenant's key named by its id or its displayed prefix.
func (a *Admin) RevokeAPIKey(ctx context.Context, tenant, idOrPrefix string) error {
	t := a.db.ForTenant(tenant)
	res, err := t.db.x.ExecContext(ctx, t.rebind(`UPDATE api_keys SET revoked_ns = ?
		WHERE tenant_id = ? AND (id = ? OR prefix = ?) AND revoked_ns = 0`), time.Now().UnixNano(), t.id, idOrPrefix, idOrPrefix)
	if err != nil {
		return fmt.Errorf("revoke API key: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("revoke API key %q: no active key with that id or prefix in tenant %q (see `tracekit apikey list`)", idOrPrefix, t.id)
	}
	return nil
}

// ImportAPIKey stores a key chosen elsewhere (e.g. a Kubernetes Secret the operator reads), so a
// tenant's first key needs no SQL. Importing the same key again changes nothing.
func (a *Admin) ImportAPIKey(ctx context.Context, tenant, name, key string, scopes []string) (APIKey, error) {
	db := a.db
	if !strings.HasPrefix(key, KeyPrefix) || len(key) < len(KeyPrefix)+32 {
		return APIKey{}, fmt.Errorf("import API key %q: keys start with %q and carry at least 32 random characters; create one with `tracekit apikey create`", name, KeyPrefix)
	}
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	h := HashAPIKey(key)
	k := APIKey{ID: "key_" + h[:12], TenantID: tenant, Name: name, Prefix: key[:len(KeyPrefix)+6], Hash: h,
		Scopes: strings.Join(scopes, ","), CreatedNS: time.Now().UnixNano()}
	_, err := db.x.NamedExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes, created_ns)
		VALUES (:id, :tenant_id, :name, :prefix, :hash, :scopes, :created_ns) ON CONFLICT (hash) DO NOTHING`, k)
	if err != nil {
		return APIKey{}, fmt.Errorf("import API key %q for tenant %q: %w", name, tenant, err)
	}
	return k, nil
}
