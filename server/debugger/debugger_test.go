package debugger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/debugger"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

type env struct {
	url                string
	db                 *store.DB
	agentKey, adminKey string
	otherTenantKey     string
	clock              atomic.Int64
	t                  *testing.T
}

func newEnv(t *testing.T, db *store.DB) *env {
	ctx := context.Background()
	e := &env{db: db, t: t}
	e.clock.Store(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	for _, id := range []string{"acme", "other"} {
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	key := func(tenant string, scopes ...string) string {
		k, _, err := db.Admin().CreateAPIKey(ctx, tenant, "test", scopes)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	e.agentKey = key("acme", store.ScopeIngest)
	e.adminKey = key("acme", store.ScopeWrite)
	e.otherTenantKey = key("other", store.ScopeIngest, store.ScopeWrite)
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	h := &debugger.Handler{DB: db, Auth: &auth.APIKeys{DB: db}, Now: func() time.Time { return time.Unix(0, e.clock.Load()) }}
	h.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func (e *env) do(method, path, key string, body any) (int, map[string]any) {
	e.t.Helper()
	var rd *bytes.Reader
	if s, ok := body.(string); ok {
		rd = bytes.NewReader([]byte(s))
	} else {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.url+path, rd)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) create(spec map[string]any) string {
	e.t.Helper()
	code, out := e.do("POST", "/v1/breakpoints", e.adminKey, spec)
	if code != http.StatusCreated {
		e.t.Fatalf("create breakpoint: %d %v", code, out)
	}
	return out["id"].(string)
}

func (e *env) active(key, service string) []string {
	e.t.Helper()
	code, out := e.do("GET", "/v1/breakpoints?service="+service, key, nil)
	if code != http.StatusOK {
		e.t.Fatalf("list breakpoints: %d %v", code, out)
	}
	var ids []string
	for _, b := range out["breakpoints"].([]any) {
		ids = append(ids, b.(map[string]any)["id"].(string))
	}
	return ids
}

func (e *env) upload(key, bp string) int {
	e.t.Helper()
	code, _ := e.do("POST", "/v1/snapshots", key, map[string]any{"breakpoint_id": bp,
		"variables": map[string]any{"order_id": 42}, "stack": []any{map[string]any{"function": "charge", "line": 10}}})
	return code
}

func TestBreakpoints_ScopesDecideWhoManagesAndWhoCaptures(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		if code, _ := e.do("POST", "/v1/breakpoints", e.agentKey, map[string]any{"service": "pay", "file": "a.go", "line": 1}); code != http.StatusForbidden {
			t.Fatalf("agent key created a breakpoint: %d", code)
		}
		bp := e.create(map[string]any{"service": "pay", "file": "charge.go", "line": 42, "condition": "amount > 1000"})
		e.create(map[string]any{"service": "search", "file": "q.go", "line": 7})
		if ids := e.active(e.agentKey, "pay"); len(ids) != 1 || ids[0] != bp {
			t.Fatalf("agent of pay sees %v, want [%s]", ids, bp)
		}
		if ids := e.active(e.otherTenantKey, ""); len(ids) != 0 {
			t.Fatalf("another tenant sees %v", ids)
		}
		if code := e.upload(e.otherTenantKey, bp); code != http.StatusNotFound {
			t.Fatalf("another tenant's upload: %d, want 404", code)
		}
		if code := e.upload(e.adminKey, bp); code != http.StatusForbidden {
			t.Fatalf("write-only key uploaded a snapshot: %d, want 403", code)
		}
		if code := e.upload(e.agentKey, bp); code != http.StatusCreated {
			t.Fatalf("upload: %d", code)
		}
		for _, bad := range []map[string]any{{"file": "a.go", "line": 1}, {"service": "pay", "line": 1},
			{"service": "pay", "file": "a.go", "line": 0}, {"service": "pay", "file": "a.go", "line": 1, "expires_in": "30d"},
			{"service": "pay", "file": "a.go", "line": 1, "hit_limit": -1}} {
			if code, out := e.do("POST", "/v1/breakpoints", e.adminKey, bad); code != http.StatusBadRequest || out["error"] == "" {
				t.Errorf("create %v: %d %v, want 400 with a reason", bad, code, out)
			}
		}
	})
}

func TestSnapshots_AreRedactedBeforeTheyAreStored(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		bp := e.create(map[string]any{"service": "pay", "file": "charge.go", "line": 42})
		body := `{"breakpoint_id": "` + bp + `", "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736", "span_id": "00f067aa0ba902b7",
			"variables": {"card": {"last4": "4242", "cvv": "123"}, "req": {"headers": {"Authorization": "Bearer sk_live_4eC39HqLyjWDarjtT1zdp7dc"}},
				"dsn": "postgres://pay:hunter2@db/pay", "note": "retrying with token=abcdef123456", "amount": 1999},
			"stack": [{"function": "charge", "file": "charge.go", "line": 42, "locals": {"secret": "s3"}}]}`
		code, out := e.do("POST", "/v1/snapshots", e.agentKey, body)
		if code != http.StatusCreated || out["redacted"] != float64(5) {
			t.Fatalf("upload: %d %v, want 201 with 5 redactions", code, out)
		}
		snaps, err := db.ForTenant("acme").SearchSnapshots(context.Background(), store.SnapshotQuery{To: 1 << 62, Limit: 10})
		if err != nil || len(snaps) != 1 {
			t.Fatalf("stored snapshots: %v %v", snaps, err)
		}
		s := snaps[0]
		stored := string(s.Variables) + string(s.Stack)
		for _, secret := range []string{`"123"`, "sk_live", "hunter2", "abcdef123456", `"s3"`} {
			if strings.Contains(stored, secret) {
				t.Errorf("secret %s stored: %s", secret, stored)
			}
		}
		if !strings.Contains(stored, "4242") || !strings.Contains(stored, "1999") || s.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || s.Service != "pay" {
			t.Errorf("capture lost data: %+v %s", s, stored)
		}
		for _, bad := range []string{`{"breakpoint_id": "` + bp + `", "variables": [1]}`, `{"breakpoint_id": "` + bp + `", "trace_id": "xyz"}`,
			`{"variables": {}}`, `not json`} {
			if code, _ := e.do("POST", "/v1/snapshots", e.agentKey, bad); code != http.StatusBadRequest {
				t.Errorf("upload %s: %d, want 400", bad, code)
			}
		}
	})
}

