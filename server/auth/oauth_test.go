package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// issuer is a stand-in authorization server: it publishes its keys the way Dex does and signs tokens.
type issuer struct {
	srv        *httptest.Server
	keys       []*rsa.PrivateKey // published; keys[0] signs
	keyFetches atomic.Int32
}

func newIssuer(t testing.TB) *issuer {
	is := &issuer{}
	is.rotate(t)
	mux := http.NewServeMux()
	mux.HandleFunc("/dex/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": is.srv.URL + "/dex", "jwks_uri": is.srv.URL + "/dex/keys"})
	})
	mux.HandleFunc("/dex/keys", func(w http.ResponseWriter, r *http.Request) {
		is.keyFetches.Add(1)
		var set jose.JSONWebKeySet
		for _, k := range is.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: kid(k), Algorithm: "RS256", Use: "sig"})
		}
		json.NewEncoder(w).Encode(set)
	})
	is.srv = httptest.NewServer(mux)
	t.Cleanup(is.srv.Close)
	return is
}

func kid(k *rsa.PrivateKey) string { return k.N.Text(36)[:12] }

func (is *issuer) url() string { return is.srv.URL + "/dex" }

// rotate makes a new signing key and keeps the old ones published, as Dex does.
func (is *issuer) rotate(t testing.TB) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	is.keys = append([]*rsa.PrivateKey{k}, is.keys...)
}

func (is *issuer) sign(t testing.TB, key *rsa.PrivateKey, claims map[string]any) string {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithHeader("kid", kid(key)))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func (is *issuer) claims(mod func(map[string]any)) map[string]any {
	c := map[string]any{
		"iss":    is.url(),
		"sub":    "CgdrZXlfYWJjEgh0cmFjZWtpdA",
		"aud":    []string{"mcp-client-1", "tenant-acme"},
		"azp":    "mcp-client-1",
		"exp":    time.Now().Add(15 * time.Minute).Unix(),
		"iat":    time.Now().Unix(),
		"groups": []string{TenantGroup("acme"), ScopeGroup("read")},
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func (is *issuer) verifier() *OAuthTokens {
	return &OAuthTokens{Issuer: is.url(), Audience: "tenant-acme", Tenant: "acme"}
}

func bearer(token string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/mcp", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	return r
}

func TestOAuthTokens_AcceptsATokenForThisTenant(t *testing.T) {
	is := newIssuer(t)
	p, err := is.verifier().Authenticate(bearer(is.sign(t, is.keys[0], is.claims(nil))))
	if err != nil {
		t.Fatal(err)
	}
	if p.TenantID != "acme" || p.Method != "oauth" || !p.HasScope("read") || p.HasScope("ingest") || p.Subject == "" {
		t.Fatalf("principal %+v", p)
	}
}

func TestOAuthTokens_RefusesBadTokens(t *testing.T) {
	is := newIssuer(t)
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := is.sign(t, is.keys[0], is.claims(nil))
	parts := strings.Split(valid, ".")
	otherPayload := strings.Split(is.sign(t, is.keys[0], is.claims(func(c map[string]any) { c["groups"] = []string{TenantGroup("acme"), ScopeGroup("write")} })), ".")[1]

	cases := []struct {
		name, token, want string
	}{
		{"expired", is.sign(t, is.keys[0], is.claims(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "expired"},
		{"other issuer", is.sign(t, is.keys[0], is.claims(func(c map[string]any) { c["iss"] = "https://auth.elsewhere.example" })), "issued by"},
		{"other tenant's audience", is.sign(t, is.keys[0], is.claims(func(c map[string]any) { c["aud"] = "tenant-globex" })), "another TraceKit tenant"},
		{"other tenant's key", is.sign(t, is.keys[0], is.claims(func(c map[string]any) { c["groups"] = []string{TenantGroup("globex")} })), "another TraceKit tenant"},
		{"tampered payload", parts[0] + "." + otherPayload + "." + parts[2], "signature"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + strings.Repeat("A", len(parts[2])), "signature"},
		{"signed by an unpublished key", is.sign(t, other, is.claims(nil)), "does not publish"},
		{"not a JWT", "opaque-token", "neither"},
		{"alg none", "eyJhbGciOiJub25lIn0." + parts[1] + ".", "neither"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := is.verifier().Authenticate(bearer(tc.token))
			if !errors.Is(err, ErrInvalidCredentials) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want invalid credentials mentioning %q", err, tc.want)
			}
		})
	}
}

func TestOAuthTokens_LeavesAPIKeysAndMissingTokensToOthers(t *testing.T) {
	is := newIssuer(t)
	for _, r := range []*http.Request{bearer("tk_abc"), httptest.NewRequest(http.MethodGet, "/mcp", nil)} {
		if _, err := is.verifier().Authenticate(r); !errors.Is(err, ErrNoCredentials) {
			t.Fatalf("got %v, want ErrNoCredentials", err)
		}
	}
}

func TestOAuthTokens_FollowsKeyRotationButThrottlesUnknownKeys(t *testing.T) {
	is := newIssuer(t)
	v := is.verifier()
	if _, err := v.Authenticate(bearer(is.sign(t, is.keys[0], is.claims(nil)))); err != nil {
		t.Fatal(err)
	}
	// A forged key id right after a fetch does not cause another fetch.
	forged, _ := rsa.GenerateKey(rand.Reader, 2048)
	for range 5 {
		if _, err := v.Authenticate(bearer(is.sign(t, forged, is.claims(nil)))); !errors.Is(err, ErrInvalidCredentials) {
			t.Fatalf("forged key: %v", err)
		}
	}
	if n := is.keyFetches.Load(); n != 1 {
		t.Fatalf("%d key fetches, want 1", n)
	}
	// After a rotation, the new key is fetched once the throttle allows it.
	is.rotate(t)
	v.keySet().mu.Lock()
	v.keySet().fetched = time.Now().Add(-minRefetch)
	v.keySet().mu.Unlock()
	if _, err := v.Authenticate(bearer(is.sign(t, is.keys[0], is.claims(nil)))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	if n := is.keyFetches.Load(); n != 2 {
		t.Fatalf("%d key fetches, want 2", n)
	}
}

func TestOAuthTokens_UnreachableIssuerIsNotAnInvalidToken(t *testing.T) {
	is := newIssuer(t)
	token := is.sign(t, is.keys[0], is.claims(nil))
	is.srv.Close()
	_, err := is.verifier().Verify(context.Background(), token)
	if err == nil || errors.Is(err, ErrInvalidCredentials) {
		t.Fatalf("got %v, want an availability error", err)
	}
}

// BenchmarkOAuthTokens_Verify measures what bearer verification adds to a request once the issuer's
// keys are cached (budget: 100 µs, docs/benchmarks.md): the first use of a token (parse, RS256
// signature, claims) and every later request of the session carrying the same token.
func BenchmarkOAuthTokens_Verify(b *testing.B) {
	is := newIssuer(b)
	v := is.verifier()
	token := is.sign(b, is.keys[0], is.claims(nil))
	r := bearer(token)
	if _, err := v.Authenticate(r); err != nil {
		b.Fatal(err)
	}
	b.Run("first-use", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.verify(r.Context(), token); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("repeat", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Authenticate(r); err != nil {
				b.Fatal(err)
			}
		}
	})
}
