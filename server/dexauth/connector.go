package dexauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

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

// connectorData is what Dex keeps for refreshes: which key, never the key itself.
type connectorData struct {
	Tenant string `json:"tenant"`
	KeyID  string `json:"key_id"`
	// Tools are the tool groups the person granted, which refreshed tokens keep carrying.
	Tools []string `json:"tools,omitempty"`
}

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
	case errors.Is(err, store.ErrNotFound):
		return connector.Identity{}, false, nil
	case err != nil:
		return connector.Identity{}, false, fmt.Errorf("check the API key: %w", err)
	case k.TenantID != tenant:
		return connector.Identity{}, false, nil
	case !k.HasScope(store.ScopeRead):
		return connector.Identity{}, false, fmt.Errorf("this API key lacks the %q scope that assistants need; create one with: tracekit apikey create --scopes read", store.ScopeRead)
	}
	return identity(k, tools), true, nil
}

// Refresh lets a refresh proceed only while the key is active and may still read.
func (a *apiKeyConnector) Refresh(ctx context.Context, _ connector.Scopes, id connector.Identity) (connector.Identity, error) {
	var d connectorData
	if err := json.Unmarshal(id.ConnectorData, &d); err != nil {
		return id, fmt.Errorf("refresh: unreadable connector data: %w", err)
	}
	keys, err := a.db.ForTenant(d.Tenant).APIKeys(ctx)
	if err != nil {
		return id, fmt.Errorf("refresh: read API keys: %w", err)
	}
	for _, k := range keys {
		if k.ID == d.KeyID && k.RevokedNS == 0 && k.HasScope(store.ScopeRead) {
			return identity(k, d.Tools), nil
		}
	}
	if o, ok := ctx.Value(refreshKey{}).(*refreshOutcome); ok {
		o.keyRevoked = true
	}
	return id, fmt.Errorf("refresh: API key %s of tenant %q was revoked", d.KeyID, d.Tenant)
}

// identity carries the tenant, the granted scope and tool groups as groups, which Dex puts in the
// tokens and auth.OAuthTokens reads back.
func identity(k store.APIKey, tools []string) connector.Identity {
	data, _ := json.Marshal(connectorData{Tenant: k.TenantID, KeyID: k.ID, Tools: tools})
	groups := []string{auth.TenantGroup(k.TenantID), auth.ScopeGroup(store.ScopeRead)}
	for _, g := range tools {
		groups = append(groups, auth.ToolGroupClaim(g))
	}
	name := k.Name
	if name == "" {
		name = k.Prefix + "…"
	}
	return connector.Identity{
		UserID:            k.TenantID + "/" + k.ID,
		Username:          name,
		PreferredUsername: k.Prefix,
		Groups:            groups,
		ConnectorData:     data,
	}
}