func TestBreakpoints_StopCapturingAtExpiryHitLimitAndDeletion(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		expiring := e.create(map[string]any{"service": "pay", "file": "a.go", "line": 1, "expires_in": "10m"})
		limited := e.create(map[string]any{"service": "pay", "file": "a.go", "line": 2, "hit_limit": 3, "expires_in": "1h"})
		deleted := e.create(map[string]any{"service": "pay", "file": "a.go", "line": 3})

		// Concurrent captures never exceed the hit limit.
		var wg sync.WaitGroup
		var created atomic.Int32
		for range 10 {
			wg.Go(func() {
				if e.upload(e.agentKey, limited) == http.StatusCreated {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		if created.Load() != 3 {
			t.Fatalf("%d captures of a breakpoint with hit limit 3", created.Load())
		}
		if code := e.upload(e.agentKey, limited); code != http.StatusGone {
			t.Fatalf("capture past the hit limit: %d, want 410", code)
		}

		if code, _ := e.do("DELETE", "/v1/breakpoints/"+deleted, e.adminKey, nil); code != http.StatusNoContent {
			t.Fatalf("delete: %d", code)
		}
		if code, _ := e.do("DELETE", "/v1/breakpoints/"+deleted, e.adminKey, nil); code != http.StatusNotFound {
			t.Fatalf("second delete: %d, want 404", code)
		}
		if code := e.upload(e.agentKey, deleted); code != http.StatusGone {
			t.Fatalf("capture of a deleted breakpoint: %d, want 410", code)
		}
		if ids := e.active(e.agentKey, "pay"); len(ids) != 1 || ids[0] != expiring {
			t.Fatalf("active %v, want only %s", ids, expiring)
		}

		e.clock.Add(int64(11 * time.Minute))
		if ids := e.active(e.agentKey, "pay"); len(ids) != 0 {
			t.Fatalf("active after expiry: %v", ids)
		}
		if code := e.upload(e.agentKey, expiring); code != http.StatusGone {
			t.Fatalf("capture after expiry: %d, want 410", code)
		}
		n, err := db.ForTenant("acme").CountSnapshots(context.Background(), store.SnapshotQuery{To: 1 << 62}, 100)
		if err != nil || n != 3 {
			t.Fatalf("%d snapshots stored (%v), want 3", n, err)
		}
	})
}

// Issue 12 item 8: secrets that were stored in clear and returned by search_snapshots.
func TestSnapshots_SecretsFoundByShapeAndNameAreNotStored(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		bp := e.create(map[string]any{"service": "pay", "file": "charge.go", "line": 42})
		jwt := "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
		vars := map[string]any{
			"card":     map[string]any{"number": "4111 1111 1111 1111", "cvc": "737", "last4": "1111"},
			"pan":      json.Number("5500005555555559"),
			"customer": map[string]any{"email": "alice@example.com", "national_id": "123-45-6789", "note": "ssn 078-05-1120"},
			"session":  "sess-9f8e7d", "sid": "s%3AKqP0",
			"privKey": "priv-material-1", "passwort": "geheim123",
			"tokens":    []any{"tok-alpha-1", "tok-beta-2"},
			"body":      `{"user": "bob", "password": "pw-in-json"}`,
			"k2":        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
			"by_caller": map[string]any{jwt: 1, "AKIAIOSFODNN7EXAMPLE": 2},
			"cache":     "redis://app:p@ss-tail@cache:6379/0",
			"amount":    1999,
		}
		code, out := e.do("POST", "/v1/snapshots", e.agentKey, map[string]any{"breakpoint_id": bp, "variables": vars, "stack": []any{}})
		if code != http.StatusCreated {
			t.Fatalf("upload: %d %v", code, out)
		}
		snaps, err := db.ForTenant("acme").SearchSnapshots(context.Background(), store.SnapshotQuery{To: 1 << 62, Limit: 10})
		if err != nil || len(snaps) != 1 {
			t.Fatalf("stored snapshots: %v %v", snaps, err)
		}
		var compact bytes.Buffer
		if err := json.Compact(&compact, snaps[0].Variables); err != nil {
			t.Fatal(err)
		}
		stored := compact.String()
		for _, secret := range []string{"4111 1111 1111 1111", "5500005555555559", `"737"`, "alice@example.com", "123-45-6789",
			"078-05-1120", "sess-9f8e7d", "s%3AKqP0", "priv-material-1", "geheim123", "tok-alpha-1", "tok-beta-2", "pw-in-json",
			"wJalrXUtnFEMI", "eyJhbGci", "AKIAIOSFODNN7EXAMPLE", "ss-tail"} {
			if strings.Contains(stored, secret) {
				t.Errorf("%s stored in clear: %s", secret, stored)
			}
		}
		for _, kept := range []string{`"last4":"1111"`, `"amount":1999`, "bob", "@cache:6379"} {
			if !strings.Contains(stored, kept) {
				t.Errorf("%s lost: %s", kept, stored)
			}
		}
	})
}

