package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
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
	// ExpiresNS is when the key stops working; 0 means never.
	ExpiresNS int64 `db:"expires_ns" json:"expires_ns"`
	// ToolGroups limits the MCP tools the key may call (comma-separated tool group ids); "" means all.
	ToolGroups string `db:"tool_groups" json:"tool_groups"`
	// CreatedBy names who created the key on the keys page ("" for the CLI and the operator).
	CreatedBy  string `db:"created_by" json:"created_by"`
	LastUsedNS int64  `db:"last_used_ns" json:"last_used_ns"`
}

// HasScope reports whether the key grants scope.
func (k APIKey) HasScope(scope string) bool {
	return slices.Contains(strings.Split(k.Scopes, ","), scope)
}

// Expired reports whether the key has passed its expiry at now.
func (k APIKey) Expired(now time.Time) bool { return k.ExpiresNS != 0 && now.UnixNano() >= k.ExpiresNS }

// Errors of LookupAPIKey for a key that exists but may no longer be used; both wrap ErrNotFound, so
// callers that only tell usable keys from others need not know them.
var (
	ErrKeyRevoked = fmt.Errorf("%w: the API key was revoked", ErrNotFound)
	ErrKeyExpired = fmt.Errorf("%w: the API key expired", ErrNotFound)
)

// MaxKeyNameLen bounds a key's name, shown in lists and the audit trail.
const MaxKeyNameLen = 100

// NewAPIKey is what a new key is made of.
type NewAPIKey struct {
	Name string
	// Scopes default to DefaultScopes.
	Scopes []string
	// ToolGroups limit the MCP tools the key may call; nil means all.
	ToolGroups []string
	// Expires is when the key stops working; zero means never.
	Expires   time.Time
	CreatedBy string
}

// HashAPIKey is the stored form of a key. Keys carry 256 random bits, so a fast hash is enough.
func HashAPIKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:])
}

// CreateAPIKey makes a new key for tenant and returns it once, in clear; only its hash is kept.
func (a *Admin) CreateAPIKey(ctx context.Context, tenant, name string, scopes []string) (string, APIKey, error) {
	return a.db.ForTenant(tenant).CreateAPIKey(ctx, NewAPIKey{Name: name, Scopes: scopes})
}

// CreateAPIKey makes a new key for the tenant and returns it once, in clear; only its hash is kept.
// A tenant's own role may do this for its own rows (the keys page); RLS keeps it to them.
func (t *Tenant) CreateAPIKey(ctx context.Context, n NewAPIKey) (string, APIKey, error) {
	scopes := n.Scopes
	if len(scopes) == 0 {
		scopes = DefaultScopes
	}
	for _, s := range scopes {
		if s != ScopeRead && s != ScopeIngest && s != ScopeWrite {
			return "", APIKey{}, fmt.Errorf("unknown scope %q: use %s, %s or %s", s, ScopeRead, ScopeIngest, ScopeWrite)
		}
	}
	if len(n.Name) > MaxKeyNameLen {
		return "", APIKey{}, fmt.Errorf("the key's name is %d characters long; keep it to %d", len(n.Name), MaxKeyNameLen)
	}
	if !n.Expires.IsZero() && !n.Expires.After(time.Now()) {
		return "", APIKey{}, fmt.Errorf("the expiry %s is in the past; choose a later date", n.Expires.UTC().Format(time.RFC3339))
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", APIKey{}, err
	}
	key := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw)
	k := APIKey{
		ID:         "key_" + randomToken(6),
		TenantID:   t.id,
		Name:       n.Name,
		Prefix:     key[:len(KeyPrefix)+6],
		Hash:       HashAPIKey(key),
		Scopes:     strings.Join(scopes, ","),
		CreatedNS:  time.Now().UnixNano(),
		ToolGroups: strings.Join(n.ToolGroups, ","),
		CreatedBy:  n.CreatedBy,
	}
	if !n.Expires.IsZero() {
		k.ExpiresNS = n.Expires.UnixNano()
	}
	_, err := t.db.x.NamedExecContext(ctx, `INSERT INTO api_keys (id, tenant_id, name, prefix, hash, scopes, created_ns, expires_ns, tool_groups, created_by)
		VALUES (:id, :tenant_id, :name, :prefix, :hash, :scopes, :created_ns, :expires_ns, :tool_groups, :created_by)`, k)
	if err != nil {
		if strings.Contains(err.Error(), "foreign key") || strings.Contains(err.Error(), "FOREIGN KEY") {
			return "", APIKey{}, fmt.Errorf("create API key: tenant %q does not exist; create it with: tracekit tenant create %s (or a TraceKitTenant resource)", t.id, t.id)
		}
		return "", APIKey{}, fmt.Errorf("create API key for tenant %q: %w", t.id, err)
	}
	return key, k, nil
}

