package dexauth

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/dexidp/dex/connector"
	"github.com/dexidp/dex/server"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/store"
)

// ssoType names, in Dex's registry and storage, the connector that puts one of Dex's own upstream
// connectors (OIDC, LDAP) in front of a tenant: it signs people in at their company's identity
// provider, admits them only by the tenant's access rules (TraceKitTenant spec.access), and issues
// the same claims as the API-key connector, so tenant servers cannot tell the two apart.
const ssoType = "tracekit-sso"

func init() {
	server.ConnectorsConfig[ssoType] = func() server.ConnectorConfig { return new(ssoConfig) }
}

// ssoConfig is what Dex stores for a company connector: the upstream connector's type and its
// configuration as Dex's own connector takes it.
type ssoConfig struct {
	Issuer   string          `json:"issuer"`
	Name     string          `json:"name"`
	Upstream string          `json:"upstream"`
	Config   json.RawMessage `json:"config"`
}

func (c *ssoConfig) Open(id string, logger *slog.Logger) (connector.Connector, error) {
	db, ok := databases.Load(c.Issuer)
	if !ok {
		return nil, fmt.Errorf("connector %q: no database registered for issuer %q", id, c.Issuer)
	}
	newConfig, ok := server.ConnectorsConfig[c.Upstream]
	if !ok {
		return nil, fmt.Errorf("identity provider %q: unknown type %q", id, c.Upstream)
	}
	cfg := newConfig()
	if err := json.Unmarshal(c.Config, cfg); err != nil {
		return nil, fmt.Errorf("identity provider %q: config: %w", id, err)
	}
	inner, err := cfg.Open(id, logger)
	if err != nil {
		return nil, fmt.Errorf("identity provider %q: %w", id, err)
	}
	refresher, ok := inner.(connector.RefreshConnector)
	if !ok {
		return nil, fmt.Errorf("identity provider %q (%s) cannot refresh sign-ins, so a removed group member would keep access", id, c.Upstream)
	}
	s := &sso{id: id, name: c.Name, db: db.(*store.DB), refresher: refresher}
	switch inner := inner.(type) {
	case connector.CallbackConnector:
		return &ssoCallback{s, inner}, nil
	case connector.PasswordConnector:
		return &ssoPassword{s, inner}, nil
	}
	return nil, fmt.Errorf("identity provider %q: type %q signs in neither by redirect nor by password", id, c.Upstream)
}

// sso is the part of a company connector that does not depend on how the upstream signs people in.
type sso struct {
	id, name  string
	db        *store.DB
	refresher connector.RefreshConnector
}

// ssoCallback fronts a connector that redirects to the identity provider (OIDC).
type ssoCallback struct {
	*sso
	inner connector.CallbackConnector
}

func (c *ssoCallback) LoginURL(s connector.Scopes, callbackURL, state string) (string, error) {
	return c.inner.LoginURL(s, callbackURL, state)
}

func (c *ssoCallback) HandleCallback(s connector.Scopes, r *http.Request) (connector.Identity, error) {
	up, err := c.inner.HandleCallback(s, r)
	if err != nil {
		return up, err
	}
	return c.admit(r.Context(), up)
}

// ssoPassword fronts a connector that checks a user name and password (LDAP).
type ssoPassword struct {
	*sso
	inner connector.PasswordConnector
}

func (c *ssoPassword) Prompt() string { return c.inner.Prompt() }

func (c *ssoPassword) Login(ctx context.Context, s connector.Scopes, username, password string) (connector.Identity, bool, error) {
	up, ok, err := c.inner.Login(ctx, s, username, password)
	if err != nil || !ok {
		return up, ok, err
	}
	id, err := c.admit(ctx, up)
	return id, err == nil, err
}

var (
	_ connector.CallbackConnector = (*ssoCallback)(nil)
	_ connector.RefreshConnector  = (*ssoCallback)(nil)
	_ connector.PasswordConnector = (*ssoPassword)(nil)
	_ connector.RefreshConnector  = (*ssoPassword)(nil)
)

type refusalKey struct{}

// refusal is why a company sign-in was refused, for the guard's page (the connector can only return
// an error, which Dex would show as a server error).
type refusal struct {
	Tenant, DisplayName, Who, Provider string
	Groups                             []string // what the tenant admits
}

// ssoData is the connector data Dex keeps per grant: the upstream's identity and its own data, which
// its Refresh needs back.
type ssoData struct {
	Upstream connector.Identity `json:"upstream"`
}

