package auth

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Claims that carry a TraceKit identity through the authorization server: the API-key connector puts
// them in the token's "groups" claim, and OAuthTokens reads them back.
const (
	tenantGroupPrefix = "tenant:"
	scopeGroupPrefix  = "scope:"
)

// TenantGroup is the groups-claim entry naming the tenant whose API key signed the user in.
func TenantGroup(tenant string) string { return tenantGroupPrefix + tenant }

// ScopeGroup is the groups-claim entry granting scope.
func ScopeGroup(scope string) string { return scopeGroupPrefix + scope }

// OAuthTokens authenticates OAuth access tokens issued by the Dex-backed authorization server: JWTs
// whose issuer, signature (against the issuer's published keys), expiry, audience and tenant claim
// must all match this server. Anything else is refused, so a token obtained through another tenant's
// URL, or from another issuer, never reaches a handler.
type OAuthTokens struct {
	// Issuer is the authorization server's issuer URL, exactly as it appears in the "iss" claim.
	Issuer string
	// Audience is this tenant's client id at the authorization server; tokens must name it in "aud".
	Audience string
	// Tenant is the only tenant whose tokens are accepted.
	Tenant string
	// HTTPClient fetches the issuer's discovery document and keys; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	keysOnce sync.Once
	keys     *keySet

	mu       sync.Mutex
	verified map[[32]byte]verifiedToken // by SHA-256 of the token
}

// Leeway tolerates clock skew between the authorization server and this one.
const leeway = 30 * time.Second

type tokenClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience audience `json:"aud"`
	Expiry   int64    `json:"exp"`
	Groups   []string `json:"groups"`
	// Who signed in, when the token says (Dex adds them for the profile and email scopes).
	Email    string `json:"email"`
	Name     string `json:"name"`
	Username string `json:"preferred_username"`
}

// audience is "aud": a string or an array of strings (RFC 7519 §4.1.3).
type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = audience{one}
		return nil
	}
	var many []string
	err := json.Unmarshal(b, &many)
	*a = many
	return err
}

// Authenticate implements Authenticator. API keys are left to the API-key authenticator.
func (o *OAuthTokens) Authenticate(r *http.Request) (Principal, error) {
	token := BearerToken(r)
	if token == "" || strings.HasPrefix(token, "tk_") {
		return Principal{}, ErrNoCredentials
	}
	return o.Verify(r.Context(), token)
}

// Verify checks token and returns the caller it stands for. A token seen before skips the signature
// check until it expires: clients send the same token with every request of a session.
func (o *OAuthTokens) Verify(ctx context.Context, token string) (Principal, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	sum := sha256.Sum256([]byte(token))
	o.mu.Lock()
	v, ok := o.verified[sum]
	o.mu.Unlock()
	if !ok {
		var err error
		if v, err = o.verify(ctx, token); err != nil {
			return Principal{}, err
		}
		o.mu.Lock()
		if o.verified == nil || len(o.verified) >= maxVerifiedTokens {
			o.verified = map[[32]byte]verifiedToken{}
		}
		o.verified[sum] = v
		o.mu.Unlock()
	}
	if now().Add(-leeway).Unix() >= v.expiry {
		return Principal{}, fmt.Errorf("%w: the access token expired; refresh it or sign in again", ErrInvalidCredentials)
	}
	return v.principal, nil
}

type verifiedToken struct {
	principal Principal
	expiry    int64
}

// maxVerifiedTokens bounds the memory of verified tokens; each is a few hundred bytes.
const maxVerifiedTokens = 10000

// verify checks everything about token but its expiry.
func (o *OAuthTokens) verify(ctx context.Context, token string) (verifiedToken, error) {
	payload, err := o.verifySignature(ctx, token)
	if err != nil {
		return verifiedToken{}, err
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return verifiedToken{}, fmt.Errorf("%w: the access token's claims are malformed", ErrInvalidCredentials)
	}
	switch {
	case c.Issuer != o.Issuer:
		return verifiedToken{}, fmt.Errorf("%w: the access token was issued by %q, not by this TraceKit's authorization server", ErrInvalidCredentials, c.Issuer)
	case !slices.Contains(c.Audience, o.Audience) || !slices.Contains(c.Groups, TenantGroup(o.Tenant)):
		return verifiedToken{}, fmt.Errorf("%w: the access token was issued for another TraceKit tenant; sign in through this tenant's MCP URL", ErrInvalidCredentials)
	}
	p := Principal{TenantID: o.Tenant, Subject: c.Subject, Method: "oauth", Name: cmp.Or(c.Email, c.Name, c.Username)}
	for _, g := range c.Groups {
		if s, ok := strings.CutPrefix(g, scopeGroupPrefix); ok {
			p.Scopes = append(p.Scopes, s)
		}
		if id, ok := strings.CutPrefix(g, toolGroupPrefix); ok {
			p.ToolGroups = append(p.ToolGroups, id)
		}
		if u, ok := strings.CutPrefix(g, userGroupPrefix); ok {
			p.User = u
		}
		if v, ok := strings.CutPrefix(g, viaGroupPrefix); ok {
			p.IdPGroups = append(p.IdPGroups, v)
		}
	}
	return verifiedToken{principal: p, expiry: c.Expiry}, nil
}