const keyColumns = `id, tenant_id, name, prefix, hash, scopes, created_ns, revoked_ns, expires_ns, tool_groups, created_by, last_used_ns`

// LookupAPIKey finds the key, whichever tenant it belongs to (a tenant role sees only its own keys).
// It returns ErrNotFound for unknown keys, and the key with ErrKeyRevoked or ErrKeyExpired for one
// that may no longer be used, so that callers can say which.
func (db *DB) LookupAPIKey(ctx context.Context, key string) (APIKey, error) {
	if !strings.HasPrefix(key, KeyPrefix) {
		return APIKey{}, ErrNotFound
	}
	h := HashAPIKey(key)
	var k APIKey
	err := db.x.GetContext(ctx, &k, db.x.Rebind(`SELECT `+keyColumns+` FROM api_keys WHERE hash = ?`), h)
	if err != nil {
		return APIKey{}, notFound(err)
	}
	// The index lookup already matched; comparing again in constant time keeps timing independent of
	// where two hashes first differ should the lookup ever become a scan.
	if subtle.ConstantTimeCompare([]byte(k.Hash), []byte(h)) != 1 {
		return APIKey{}, ErrNotFound
	}
	switch {
	case k.RevokedNS != 0:
		return k, ErrKeyRevoked
	case k.Expired(time.Now()):
		return k, ErrKeyExpired
	}
	return k, nil
}

// lastUseGrain is how stale a key's last use may be before a use writes it again: one write per key
// per minute at most, whatever the request rate.
const lastUseGrain = time.Minute

// TouchAPIKey records that the key was used at now.
func (db *DB) TouchAPIKey(ctx context.Context, id string, now time.Time) error {
	_, err := db.x.ExecContext(ctx, db.x.Rebind(`UPDATE api_keys SET last_used_ns = ? WHERE id = ? AND last_used_ns < ?`),
		now.UnixNano(), id, now.Add(-lastUseGrain).UnixNano())
	return err
}

// APIKeys lists the tenant's keys, newest first, revoked ones included.
func (t *Tenant) APIKeys(ctx context.Context) ([]APIKey, error) {
	var out []APIKey
	err := t.db.x.SelectContext(ctx, &out, t.rebind(`SELECT `+keyColumns+`
		FROM api_keys WHERE tenant_id = ? ORDER BY created_ns DESC`), t.id)
	return out, err
}

// RevokeAPIKey revokes tenant's key named by its id or its displayed prefix.
func (a *Admin) RevokeAPIKey(ctx context.Context, tenant, idOrPrefix string) error {
	_, err := a.db.ForTenant(tenant).RevokeAPIKey(ctx, idOrPrefix)
	return err
}

// RevokeAPIKey revokes the tenant's active key named by its id or its displayed prefix and returns it.
func (t *Tenant) RevokeAPIKey(ctx context.Context, idOrPrefix string) (APIKey, error) {
	var k APIKey
	err := t.db.x.GetContext(ctx, &k, t.rebind(`SELECT `+keyColumns+` FROM api_keys
		WHERE tenant_id = ? AND (id = ? OR prefix = ?) AND revoked_ns = 0`), t.id, idOrPrefix, idOrPrefix)
	if err == nil {
		k.RevokedNS = time.Now().UnixNano()
		res, e := t.db.x.ExecContext(ctx, t.rebind(`UPDATE api_keys SET revoked_ns = ? WHERE tenant_id = ? AND id = ? AND revoked_ns = 0`), k.RevokedNS, t.id, k.ID)
		if e != nil {
			return APIKey{}, fmt.Errorf("revoke API key: %w", e)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			err = sql.ErrNoRows // revoked by someone else in between
		}
	}
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fmt.Errorf("revoke API key %q: no active key with that id or prefix in tenant %q (see `tracekit apikey list`)", idOrPrefix, t.id)
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("revoke API key: %w", err)
	}
	return k, nil
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
