package oauth

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// scopeRead is the one scope MCP clients get: the tools are read-only.
const scopeRead = "read"

// protectedResourceMetadata answers RFC 9728. Its resource is the canonical MCP URL, which clients
// compare as a string with the URL they connected to; its authorization server is this facade.
func (f *Facade) protectedResourceMetadata(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, gin.H{
		"resource":                 f.mcpURL,
		"resource_name":            "TraceKit",
		"authorization_servers":    []string{f.issuer},
		"bearer_methods_supported": []string{"header"},
		"scopes_supported":         []string{scopeRead},
	})
}

// authorizationServerMetadata answers RFC 8414. Built here rather than taken from Dex: Dex serves
// only OpenID discovery, without a registration endpoint, with "plain" PKCE, and at its own issuer.
func (f *Facade) authorizationServerMetadata(c *gin.Context) {
	c.Header("Cache-Control", "public, max-age=300")
	c.JSON(http.StatusOK, gin.H{
		"issuer":                                f.issuer,
		"authorization_endpoint":                f.issuer + "/mcp/authorize",
		"token_endpoint":                        f.issuer + "/mcp/token",
		"registration_endpoint":                 f.issuer + "/mcp/register",
		"jwks_uri":                              f.cfg.Issuer + "/keys",
		"scopes_supported":                      []string{scopeRead, "offline_access"},
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_methods_supported": []string{"none", "client_secret_basic", "client_secret_post"},
		"code_challenge_methods_supported":      []string{"S256"},
		// Claude, Claude Code and VS Code use a metadata document as client_id when this is
		// advertised together with the auth method "none"; others register.
		"client_id_metadata_document_supported": true,
		// Every redirect back to a client carries iss (RFC 9207), errors included.
		"authorization_response_iss_parameter_supported": true,
	})
}
