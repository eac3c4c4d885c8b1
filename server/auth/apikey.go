package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/tracekit/tracekit/server/store"
)

// APIKeys authenticates TraceKit API keys sent as 'Authorization: Bearer <key>' or 'X-API-Key'. It is
// the method for headless agents, scripts, OTLP exporters and tests.
type APIKeys struct {
	DB *store.DB
	// Tenant, when set, accepts only that tenant's keys (a tenant's own server).
	Tenant string
	// TTL bounds how long a verified key is trusted from memory, hence how long a revocation takes
	// to reach a running server. Zero means 30 seconds.
	TTL time.Duration
	// KeysPage is where the tenant's members create keys (<public URL>/keys), named in the refusal
	// of an expired or revoked key; empty names only the CLI.
	KeysPage string

	mu    sync.Mutex
	cache map[string]cachedKey // by key hash
}

type cachedKey struct {
	key     store.APIKey
	err     error
	expires time.Time
}

// maxCachedKeys bounds memory against a flood of random keys.
const maxCachedKeys = 10000

// Authenticate implements Authenticator.
func (a *APIKeys) Authenticate(r *http.Request) (Principal, error) {
	key := r.Header.Get("X-API-Key")
	if key == "" {
		key = BearerToken(r)
	}
	if key == "" {
		return Principal{}, ErrNoCredentials
	}
	if !strings.HasPrefix(key, store.KeyPrefix) {
		// Not ours (e.g. an OAuth access token): let another authenticator in the chain decide.
		return Principal{}, ErrNoCredentials
	}
	k, err := a.lookup(r.Context(), key)
	if err != nil {
		return Principal{}, err
	}
	name := k.Prefix + "…"
	if k.Name != "" {
		name = k.Name + ", " + name
	}
	p := Principal{TenantID: k.TenantID, Subject: k.ID, Scopes: strings.Split(k.Scopes, ","), Method: "api_key", Name: name}
	if k.ToolGroups != "" {
		p.ToolGroups = strings.Split(k.ToolGroups, ",")
	}
	return p, nil
}

func (a *APIKeys) lookup(ctx context.Context, key string) (store.APIKey, error) {
	h := store.HashAPIKey(key)
	now := time.Now()
	a.mu.Lock()
	c, ok := a.cache[h]
	a.mu.Unlock()
	if ok && now.Before(c.expires) {
		if c.err == nil && c.key.Expired(now) {
			return c.key, a.expiredError(c.key)
		}
		return c.key, c.err
	}
	k, err := a.DB.LookupAPIKey(ctx, key)
	switch {
	case errors.Is(err, store.ErrKeyExpired) && (a.Tenant == "" || k.TenantID == a.Tenant):
		err = a.expiredError(k)
	case errors.Is(err, store.ErrKeyRevoked) && (a.Tenant == "" || k.TenantID == a.Tenant):
		err = fmt.Errorf("%w: this API key (%s…) was revoked on %s; %s", ErrInvalidCredentials, k.Prefix,
			time.Unix(0, k.RevokedNS).UTC().Format(time.RFC3339), a.newKeyHint())
	case errors.Is(err, store.ErrNotFound):
		err = fmt.Errorf("%w: this API key is unknown or revoked; create one with 'tracekit apikey create'", ErrInvalidCredentials)
	case err != nil:
		return store.APIKey{}, &UnavailableError{Cause: err} // not cached: the database may be back soon
	case a.Tenant != "" && k.TenantID != a.Tenant:
		err = fmt.Errorf("%w: this API key belongs to another tenant", ErrInvalidCredentials)
	default:
		// At most one write per key per TTL and replica; a failure only leaves "last used" stale.
		_ = a.DB.TouchAPIKey(ctx, k.ID, now)
	}
	ttl := a.TTL
	if ttl == 0 {
		ttl = 30 * time.Second
	}
	a.mu.Lock()
	if a.cache == nil || len(a.cache) >= maxCachedKeys {
		a.cache = map[string]cachedKey{}
	}
	a.cache[h] = cachedKey{key: k, err: err, expires: now.Add(ttl)}
	a.mu.Unlock()
	return k, err
}

// expiredError is the refusal of an expired key.
func (a *APIKeys) expiredError(k store.APIKey) error {
	return fmt.Errorf("%w: this API key (%s…) expired on %s; %s", ErrInvalidCredentials, k.Prefix,
		time.Unix(0, k.ExpiresNS).UTC().Format(time.RFC3339), a.newKeyHint())
}

func (a *APIKeys) newKeyHint() string {
	if a.KeysPage != "" {
		return "create a new one at " + a.KeysPage + " or with 'tracekit apikey create'"
	}
	return "create a new one with 'tracekit apikey create'"
}