var errNotAToken = fmt.Errorf("%w: the bearer token is neither a TraceKit API key nor an access token from this TraceKit's sign-in", ErrInvalidCredentials)

// verifySignature checks a compact JWS signed with RS256 or ES256 (what Dex signs with) and returns
// its payload. Written against crypto/rsa and crypto/ecdsa directly: a general JOSE parser costs more
// than the signature check itself.
func (o *OAuthTokens) verifySignature(ctx context.Context, token string) ([]byte, error) {
	head, rest, ok1 := strings.Cut(token, ".")
	body, sig64, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig64, ".") {
		return nil, errNotAToken
	}
	var h struct {
		Alg  string   `json:"alg"`
		Kid  string   `json:"kid"`
		Crit []string `json:"crit"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(head)
	if err != nil || json.Unmarshal(hb, &h) != nil || len(h.Crit) > 0 || (h.Alg != "RS256" && h.Alg != "ES256") {
		return nil, errNotAToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil {
		return nil, errNotAToken
	}
	key, err := o.keySet().key(ctx, h.Kid)
	if err != nil {
		return nil, err
	}
	digest := sha256.Sum256([]byte(token[:len(head)+1+len(body)]))
	valid := false
	switch pub := key.Key.(type) {
	case *rsa.PublicKey:
		valid = h.Alg == "RS256" && rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil
	case *ecdsa.PublicKey:
		valid = h.Alg == "ES256" && pub.Curve == elliptic.P256() && len(sig) == 64 &&
			ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	}
	if !valid {
		return nil, fmt.Errorf("%w: the access token's signature does not verify; sign in again", ErrInvalidCredentials)
	}
	payload, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, fmt.Errorf("%w: the access token's claims are malformed", ErrInvalidCredentials)
	}
	return payload, nil
}

func (o *OAuthTokens) keySet() *keySet {
	o.keysOnce.Do(func() {
		c := o.HTTPClient
		if c == nil {
			c = &http.Client{Timeout: 10 * time.Second}
		}
		o.keys = &keySet{issuer: o.Issuer, client: c}
	})
	return o.keys
}

// keySet caches the issuer's signing keys. It refetches when a token names an unknown key (Dex rotates
// its keys every few hours), at most once per minRefetch so forged key ids cannot turn every request
// into a fetch, and when the set is older than maxKeyAge so that withdrawn keys stop verifying.
type keySet struct {
	issuer string
	client *http.Client

	mu      sync.RWMutex
	keys    map[string]*jose.JSONWebKey
	fetched time.Time

	fetchMu sync.Mutex // one fetch at a time
}

const (
	minRefetch = 10 * time.Second
	maxKeyAge  = 15 * time.Minute
)

func (k *keySet) key(ctx context.Context, kid string) (*jose.JSONWebKey, error) {
	k.mu.RLock()
	key, fetched := k.keys[kid], k.fetched
	k.mu.RUnlock()
	if key != nil && time.Since(fetched) < maxKeyAge {
		return key, nil
	}
	if err := k.refresh(ctx, fetched); err != nil && key == nil {
		return nil, err
	}
	k.mu.RLock()
	defer k.mu.RUnlock()
	if key := k.keys[kid]; key != nil {
		return key, nil
	}
	return nil, fmt.Errorf("%w: the access token was signed with a key this TraceKit's authorization server does not publish", ErrInvalidCredentials)
}

// refresh fetches the keys unless another caller did since seen, or the last fetch is too recent.
func (k *keySet) refresh(ctx context.Context, seen time.Time) error {
	k.fetchMu.Lock()
	defer k.fetchMu.Unlock()
	k.mu.RLock()
	last := k.fetched
	k.mu.RUnlock()
	if last.After(seen) || (!last.IsZero() && time.Since(last) < minRefetch) {
		return nil
	}
	keys, err := k.fetch(ctx)
	if err != nil {
		// Not an invalid token: the authorization server is unreachable. Callers answer 503.
		return fmt.Errorf("fetch the authorization server's signing keys: %w", err)
	}
	k.mu.Lock()
	k.keys, k.fetched = keys, time.Now()
	k.mu.Unlock()
	return nil
}

func (k *keySet) fetch(ctx context.Context) (map[string]*jose.JSONWebKey, error) {
	var disc struct {
		JWKSURI string `json:"jwks_uri"`
	}
	if err := getJSON(ctx, k.client, strings.TrimSuffix(k.issuer, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return nil, err
	}
	if disc.JWKSURI == "" {
		return nil, errors.New("the issuer's discovery document has no jwks_uri")
	}
	var set jose.JSONWebKeySet
	if err := getJSON(ctx, k.client, disc.JWKSURI, &set); err != nil {
		return nil, err
	}
	keys := make(map[string]*jose.JSONWebKey, len(set.Keys))
	for i := range set.Keys {
		if set.Keys[i].Valid() && set.Keys[i].IsPublic() {
			keys[set.Keys[i].KeyID] = &set.Keys[i]
		}
	}
	return keys, nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	res, err := c.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, res.Status)
	}
	return json.NewDecoder(io.LimitReader(res.Body, 1<<20)).Decode(v)
}
