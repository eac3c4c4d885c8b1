package oauth

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
)

func TestCheckRedirectURI_AllowsWhatRealClientsRegister(t *testing.T) {
	ok := []string{
		"https://claude.ai/api/mcp/auth_callback",
		"http://localhost:33418/callback",
		"http://127.0.0.1:6274/oauth/callback",
		"http://[::1]:8080/cb",
		"cursor://anysphere.cursor-retrieval/oauth/user-tracekit/callback",
		"vscode://ms-vscode.vscode-mcp/oauth",
		"com.example.app:/oauth2redirect",
	}
	for _, u := range ok {
		if err := checkRedirectURI(u); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	bad := map[string]string{
		"http://evil.example/cb":          "loopback",
		"https://claude.ai/cb#frag":       "fragment",
		"javascript:alert(1)":             "scheme",
		"data:text/html,hi":               "scheme",
		"/relative/callback":              "absolute",
		"https:///nohost":                 "no host",
		"http://127.0.0.1.evil.example/x": "loopback",
	}
	for u, want := range bad {
		if err := checkRedirectURI(u); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want an error mentioning %q", u, err, want)
		}
	}
}

func TestRedirectAllowed_LoopbackPortMayVaryNothingElse(t *testing.T) {
	reg := []string{"http://127.0.0.1:5000/callback", "https://app.example.com/cb", "cursor://x/cb"}
	cases := map[string]bool{
		"http://127.0.0.1:5000/callback":  true,
		"http://127.0.0.1:61234/callback": true,  // RFC 8252 §7.3
		"http://127.0.0.1/callback":       true,  // no port at all
		"http://localhost:5000/callback":  false, // another host
		"http://127.0.0.1:5000/other":     false,
		"http://127.0.0.1:5000/callback?": true,
		"https://app.example.com/cb":      true,
		"https://app.example.com:444/cb":  false, // not loopback: exact match only
		"https://app.example.com/cb/":     false,
		"cursor://x/cb":                   true,
		"cursor://x/cb2":                  false,
	}
	for uri, want := range cases {
		if got := redirectAllowed(reg, uri); got != want {
			t.Errorf("%s: allowed=%v, want %v", uri, got, want)
		}
	}
}

func TestValidateMetadata_DefaultsAndRFC7591Errors(t *testing.T) {
	md := clientMetadata{RedirectURIs: []string{"http://127.0.0.1:1/cb"}, GrantTypes: []string{"authorization_code"}}
	if code, desc := validateMetadata(&md); code != "" {
		t.Fatalf("authorization_code alone must register: %s %s", code, desc)
	}
	if md.TokenEndpointAuthMethod != "none" || md.ResponseTypes[0] != "code" || md.Scope != "read" {
		t.Fatalf("defaults not filled: %+v", md)
	}
	cases := []struct {
		md   clientMetadata
		code string
	}{
		{clientMetadata{}, "invalid_redirect_uri"},
		{clientMetadata{RedirectURIs: []string{"http://example.com/cb"}}, "invalid_redirect_uri"},
		{clientMetadata{RedirectURIs: []string{"https://a.example/cb"}, TokenEndpointAuthMethod: "private_key_jwt"}, "invalid_client_metadata"},
		{clientMetadata{RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"implicit"}}, "invalid_client_metadata"},
		{clientMetadata{RedirectURIs: []string{"https://a.example/cb"}, GrantTypes: []string{"refresh_token"}}, "invalid_client_metadata"},
		{clientMetadata{RedirectURIs: []string{"https://a.example/cb"}, ResponseTypes: []string{"token"}}, "invalid_client_metadata"},
		{clientMetadata{RedirectURIs: []string{"https://a.example/cb"}, LogoURI: "javascript:alert(1)"}, "invalid_client_metadata"},
	}
	for _, tc := range cases {
		if code, _ := validateMetadata(&tc.md); code != tc.code {
			t.Errorf("%+v: got %q, want %q", tc.md, code, tc.code)
		}
	}
}

func TestSealer_BindsKindAndExpires(t *testing.T) {
	s, err := newSealer("secret")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	v := s.seal(kindCode, grant{ClientID: "c", DexCode: "d"}, time.Minute, now)
	if g, err := s.open(kindCode, v, now); err != nil || g.ClientID != "c" || g.DexCode != "d" {
		t.Fatalf("open: %+v %v", g, err)
	}
	if _, err := s.open(kindState, v, now); err == nil {
		t.Fatal("a code opened as a state")
	}
	if _, err := s.open(kindCode, v, now.Add(time.Minute)); err == nil {
		t.Fatal("an expired code opened")
	}
	other, _ := newSealer("another tenant's secret")
	if _, err := other.open(kindCode, v, now); err == nil {
		t.Fatal("another key opened the code")
	}
}

func TestClientIP_TrustsForwardedForOnlyFromPrivatePeers(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("X-Forwarded-For", "198.51.100.7, 203.0.113.9")
	r.RemoteAddr = "10.0.0.5:4000"
	if got := ClientIP(r); got != "203.0.113.9" {
		t.Fatalf("behind a proxy: %s", got)
	}
	r.RemoteAddr = "192.0.2.1:4000"
	if got := ClientIP(r); got != "192.0.2.1" {
		t.Fatalf("direct: %s", got)
	}
}