func TestBreakpoints_LabelsAndConditionsAreChecked(t *testing.T) {
	storetest.Dialects(t, func(t *testing.T, db *store.DB) {
		e := newEnv(t, db)
		bp := e.create(map[string]any{"service": "pay", "label": "checkout.total", "condition": "total > 100 && user.country == 'DE'"})
		code, out := e.do("GET", "/v1/breakpoints?service=pay", e.agentKey, nil)
		got := out["breakpoints"].([]any)[0].(map[string]any)
		if code != http.StatusOK || got["id"] != bp || got["label"] != "checkout.total" || got["file"] != nil || got["line"] != nil {
			t.Fatalf("label breakpoint as agents see it: %d %v", code, out)
		}
		for bad, want := range map[string]string{
			`{"service": "pay", "file": "a.go", "line": 3, "condition": "total >"}`:    "expected a variable",
			`{"service": "pay", "file": "a.go", "line": 3, "condition": "os.Exit(1)"}`: "unexpected '('",
			`{"service": "pay", "file": "a.go", "line": 3, "label": "x"}`:              "not both",
			`{"service": "pay", "condition": "a == 1"}`:                                "or label, is required",
		} {
			if code, out := e.do("POST", "/v1/breakpoints", e.adminKey, bad); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(out["error"]), want) {
				t.Errorf("create %s: %d %v, want 400 saying %q", bad, code, out, want)
			}
		}
	})
}
