package dexauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dexidp/dex/connector"
	"github.com/dexidp/dex/server"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
)

// connectorType names the API-key connector in Dex's connector registry and storage.
const connectorType = "tracekit-apikey"

func init() {
	server.ConnectorsConfig[connectorType] = func() server.ConnectorConfig { return new(connectorConfig) }
}

// connectorConfig is the connector's configuration as Dex stores it. A database handle cannot travel
// through Dex's JSON, so the configuration names the issuer, and each process registers the
// database of the issuer it serves; every replica writes the same configuration.
type connectorConfig struct {
	Issuer string `json:"issuer"`
}

var databases sync.Map // issuer URL -> *store.DB

func (c *connectorConfig) Open(id string, _ *slog.Logger) (connector.Connector, error) {
	db, ok := databases.Load(c.Issuer)
	if !ok {
		return nil, fmt.Errorf("connector %q: no API-key database registered for issuer %q", id, c.Issuer)
	}
	return &apiKeyConnector{db: db.(*store.DB)}, nil
}

// apiKeyConnector signs users in with a TraceKit API key of the tenant they are signing in to. It is
// a RefreshConnector so that Dex asks it before every refresh: a revoked key ends the grant.
type apiKeyConnector struct{ db *store.DB }

var (
	_ connector.PasswordConnector = (*apiKeyConnector)(nil)
	_ connector.RefreshConnector  = (*apiKeyConnector)(nil)
)

func (a *apiKeyConnector) Prompt() string { return "API key" }

// Login checks key against the hashed keys of the tenant the sign-in is for, and grants the tool
// groups the person chose (both put in ctx by the login guard). A key of another tenant is as wrong
// as an unknown one.
func (a *apiKeyConnector) Login(ctx context.Context, _ connector.Scopes, _, key string) (connector.Identity, bool, error) {
	tenant, ok := ctx.Value(tenantKey{}).(string)
	if !ok {
		return connector.Identity{}, false, errors.New("this page signs in to one TraceKit tenant and needs to know which: connect your assistant to the tenant's MCP URL and start from there")
	}
	tools, ok := ctx.Value(toolsKey{}).([]string)
	if !ok {
		return connector.Identity{}, false, errors.New("choose the tools the assistant may use on the sign-in page")
	}
	k, err := a.db.LookupAPIKey(ctx, strings.TrimSpace(key))
	switch {
	case errors.Is(err, store.ErrKeyExpired) && k.TenantID == tenant:
		return connector.Identity{}, false, fmt.Errorf("this API key (%s…) expired on %s; ask a member of your team for a new one (the tenant's /keys page)",
			k.Prefix, time.Unix(0, k.ExpiresNS).UTC().Format(time.RFC3339))
	case errors.Is(err, store.ErrNotFound):
		return connector.Identity{}, false, nil
	case err != nil:
		return connector.Identity{}, false, fmt.Errorf("check the API key: %w", err)
	case k.TenantID != tenant:
		return connector.Identity{}, false, nil
	case !k.HasScope(store.ScopeRead):
		return connector.Identity{}, false, fmt.Errorf("this API key lacks the %q scope that assistants need; create one with: tracekit apikey create --scopes read", store.ScopeRead)
	}
	if k.ToolGroups != "" {
		// A key limited to some tool groups cannot grant more through a sign-in.
		allowed := strings.Split(k.ToolGroups, ",")
		tools = slices.DeleteFunc(slices.Clone(tools), func(g string) bool { return !slices.Contains(allowed, g) })
	}
	return identity(k, strings.ToLower(rand.Text()), tools), true, nil
}

// Refresh lets a refresh proceed only while the key is active and may still read. Everything it needs
// comes from the refresh token's own claims (user id and groups), never from the connector data: Dex
// keeps that per offline session and drops it from the refresh token after the first use.
func (a *apiKeyConnector) Refresh(ctx context.Context, _ connector.Scopes, id connector.Identity) (connector.Identity, error) {
	o, _ := ctx.Value(refreshKey{}).(*refreshOutcome)
	end := func(reason string) (connector.Identity, error) {
		if o != nil {
			o.ended = reason
		}
		return id, errors.New("refresh: " + reason)
	}
	tenant, keyID, grantID, ok := parseUserID(id.UserID)
	if !ok {
		return end("this sign-in predates per-sign-in grants; sign in again")
	}
	keys, err := a.db.ForTenant(tenant).APIKeys(ctx)
	if err != nil {
		return id, fmt.Errorf("refresh: read API keys: %w", err)
	}
	for _, k := range keys {
		if k.ID == keyID && k.RevokedNS == 0 && !k.Expired(time.Now()) && k.HasScope(store.ScopeRead) {
			return identity(k, grantID, grantedTools(id.Groups)), nil
		}
	}
	return end(fmt.Sprintf("the API key this sign-in used (%s of tenant %q) was revoked or expired; sign in again with a current key", keyID, tenant))
}

// identity carries the tenant, the granted scope and tool groups as groups, which Dex puts in the
// tokens and auth.OAuthTokens reads back. Its user id names the grant: Dex keeps one offline session
// (and one refresh token per client) per user id, so a user id per sign-in keeps two sign-ins with
// the same key apart, each with the tool groups chosen for it.
func identity(k store.APIKey, grantID string, tools []string) connector.Identity {
	groups := []string{auth.TenantGroup(k.TenantID), auth.ScopeGroup(store.ScopeRead)}
	for _, g := range tools {
		groups = append(groups, auth.ToolGroupClaim(g))
	}
	name := k.Name
	if name == "" {
		name = k.Prefix + "…"
	}
	return connector.Identity{
		UserID:            k.TenantID + "/" + k.ID + "/" + grantID,
		Username:          name,
		PreferredUsername: k.Prefix,
		Groups:            groups,
	}
}

// parseUserID splits an identity's user id, "<tenant>/<key id>/<grant id>".
func parseUserID(userID string) (tenant, keyID, grantID string, ok bool) {
	rest, grantID, ok1 := cutLast(userID)
	tenant, keyID, ok2 := cutLast(rest)
	return tenant, keyID, grantID, ok1 && ok2 && tenant != "" && keyID != "" && grantID != ""
}

func cutLast(s string) (string, string, bool) {
	i := strings.LastIndexByte(s, '/')
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+1:], true
}

// grantedTools are the tool groups among a token's groups.
func grantedTools(groups []string) []string {
	var tools []string
	for _, g := range groups {
		if id, ok := strings.CutPrefix(g, auth.ToolGroupClaim("")); ok && auth.IsToolGroup(id) {
			tools = append(tools, id)
		}
	}
	return tools
}