func TestKeyedLimiter_SeparateBucketsPerKey(t *testing.T) {
	l := &KeyedLimiter{Every: time.Hour, Burst: 2}
	for range 2 {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatal("within burst")
		}
	}
	if ok, wait := l.Allow("a"); ok || wait < 59*time.Minute {
		t.Fatalf("over burst: ok=%v wait=%s", ok, wait)
	}
	if blocked, _ := l.Exhausted("b"); blocked {
		t.Fatal("another key is not limited")
	}
}

// stubRegistrar keeps clients in memory.
type stubRegistrar struct{ clients map[string]Client }

func (s *stubRegistrar) RegisterClient(_ context.Context, c Client) (Client, error) {
	c.ID = "client-" + string(rune('a'+len(s.clients)))
	s.clients[c.ID] = c
	return c, nil
}

func (s *stubRegistrar) Client(_ context.Context, id string) (Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return Client{}, ErrUnknownClient
	}
	return c, nil
}

func newTestFacade(t *testing.T, publicURL string) (*Facade, http.Handler) {
	f, err := New(Config{PublicURL: publicURL, Tenant: "acme", Issuer: "https://auth.example.com/dex",
		ClientID: "tenant-acme", ClientSecret: "s", Registrar: &stubRegistrar{clients: map[string]Client{}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	f.Register(r)
	return f, r
}

func get(t *testing.T, h http.Handler, method, path string, body string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestMetadata_PathInsertedFormsForATenantWithAPath(t *testing.T) {
	_, h := newTestFacade(t, "https://tk.example.com/t/acme")
	for _, p := range []string{"/.well-known/oauth-protected-resource/t/acme/mcp", "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		w := get(t, h, http.MethodGet, p, "")
		var prm struct {
			Resource             string   `json:"resource"`
			AuthorizationServers []string `json:"authorization_servers"`
		}
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &prm) != nil {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
		if prm.Resource != "https://tk.example.com/t/acme/mcp" || prm.AuthorizationServers[0] != "https://tk.example.com/t/acme" {
			t.Fatalf("%s: %+v", p, prm)
		}
		if w.Header().Get("Access-Control-Allow-Origin") != "*" {
			t.Fatalf("%s: no CORS", p)
		}
	}
	for _, p := range []string{"/.well-known/oauth-authorization-server/t/acme", "/.well-known/oauth-authorization-server"} {
		w := get(t, h, http.MethodGet, p, "")
		var asm map[string]any
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &asm) != nil {
			t.Fatalf("%s: %d %s", p, w.Code, w.Body)
		}
		if asm["issuer"] != "https://tk.example.com/t/acme" || asm["registration_endpoint"] != "https://tk.example.com/t/acme/mcp/register" ||
			asm["code_challenge_methods_supported"].([]any)[0] != "S256" || len(asm["code_challenge_methods_supported"].([]any)) != 1 {
			t.Fatalf("%s: %v", p, asm)
		}
	}
}

func TestCORS_PreflightOnRegistrationAndToken(t *testing.T) {
	_, h := newTestFacade(t, "https://acme.tk.example.com")
	for _, p := range []string{"/mcp/register", "/mcp/token", "/.well-known/oauth-authorization-server"} {
		r := httptest.NewRequest(http.MethodOptions, p, nil)
		r.Header.Set("Origin", "http://localhost:6274")
		r.Header.Set("Access-Control-Request-Method", "POST")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(w.Header().Get("Access-Control-Allow-Headers"), "Authorization") ||
			!strings.Contains(w.Header().Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
			t.Fatalf("%s: %d %v", p, w.Code, w.Header())
		}
	}
}

func TestAuthorize_ErrorsBeforeTheRedirectURIIsTrustedAreShownNotRedirected(t *testing.T) {
	_, h := newTestFacade(t, "https://acme.tk.example.com")
	w := get(t, h, http.MethodPost, "/mcp/register", `{"redirect_uris":["http://127.0.0.1:7000/cb"]}`)
	var reg registrationResponse
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &reg) != nil {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	base := url.Values{"client_id": {reg.ClientID}, "response_type": {"code"}, "code_challenge": {strings.Repeat("a", 43)}, "code_challenge_method": {"S256"}}
	for name, mod := range map[string]func(url.Values){
		"unknown client":      func(v url.Values) { v.Set("client_id", "nobody") },
		"foreign redirect":    func(v url.Values) { v.Set("redirect_uri", "https://evil.example/cb") },
		"other loopback path": func(v url.Values) { v.Set("redirect_uri", "http://127.0.0.1:7000/other") },
	} {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		mod(v)
		w := get(t, h, http.MethodGet, "/mcp/authorize?"+v.Encode(), "")
		if w.Code != http.StatusBadRequest || w.Header().Get("Location") != "" {
			t.Errorf("%s: %d, Location %q", name, w.Code, w.Header().Get("Location"))
		}
	}
	// Without redirect_uri, the one registered is used.
	w = get(t, h, http.MethodGet, "/mcp/authorize?"+base.Encode(), "")
	if loc := w.Header().Get("Location"); w.Code != http.StatusFound || !strings.HasPrefix(loc, "https://auth.example.com/dex/auth?") {
		t.Fatalf("got %d %s", w.Code, loc)
	}
}
