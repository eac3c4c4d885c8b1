package dexauth

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dexidp/dex/connector"
	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
	"github.com/tracekit/tracekit/server/store/storetest"
)

type fixture struct {
	srv    *Server
	db     *store.DB
	issuer string
	key    string // tenant acme's key
}

func newFixture(t *testing.T, maxClients int) *fixture {
	ctx := t.Context()
	db, err := store.Open(ctx, storetest.SQLiteDSN(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acme", "globex"} {
		if _, err := db.Admin().ProvisionTenant(ctx, store.TenantSpec{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	key, _, err := db.Admin().CreateAPIKey(ctx, "acme", "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, key: key, issuer: "https://auth.example.com/dex/" + t.Name()}
	logger := slog.New(slog.DiscardHandler)
	f.srv, err = New(ctx, Config{Issuer: f.issuer, Storage: mustMemory(logger), DB: db, Logger: logger, MaxClientsPerTenant: maxClients})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"acme", "globex"} {
		if err := f.srv.EnsureTenantClient(ctx, id, id+"-secret", []string{"https://" + id + ".example.com/mcp/callback"}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func mustMemory(logger *slog.Logger) storage.Storage {
	s, _ := OpenStorage("memory", logger)
	return s
}

func TestRegistrar_ClientsBelongToOneTenantAndTheTenantTrustsThem(t *testing.T) {
	f := newFixture(t, 0)
	ctx := t.Context()
	acme, globex := f.srv.Registrar("tenant-acme"), f.srv.Registrar("tenant-globex")
	c, err := acme.RegisterClient(ctx, oauth.Client{Public: true, Name: "Claude", RedirectURIs: []string{"https://acme.example.com/mcp/callback", "http://127.0.0.1:1/cb"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ID, "tenant-acme.mcp.") || c.Secret != "" {
		t.Fatalf("client %+v", c)
	}
	if _, err := globex.Client(ctx, c.ID); !errors.Is(err, oauth.ErrUnknownClient) {
		t.Fatalf("globex reads acme's client: %v", err)
	}
	tc, _ := f.srv.storage.GetClient("tenant-acme")
	if !slices.Contains(tc.TrustedPeers, c.ID) {
		t.Fatalf("acme does not trust its client: %v", tc.TrustedPeers)
	}

	// The operator rewrites the tenant's client and its peers; reading the client restores trust.
	f.srv.storage.UpdateClient("tenant-acme", func(old storage.Client) (storage.Client, error) {
		old.TrustedPeers = []string{"tracekit-facade"}
		return old, nil
	})
	got, err := acme.Client(ctx, c.ID)
	if err != nil || got.Name != "Claude" || len(got.RedirectURIs) != 2 {
		t.Fatalf("read back: %+v %v", got, err)
	}
	tc, _ = f.srv.storage.GetClient("tenant-acme")
	if !slices.Equal(tc.TrustedPeers, []string{"tracekit-facade", c.ID}) {
		t.Fatalf("trust not restored, or the operator's peers lost: %v", tc.TrustedPeers)
	}

	conf, err := acme.RegisterClient(ctx, oauth.Client{RedirectURIs: []string{"https://acme.example.com/mcp/callback"}})
	if err != nil || conf.Secret == "" {
		t.Fatalf("confidential client: %+v %v", conf, err)
	}
}

func TestRegistrar_AtTheCapEvictsClientsThatNeverSignedIn(t *testing.T) {
	f := newFixture(t, 2)
	ctx := t.Context()
	reg := f.srv.Registrar("tenant-acme").(*tenantClients)
	clock := time.Now()
	reg.now = func() time.Time { clock = clock.Add(time.Second); return clock }
	register := func() (oauth.Client, error) {
		return reg.RegisterClient(ctx, oauth.Client{Public: true, RedirectURIs: []string{"https://acme.example.com/mcp/callback"}})
	}
	first, _ := register()
	second, _ := register()
	// The first has signed in: it holds a refresh token.
	f.srv.storage.CreateRefresh(ctx, storage.RefreshToken{ID: "r1", Token: "t", ClientID: first.ID, CreatedAt: time.Now(), LastUsed: time.Now()})

	third, err := register()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Client(ctx, second.ID); !errors.Is(err, oauth.ErrUnknownClient) {
		t.Fatalf("the unused client survived: %v", err)
	}
	for _, c := range []oauth.Client{first, third} {
		if _, err := reg.Client(ctx, c.ID); err != nil {
			t.Fatalf("%s: %v", c.ID, err)
		}
	}
	f.srv.storage.CreateRefresh(ctx, storage.RefreshToken{ID: "r3", Token: "t", ClientID: third.ID, CreatedAt: time.Now(), LastUsed: time.Now()})
	if _, err := register(); !errors.Is(err, oauth.ErrTooManyClients) {
		t.Fatalf("every client signed in: %v", err)
	}
}

func TestRegistrar_AMetadataDocumentHasOneClientPerTenantKeptUpToDate(t *testing.T) {
	f := newFixture(t, 2)
	ctx := t.Context()
	acme, globex := f.srv.Registrar("tenant-acme"), f.srv.Registrar("tenant-globex")
	const doc = "https://claude.ai/oauth/claude-code-client-metadata"
	want := oauth.Client{Name: "Claude Code", MetadataURL: doc,
		RedirectURIs: []string{"https://acme.example.com/mcp/callback", "http://localhost/callback"}}
	c, err := acme.RegisterClient(ctx, want)
	if err != nil || c.ID != oauth.DocumentClientID("tenant-acme", doc) || !c.Public || c.Secret != "" {
		t.Fatalf("document client: %+v %v", c, err)
	}
	// The document changed: the same client, with the new redirect URIs.
	want.RedirectURIs = append(want.RedirectURIs, "http://127.0.0.1/callback")
	if again, err := acme.RegisterClient(ctx, want); err != nil || again.ID != c.ID {
		t.Fatalf("update: %+v %v", again, err)
	}
	got, err := acme.Client(ctx, c.ID)
	if err != nil || len(got.RedirectURIs) != 3 || !got.Public || got.Name != "Claude Code" {
		t.Fatalf("read back: %+v %v", got, err)
	}
	tc, _ := f.srv.storage.GetClient("tenant-acme")
	if !slices.Contains(tc.TrustedPeers, c.ID) {
		t.Fatalf("acme does not trust the document's client: %v", tc.TrustedPeers)
	}
	// Another tenant gets its own client for the same document, and cannot read acme's.
	g, err := globex.RegisterClient(ctx, oauth.Client{MetadataURL: doc, RedirectURIs: []string{"https://globex.example.com/mcp/callback", "http://localhost/callback"}})
	if err != nil || g.ID == c.ID {
		t.Fatalf("globex: %+v %v", g, err)
	}
	if _, err := globex.Client(ctx, c.ID); !errors.Is(err, oauth.ErrUnknownClient) {
		t.Fatalf("globex reads acme's document client: %v", err)
	}
	// At the cap, a document's client that never signed in goes first: it is only a copy.
	reg, _ := acme.RegisterClient(ctx, oauth.Client{Public: true, RedirectURIs: []string{"https://acme.example.com/mcp/callback"}})
	if _, err := acme.RegisterClient(ctx, oauth.Client{Public: true, RedirectURIs: []string{"https://acme.example.com/mcp/callback"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := acme.Client(ctx, c.ID); !errors.Is(err, oauth.ErrUnknownClient) {
		t.Fatalf("the document's client survived eviction: %v", err)
	}
	if _, err := acme.Client(ctx, reg.ID); err != nil {
		t.Fatalf("the registered client was evicted instead: %v", err)
	}
}

func TestClientAPI_OnlyATenantsOwnClientCredentials(t *testing.T) {
	f := newFixture(t, 0)
	h := f.srv.Handler()
	call := func(method, path, user, pass, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, "https://auth.example.com/dex/"+t.Name()+path, strings.NewReader(body))
		if user != "" {
			r.SetBasicAuth(user, pass)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	body := `{"public":true,"redirect_uris":["https://acme.example.com/mcp/callback"]}`
	for _, creds := range [][2]string{{"", ""}, {"tenant-acme", "wrong"}, {"tenant-globex", "acme-secret"}} {
		if w := call(http.MethodPost, oauth.ClientAPIPath, creds[0], creds[1], body); w.Code != http.StatusUnauthorized {
			t.Fatalf("%v: %d", creds, w.Code)
		}
	}
	w := call(http.MethodPost, oauth.ClientAPIPath, "tenant-acme", "acme-secret", body)
	var c oauth.Client
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &c) != nil {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	// A registered MCP client's credentials do not open the API either.
	if w := call(http.MethodGet, oauth.ClientAPIPath+"/"+c.ID, c.ID, "", ""); w.Code != http.StatusUnauthorized {
		t.Fatalf("MCP client credentials: %d", w.Code)
	}
	if w := call(http.MethodGet, oauth.ClientAPIPath+"/"+c.ID, "tenant-globex", "globex-secret", ""); w.Code != http.StatusNotFound {
		t.Fatalf("another tenant reads the client: %d", w.Code)
	}
	if w := call(http.MethodGet, oauth.ClientAPIPath+"/"+c.ID, "tenant-acme", "acme-secret", ""); w.Code != http.StatusOK {
		t.Fatalf("owner reads the client: %d %s", w.Code, w.Body)
	}
}

func TestConnector_KeyMustBelongToTheTenantSigningIn(t *testing.T) {
	f := newFixture(t, 0)
	conn := &apiKeyConnector{db: f.db}
	forTenant := func(id string) context.Context {
		return context.WithValue(context.WithValue(t.Context(), tenantKey{}, id), toolsKey{}, []string{"traces", "llm"})
	}

	id, ok, err := conn.Login(forTenant("acme"), connector.Scopes{}, "api-key", " "+f.key+"\n")
	if err != nil || !ok || !slices.Equal(id.Groups, []string{"tenant:acme", "scope:read", "tools:traces", "tools:llm"}) {
		t.Fatalf("acme's key for acme: %+v %v %v", id, ok, err)
	}
	if strings.Contains(string(id.ConnectorData), f.key) || strings.Contains(id.UserID, f.key) {
		t.Fatal("the key itself is kept for refreshes")
	}
	if _, ok, err := conn.Login(forTenant("globex"), connector.Scopes{}, "", f.key); ok || err != nil {
		t.Fatalf("acme's key for globex: %v %v", ok, err)
	}
	if _, ok, err := conn.Login(forTenant("acme"), connector.Scopes{}, "", "tk_unknown"); ok || err != nil {
		t.Fatalf("unknown key: %v %v", ok, err)
	}
	if _, _, err := conn.Login(context.WithValue(t.Context(), toolsKey{}, []string{"traces"}), connector.Scopes{}, "", f.key); err == nil {
		t.Fatal("a sign-in for no tenant succeeded")
	}
	if _, _, err := conn.Login(context.WithValue(t.Context(), tenantKey{}, "acme"), connector.Scopes{}, "", f.key); err == nil {
		t.Fatal("a sign-in without a choice of tools succeeded")
	}
	ingestOnly, _, _ := f.db.Admin().CreateAPIKey(t.Context(), "acme", "collector", []string{store.ScopeIngest})
	if _, _, err := conn.Login(forTenant("acme"), connector.Scopes{}, "", ingestOnly); err == nil || !strings.Contains(err.Error(), "read") {
		t.Fatalf("ingest-only key: %v", err)
	}

	if refreshed, err := conn.Refresh(t.Context(), connector.Scopes{}, id); err != nil || !slices.Equal(refreshed.Groups, id.Groups) {
		t.Fatalf("refresh with an active key: %+v %v", refreshed.Groups, err)
	}
	keys, _ := f.db.ForTenant("acme").APIKeys(t.Context())
	for _, k := range keys {
		f.db.Admin().RevokeAPIKey(t.Context(), "acme", k.ID)
	}
	outcome := &refreshOutcome{}
	if _, err := conn.Refresh(context.WithValue(t.Context(), refreshKey{}, outcome), connector.Scopes{}, id); err == nil || outcome.ended == "" {
		t.Fatalf("refresh with a revoked key: %v %+v", err, outcome)
	}
}

func TestPostgresConfig_FromURL(t *testing.T) {
	cfg, err := postgresConfig("postgres://dex:p%40ss@db.internal:6543/tracekit?sslmode=require")
	if err != nil || cfg.Host != "db.internal" || cfg.Port != 6543 || cfg.User != "dex" || cfg.Password != "p@ss" ||
		cfg.Database != "tracekit" || cfg.SSL.Mode != "require" {
		t.Fatalf("%+v %v", cfg, err)
	}
	if cfg, _ := postgresConfig("postgres://postgres@127.0.0.1:5432/x"); cfg.SSL.Mode != "disable" {
		t.Fatalf("loopback: %+v", cfg.SSL)
	}
	if cfg, _ := postgresConfig("postgres://u@db.internal/x"); cfg.SSL.Mode != "" {
		t.Fatalf("remote without sslmode keeps Dex's verify-full default: %+v", cfg.SSL)
	}
}

// Sign-ins past the refresh policy's limits (a month unused, three months old) leave nothing in
// Dex's storage once collected; a live one keeps its token and offline session.
func TestCollectGrants_ExpiredSignInsLeaveNoRows(t *testing.T) {
	f := newFixture(t, 0)
	st, now := f.srv.storage, time.Now()
	grants := map[string]struct{ created, used time.Time }{
		"live":   {now.Add(-80 * 24 * time.Hour), now.Add(-time.Hour)},
		"unused": {now.Add(-40 * 24 * time.Hour), now.Add(-31 * 24 * time.Hour)},
		"old":    {now.Add(-91 * 24 * time.Hour), now.Add(-time.Minute)},
	}
	for id, g := range grants {
		user := "acme/key/" + id
		rt := storage.RefreshToken{ID: id, Token: id + "-secret", ClientID: "client-" + id, ConnectorID: oauth.DexConnectorID,
			CreatedAt: g.created, LastUsed: g.used, Claims: storage.Claims{UserID: user}}
		if err := st.CreateRefresh(t.Context(), rt); err != nil {
			t.Fatal(err)
		}
		err := st.CreateOfflineSessions(t.Context(), storage.OfflineSessions{UserID: user, ConnID: oauth.DexConnectorID,
			Refresh: map[string]*storage.RefreshTokenRef{rt.ClientID: {ID: id, ClientID: rt.ClientID, CreatedAt: g.created, LastUsed: g.used}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := f.srv.dropExpiredGrants(); n != 2 || err != nil {
		t.Fatalf("removed %d grants (%v), want the 2 expired ones", n, err)
	}
	for id := range grants {
		_, errToken := st.GetRefresh(id)
		_, errSession := st.GetOfflineSessions("acme/key/"+id, oauth.DexConnectorID)
		kept := errToken == nil && errSession == nil
		gone := errors.Is(errToken, storage.ErrNotFound) && errors.Is(errSession, storage.ErrNotFound)
		if id == "live" && !kept || id != "live" && !gone {
			t.Errorf("grant %s: token %v, offline session %v", id, errToken, errSession)
		}
	}
}
