package oauth

import (
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// docServer serves metadata documents over TLS on loopback; handler gets the document's own URL.
type docServer struct {
	srv   *httptest.Server
	hits  atomic.Int32
	roots *x509.CertPool
}

func newDocServer(t *testing.T, handler func(w http.ResponseWriter, r *http.Request, self string)) *docServer {
	d := &docServer{}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.hits.Add(1)
		handler(w, r, d.srv.URL+r.URL.Path)
	}))
	t.Cleanup(d.srv.Close)
	d.roots = x509.NewCertPool()
	d.roots.AddCert(d.srv.Certificate())
	return d
}

// serveJSON answers a document built by doc from the URL it is served at.
func serveJSON(header http.Header, doc func(self string) map[string]any) func(http.ResponseWriter, *http.Request, string) {
	return func(w http.ResponseWriter, _ *http.Request, self string) {
		for k, v := range header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(doc(self))
	}
}

// claudeCode is Claude Code's published document, but for its own URL.
func claudeCode(self string) map[string]any {
	return map[string]any{"client_id": self, "client_name": "Claude Code", "client_uri": "https://claude.ai",
		"redirect_uris": []string{"http://localhost/callback", "http://127.0.0.1/callback"},
		"grant_types":   []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
		"token_endpoint_auth_method": "none"}
}

func always() bool { return true }