// admit checks the person the upstream signed in against the access rules of the tenant the sign-in
// is for (put in ctx by the guard).
func (s *sso) admit(ctx context.Context, up connector.Identity) (connector.Identity, error) {
	tenant, ok := ctx.Value(tenantKey{}).(string)
	if !ok {
		return connector.Identity{}, errors.New("this page signs in to one TraceKit tenant and needs to know which: connect your assistant to the tenant's MCP URL and start from there")
	}
	access, display, err := s.access(ctx, tenant)
	if err != nil {
		return connector.Identity{}, err
	}
	m := member(up)
	tools, via, ok := access.Grant(m)
	if !ok {
		if r, _ := ctx.Value(refusalKey{}).(*refusal); r != nil {
			*r = refusal{Tenant: tenant, DisplayName: display, Who: m.Name(), Provider: s.name, Groups: access.Groups()}
		}
		return connector.Identity{}, fmt.Errorf("%s is not admitted to tenant %q", m.Name(), tenant)
	}
	return s.identity(tenant, strings.ToLower(rand.Text()), up, tools, via)
}

// Refresh asks the upstream again (LDAP reads the directory, OIDC refreshes at the identity
// provider), then the tenant's current rules: someone removed from the admitting groups, or a group
// removed from the rules, ends the grant. The tool groups can only shrink to what the rules still
// allow; a grant left with none ends.
func (s *sso) Refresh(ctx context.Context, scopes connector.Scopes, id connector.Identity) (connector.Identity, error) {
	o, _ := ctx.Value(refreshKey{}).(*refreshOutcome)
	end := func(reason string) (connector.Identity, error) {
		if o != nil {
			o.ended = reason
		}
		return id, errors.New("refresh: " + reason)
	}
	tenant, _, grantID, ok := parseUserID(id.UserID)
	var d ssoData
	if !ok || json.Unmarshal(id.ConnectorData, &d) != nil {
		return end("this sign-in predates company sign-in grants; sign in again")
	}
	up, err := s.refresher.Refresh(ctx, scopes, d.Upstream)
	if err != nil {
		return end(fmt.Sprintf("%s no longer confirms this sign-in (%v); sign in again", s.name, err))
	}
	access, _, err := s.access(ctx, tenant)
	if err != nil {
		return id, fmt.Errorf("refresh: %w", err)
	}
	m := member(up)
	allowed, via, ok := access.Grant(m)
	if !ok {
		return end(fmt.Sprintf("%s is no longer in a group that may use tenant %q; sign in again once you are", m.Name(), tenant))
	}
	tools := slices.DeleteFunc(grantedTools(id.Groups), func(g string) bool { return !slices.Contains(allowed, g) })
	if len(tools) == 0 {
		return end(fmt.Sprintf("tenant %q no longer lets %s grant the tools of this sign-in; sign in again", tenant, m.Name()))
	}
	return s.identity(tenant, grantID, up, tools, via)
}

func (s *sso) access(ctx context.Context, tenant string) (auth.Access, string, error) {
	raw, display, err := s.db.TenantAccess(ctx, tenant)
	if errors.Is(err, store.ErrNotFound) {
		return nil, "", fmt.Errorf("there is no TraceKit tenant %q", tenant)
	}
	if err != nil {
		return nil, "", fmt.Errorf("read the access rules of tenant %q: %w", tenant, err)
	}
	access, err := auth.ParseAccess(raw)
	if err != nil {
		return nil, "", fmt.Errorf("tenant %q: %w", tenant, err)
	}
	return access, display, nil
}

func member(up connector.Identity) auth.Member {
	return auth.Member{Username: cmp.Or(up.PreferredUsername, up.Username), Email: up.Email, Groups: up.Groups}
}

// identity is what Dex puts in the tokens: the claims of an API-key sign-in (tenant, read scope,
// tool groups) plus who signed in and the groups that admitted them. Its user id names the grant,
// as the API-key connector's does: "<tenant>/<connector id>/<grant id>".
func (s *sso) identity(tenant, grantID string, up connector.Identity, tools, via []string) (connector.Identity, error) {
	groups := []string{auth.TenantGroup(tenant), auth.ScopeGroup(store.ScopeRead)}
	for _, g := range tools {
		groups = append(groups, auth.ToolGroupClaim(g))
	}
	m := member(up)
	groups = append(groups, auth.UserGroup(m.Name()))
	for _, g := range via {
		groups = append(groups, auth.ViaGroup(g))
	}
	data, err := json.Marshal(ssoData{Upstream: up})
	if err != nil {
		return connector.Identity{}, err
	}
	return connector.Identity{
		UserID:            tenant + "/" + s.id + "/" + grantID,
		Username:          m.Name(),
		PreferredUsername: m.Username,
		Email:             up.Email,
		EmailVerified:     up.EmailVerified,
		Groups:            groups,
		ConnectorData:     data,
	}, nil
}
