package app_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tracekit/tracekit/server/app"
	"github.com/tracekit/tracekit/server/store/storetest"
)

func TestNew_ServesUnderThePathOfAPathBasedPublicURL(t *testing.T) {
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	srv := httptest.NewServer(app.New(app.Config{DB: db, Tenant: "acme", PublicURL: "https://tracekit.example.com/t/acme"}))
	defer srv.Close()
	for path, want := range map[string]int{
		"/t/acme/healthz": http.StatusOK,
		"/healthz":        http.StatusOK,
		"/t/acme/mcp":     http.StatusUnauthorized, // reached the MCP endpoint, which asks for credentials
		"/t/acmex/mcp":    http.StatusNotFound,
	} {
		resp, err := http.Post(srv.URL+path, "application/json", nil)
		if path == "/t/acme/healthz" || path == "/healthz" {
			resp, err = http.Get(srv.URL + path)
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, resp.StatusCode, want)
		}
	}
}

func TestNew_BrowserOriginsAllowedByConfigPassTheOriginCheck(t *testing.T) {
	db := storetest.Open(t, storetest.SQLiteDSN(t))
	srv := httptest.NewServer(app.New(app.Config{DB: db, Tenant: "acme", PublicURL: "https://tracekit.example.com",
		AllowedOrigins: []string{"https://inspector.example.com"}}))
	defer srv.Close()
	for origin, want := range map[string]int{
		"https://inspector.example.com": http.StatusUnauthorized, // past the origin check, asked for credentials
		"https://tracekit.example.com":  http.StatusUnauthorized,
		"https://evil.example.com":      http.StatusForbidden,
	} {
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/mcp", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("origin %s: %d, want %d", origin, resp.StatusCode, want)
		}
	}
}