func TestDocumentFetcher_ChecksCachesAndKeepsADocumentWhileItsHostIsDown(t *testing.T) {
	var down atomic.Bool
	ds := newDocServer(t, func(w http.ResponseWriter, r *http.Request, self string) {
		if down.Load() {
			http.Error(w, "outage", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Cache-Control", "public, max-age=600")
		serveJSON(nil, claudeCode)(w, r, self)
	})
	d := newDocumentFetcher(fetchOptions{roots: ds.roots, alsoAllow: netip.Addr.IsLoopback})
	now := time.Now()
	d.now = func() time.Time { return now }
	id := ds.srv.URL + "/oauth/claude-code-client-metadata"

	doc, err := d.Document(t.Context(), id, always)
	if err != nil || doc.ClientName != "Claude Code" || len(doc.RedirectURIs) != 2 || doc.TokenEndpointAuthMethod != "none" {
		t.Fatalf("document %+v %v", doc, err)
	}
	if _, err := d.Document(t.Context(), id, func() bool { t.Fatal("a cached document was fetched"); return false }); err != nil {
		t.Fatal(err)
	}
	now = now.Add(11 * time.Minute) // past max-age=600
	down.Store(true)
	if doc, err := d.Document(t.Context(), id, always); err != nil || doc.ClientName != "Claude Code" {
		t.Fatalf("stale document during an outage: %+v %v", doc, err)
	}
	if ds.hits.Load() != 2 {
		t.Fatalf("%d fetches, want 2", ds.hits.Load())
	}
	now = now.Add(staleDocumentGrace)
	var de *DocumentError
	if _, err := d.Document(t.Context(), id, always); !errors.As(err, &de) || !de.Unreachable {
		t.Fatalf("a day into the outage: %v", err)
	}
	if _, err := d.Document(t.Context(), ds.srv.URL+"/other", func() bool { return false }); !errors.Is(err, errDocumentThrottled) {
		t.Fatalf("throttled fetch: %v", err)
	}
}

func TestDocumentFetcher_RefusesDocumentsRegistrationWouldRefuse(t *testing.T) {
	with := func(mod func(doc map[string]any)) func(http.ResponseWriter, *http.Request, string) {
		return serveJSON(nil, func(self string) map[string]any {
			doc := claudeCode(self)
			mod(doc)
			return doc
		})
	}
	cases := map[string]struct {
		handler func(http.ResponseWriter, *http.Request, string)
		reason  string
	}{
		"another client_id":  {with(func(d map[string]any) { d["client_id"] = "https://evil.example/doc" }), "must be the document's own URL"},
		"no redirect_uris":   {with(func(d map[string]any) { delete(d, "redirect_uris") }), "redirect_uris is required"},
		"http redirect":      {with(func(d map[string]any) { d["redirect_uris"] = []string{"http://evil.example/cb"} }), "loopback"},
		"a secret":           {with(func(d map[string]any) { d["client_secret"] = "s3cret" }), "client_secret"},
		"secret auth method": {with(func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" }), "must be public"},
		"no code grant":      {with(func(d map[string]any) { d["grant_types"] = []string{"client_credentials"} }), "authorization_code"},
		"not JSON": {func(w http.ResponseWriter, _ *http.Request, _ string) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte("<html>"))
		}, "not a JSON object"},
		"HTML":      {func(w http.ResponseWriter, _ *http.Request, _ string) { w.Write([]byte("<html></html>")) }, "application/json"},
		"not found": {func(w http.ResponseWriter, _ *http.Request, _ string) { http.NotFound(w, nil) }, "404"},
		"a redirect": {func(w http.ResponseWriter, r *http.Request, _ string) {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "302"},
		"too large": {with(func(d map[string]any) { d["client_name"] = strings.Repeat("x", maxDocumentBytes) }),
			"larger than"},
		"too slow": {func(w http.ResponseWriter, r *http.Request, self string) {
			time.Sleep(time.Second)
			serveJSON(nil, claudeCode)(w, r, self)
		}, "could not be fetched"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ds := newDocServer(t, tc.handler)
			d := newDocumentFetcher(fetchOptions{roots: ds.roots, alsoAllow: netip.Addr.IsLoopback, timeout: 300 * time.Millisecond})
			_, err := d.Document(t.Context(), ds.srv.URL+"/client.json", always)
			var de *DocumentError
			if !errors.As(err, &de) || !strings.Contains(de.Reason, tc.reason) {
				t.Fatalf("got %v, want a reason with %q", err, tc.reason)
			}
		})
	}
}

func TestDocumentFetcher_AcceptsWhatRealClientsPublish(t *testing.T) {
	docs := map[string]func(self string) map[string]any{
		// Claude.ai's document lists a JWT-bearer grant, VS Code's a device-code grant: grants this
		// server does not offer are never used, not a reason to refuse the client.
		"claude.ai": func(self string) map[string]any {
			return map[string]any{"client_id": self, "client_name": "Claude", "client_uri": "https://claude.ai",
				"redirect_uris":  []string{"https://claude.ai/api/mcp/auth_callback"},
				"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "none"}
		},
		"VS Code": func(self string) map[string]any {
			return map[string]any{"client_id": self, "client_name": "Visual Studio Code", "application_type": "native",
				"logo_uri":       "https://code.visualstudio.com/assets/branding/code-stable.png",
				"grant_types":    []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"},
				"response_types": []string{"code"}, "token_endpoint_auth_method": "none", "client_uri": "https://vscode.dev/product",
				"redirect_uris": []string{"http://127.0.0.1:33418/", "https://vscode.dev/redirect"}}
		},
		"ChatGPT": func(self string) map[string]any {
			return map[string]any{"client_id": self, "client_name": "ChatGPT", "client_uri": "https://chatgpt.com/",
				"redirect_uris":              []string{"https://chatgpt.com/connector_platform_oauth_redirect"},
				"token_endpoint_auth_method": "private_key_jwt", "token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt"},
				"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"},
				"token_endpoint_auth_signing_alg": "RS256", "jwks_uri": "https://chatgpt.com/oauth/jwks.json"}
		},
	}
	for name, doc := range docs {
		ds := newDocServer(t, serveJSON(nil, doc))
		d := newDocumentFetcher(fetchOptions{roots: ds.roots, alsoAllow: netip.Addr.IsLoopback})
		got, err := d.Document(t.Context(), ds.srv.URL+"/oauth/client.json", always)
		if err != nil || got.TokenEndpointAuthMethod != "none" {
			t.Errorf("%s: %+v %v", name, got, err)
		}
	}
}

func TestDocumentFetcher_DialsPublicAddressesOnly(t *testing.T) {
	ds := newDocServer(t, serveJSON(nil, claudeCode))
	// The production checks with the test server's CA trusted, so that only the address can refuse.
	d := newDocumentFetcher(fetchOptions{roots: ds.roots})
	port := ds.srv.URL[strings.LastIndex(ds.srv.URL, ":"):]
	// "localhost" resolves to loopback only at dial time: what DNS rebinding relies on.
	for _, host := range []string{"127.0.0.1", "localhost", "[::1]"} {
		_, err := d.Document(t.Context(), "https://"+host+port+"/client.json", always)
		var de *DocumentError
		if !errors.As(err, &de) || !strings.Contains(de.Reason, "not a public address") {
			t.Errorf("%s: %v", host, err)
		}
	}
	if n := ds.hits.Load(); n != 0 {
		t.Fatalf("the server was reached %d times", n)
	}
}

func TestPublicAddress(t *testing.T) {
	for addr, want := range map[string]bool{
		"160.79.104.10": true, "2606:4700::6810:84e5": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fd00:ec2::254": false, "100.64.0.1": false, "0.0.0.0": false,
		"::ffff:10.0.0.1": false, "64:ff9b::a00:1": false, "2002:a00:1::": false, "224.0.0.1": false, "198.18.0.1": false,
		"255.255.255.255": false, "240.0.0.1": false, "::10.0.0.1": false,
	} {
		if got := publicAddress(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s: %v, want %v", addr, got, want)
		}
	}
}

func TestCheckDocumentURL(t *testing.T) {
	for id, ok := range map[string]bool{
		"https://claude.ai/oauth/claude-code-client-metadata": true,
		"https://vscode.dev/oauth/client-metadata.json":       true,
		"https://claude.ai/":                                  false,
		"https://claude.ai":                                   false,
		"http://claude.ai/oauth/x":                            false,
		"https://user:pw@claude.ai/oauth/x":                   false,
		"https://claude.ai/oauth/x#frag":                      false,
		"https://claude.ai/oauth/../x":                        false,
		"https://claude.ai/./x":                               false,
	} {
		if err := checkDocumentURL(id); (err == nil) != ok {
			t.Errorf("%s: %v", id, err)
		}
	}
}

func TestDocumentTTL_FromCacheControlWithinBounds(t *testing.T) {
	for cc, want := range map[string]time.Duration{
		"":                      defaultDocumentTTL,
		"max-age=3600":          time.Hour,
		"public, max-age=60":    minDocumentTTL,
		"max-age=999999":        maxDocumentTTL,
		"no-store":              minDocumentTTL,
		"max-age=600, no-cache": minDocumentTTL,
	} {
		if got := documentTTL(cc); got != want {
			t.Errorf("%q: %s, want %s", cc, got, want)
		}
	}
}
