package main

import (
	"errors"
	"flag"
	"log/slog"
	"os"

	"github.com/tracekit/tracekit/internal/tenantconfig"
	"github.com/tracekit/tracekit/server/oauth"
)

// oauthFlags configure the OAuth facade of `tracekit server`. The client secret comes from the
// environment only: arguments are visible to every process on the node.
type oauthFlags struct {
	issuer, clientID *string
}

func registerOAuthFlags(fs *flag.FlagSet) oauthFlags {
	return oauthFlags{
		issuer:   fs.String("auth-issuer", os.Getenv(tenantconfig.EnvAuthIssuer), "issuer URL of the authorization server (tracekit auth); MCP clients then sign in with OAuth ($TRACEKIT_AUTH_ISSUER); empty: API keys only"),
		clientID: fs.String("oauth-client-id", os.Getenv(tenantconfig.EnvOAuthClientID), "this tenant's client id at the authorization server ($TRACEKIT_OAUTH_CLIENT_ID; the secret is read from $TRACEKIT_OAUTH_CLIENT_SECRET)"),
	}
}

// facade returns the OAuth facade, or nil when no issuer is configured.
func (o oauthFlags) facade(publicURL, tenant string, logger *slog.Logger) (*oauth.Facade, error) {
	if *o.issuer == "" {
		return nil, nil
	}
	if tenant == "" {
		return nil, errors.New("OAuth sign-in serves one tenant: set --tenant (or $TRACEKIT_TENANT) with --auth-issuer")
	}
	return oauth.New(oauth.Config{PublicURL: publicURL, Tenant: tenant, Issuer: *o.issuer,
		ClientID: *o.clientID, ClientSecret: os.Getenv(tenantconfig.EnvOAuthClientSecret), Logger: logger})
}
