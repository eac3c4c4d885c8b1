package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

// proxy forwards TCP connections from addr to target until closed: a database that can be taken
// away and given back.
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func startProxy(t *testing.T, addr, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, d)
			p.mu.Unlock()
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	return p
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, method, url, key string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader("{}"))
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The server used to exit when PostgreSQL was down at start, and while it was down /readyz and the
// 401/503 answers to unauthenticated callers carried the connection details (user, database,
// address). Now it waits, not ready, and says only "database unavailable".
func TestServer_WaitsForItsDatabaseAndNeverShowsItsAddress(t *testing.T) {
	dsn := storetest.PostgresDSN(t)
	u, _ := url.Parse(dsn)
	dbName := strings.TrimPrefix(u.Path, "/")
	dbAddr := u.Host
	proxyAddr := freeAddr(t)
	u.Host = proxyAddr
	srvAddr := freeAddr(t)
	base := "http://" + srvAddr

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServer(ctx, []string{"--addr", srvAddr, "--database-url", u.String()}) }()
	defer func() {
		cancel()
		<-done
	}()

	leaks := func(what, body string) {
		t.Helper()
		for _, secret := range []string{dbName, proxyAddr, "user=", "postgres"} {
			if strings.Contains(body, secret) {
				t.Errorf("%s shows %q to an unauthenticated caller: %q", what, secret, body)
			}
		}
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
			select {
			case err := <-done:
				done <- err // for the deferred wait
				t.Fatalf("the server stopped while %s: %v", what, err)
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out: %s", what)
			}
		}
	}
	// No database yet: alive, not ready.
	waitFor("starting", func() bool { code, _ := get(t, "GET", base+"/healthz", ""); return code == 200 })
	for _, path := range []string{"/readyz", "/v1/traces", "/mcp"} {
		code, body := get(t, "POST", base+path, "tk_notcheckedyetnotcheckedyetnotcheckedyet")
		if path == "/readyz" {
			code, body = get(t, "GET", base+path, "")
		}
		if code != 503 || !strings.Contains(body, "database unavailable") {
			t.Errorf("%s before the database is up: %d %q, want 503 database unavailable", path, code, body)
		}
		leaks(path, body)
	}

	// The database comes up: the server becomes ready.
	p := startProxy(t, proxyAddr, dbAddr)
	waitFor("waiting for the database to become ready", func() bool { code, _ := get(t, "GET", base+"/readyz", ""); return code == 200 })
	admin := storetest.Open(t, dsn)
	if _, err := admin.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: "acme"}); err != nil {
		t.Fatal(err)
	}
	key, _, err := admin.Admin().CreateAPIKey(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if code, body := get(t, "POST", base+"/v1/traces", key); code != 200 {
		t.Fatalf("ingest with the database up: %d %q", code, body)
	}

	// The database goes away: not ready, and nothing about it in the answers.
	p.close()
	for _, path := range []string{"/readyz", "/v1/traces", "/mcp"} {
		code, body := get(t, "POST", base+path, "tk_unknownkeyunknownkeyunknownkeyunknown")
		if path == "/readyz" {
			code, body = get(t, "GET", base+path, "")
		}
		if code != 503 || !strings.Contains(body, "database unavailable") {
			t.Errorf("%s with the database down: %d %q, want 503 database unavailable", path, code, body)
		}
		leaks(path, body)
	}
}
