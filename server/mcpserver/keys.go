package mcpserver

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"sync"

	"github.com/tracekit/tracekit/server/store"
)

// tenantKeys are derived from the tenant's secret (store.Tenant.Secret), so every replica of the
// tenant's server holds the same ones without configuration, and no tenant's keys open another's
// cursors or ids.
type tenantKeys struct {
	// cursors seals next_cursor: a cursor cannot be read (positions hold internal ids) nor altered
	// (its window is the first page's, checked then).
	cursors cipher.AEAD
	// ids encrypts row ids (anomalies, snapshots, LLM calls, alerts), which come from sequences
	// shared by all tenants, into opaque ones.
	ids cipher.Block
}

func deriveKeys(secret []byte) *tenantKeys {
	sub := func(label string) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(label))
		return m.Sum(nil)
	}
	cb, err := aes.NewCipher(sub("tracekit mcp cursors"))
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	aead, err := cipher.NewGCM(cb)
	if err != nil {
		panic(err)
	}
	ids, err := aes.NewCipher(sub("tracekit mcp anomaly ids"))
	if err != nil {
		panic(err)
	}
	return &tenantKeys{cursors: aead, ids: ids}
}

// keyring caches each tenant's keys: the secret never changes, so it is read once per process.
type keyring struct {
	mu   sync.Mutex
	keys map[string]*tenantKeys
}

func (r *keyring) forTenant(ctx context.Context, tn *store.Tenant) (*tenantKeys, error) {
	r.mu.Lock()
	k := r.keys[tn.ID()]
	r.mu.Unlock()
	if k != nil {
		return k, nil
	}
	secret, err := tn.Secret(ctx)
	if err != nil {
		return nil, err
	}
	k = deriveKeys(secret)
	r.mu.Lock()
	if r.keys == nil {
		r.keys = map[string]*tenantKeys{}
	}
	r.keys[tn.ID()] = k
	r.mu.Unlock()
	return k, nil
}

type keysKey struct{}

func withKeys(ctx context.Context, k *tenantKeys) context.Context {
	return context.WithValue(ctx, keysKey{}, k)
}

// keysOf returns the calling tenant's keys, which addTool puts in every tool call's context.
func keysOf(ctx context.Context) *tenantKeys {
	return ctx.Value(keysKey{}).(*tenantKeys)
}

// seal encrypts and authenticates b into a URL-safe string.
func (k *tenantKeys) seal(b []byte) string {
	nonce := make([]byte, k.cursors.NonceSize(), k.cursors.NonceSize()+len(b)+k.cursors.Overhead())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(k.cursors.Seal(nonce, nonce, b, nil))
}

// open returns what seal sealed, or false for anything else.
func (k *tenantKeys) open(s string) ([]byte, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < k.cursors.NonceSize() {
		return nil, false
	}
	n := k.cursors.NonceSize()
	out, err := k.cursors.Open(nil, b[:n], b[n:], nil)
	return out, err == nil
}

// Kinds of row ids: the tables number their rows with one sequence for all tenants.
const (
	kindAnomaly  byte = 'a'
	kindSnapshot byte = 's'
	kindLLMCall  byte = 'l'
	kindAlert    byte = 'f'
)

// ref is the opaque id of row id of a kind: one AES block holding the id, the kind and seven zero
// bytes, which parseRef checks, so a made-up id, another kind's or another tenant's is refused.
func (k *tenantKeys) ref(kind byte, id int64) string {
	var block [aes.BlockSize]byte
	binary.BigEndian.PutUint64(block[:8], uint64(id))
	block[8] = kind
	k.ids.Encrypt(block[:], block[:])
	return base64.RawURLEncoding.EncodeToString(block[:])
}

func (k *tenantKeys) parseRef(kind byte, ref string) (int64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(ref)
	if err != nil || len(b) != aes.BlockSize {
		return 0, false
	}
	k.ids.Decrypt(b, b)
	if b[8] != kind || binary.BigEndian.Uint64(b[8:])&0x00ffffffffffffff != 0 {
		return 0, false
	}
	id := int64(binary.BigEndian.Uint64(b[:8]))
	return id, id > 0
}

func (k *tenantKeys) anomalyRef(id int64) string { return k.ref(kindAnomaly, id) }

func (k *tenantKeys) parseAnomalyRef(ref string) (int64, bool) { return k.parseRef(kindAnomaly, ref) }

// AnomalyRef returns the id under which the MCP tools show the tenant's anomaly id, for other views
// that link to get_rca and for tests.
func AnomalyRef(ctx context.Context, tn *store.Tenant, id int64) (string, error) {
	secret, err := tn.Secret(ctx)
	if err != nil {
		return "", err
	}
	return deriveKeys(secret).anomalyRef(id), nil
}
