// Package oauth is the OAuth 2.1 authorization server that MCP clients see at a tenant's URL. Dex signs
// the user in (with TraceKit's API-key connector, see server/dexauth) and issues the tokens; this
// facade supplies what MCP clients need and Dex lacks: RFC 9728 and RFC 8414 metadata, RFC 7591
// registration and Client ID Metadata Documents, mandatory PKCE S256, the RFC 8707 resource mapped to
// this tenant, loopback redirects on any port, and tokens whose audience is this tenant. docs/auth.md
// shows the whole flow.
package oauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
)

// Config is what the facade of one tenant needs.
type Config struct {
	// PublicURL is the tenant's external base URL. The MCP endpoint is PublicURL + "/mcp" and the
	// facade's issuer is PublicURL itself.
	PublicURL string
	// Tenant is the tenant this URL serves.
	Tenant string
	// Issuer is Dex's issuer URL.
	Issuer string
	// ClientID and ClientSecret are the tenant's confidential client at Dex. Access tokens must name
	// ClientID as audience; the secret authenticates registrations and keys the sealing of state and
	// codes, so every replica of the tenant's server can finish a flow another replica started.
	ClientID, ClientSecret string
	// Registrar creates and reads MCP clients at Dex; nil means the client API of `tracekit auth`.
	Registrar Registrar
	// HTTPClient calls Dex; nil means a client with a 10 s timeout.
	HTTPClient *http.Client
	// Documents fetches Client ID Metadata Documents; nil means NewDocumentFetcher().
	Documents *DocumentFetcher
	Logger    *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// DexConnectorID is the id of the API-key connector in Dex's storage.
const DexConnectorID = "tracekit"

// Lifetimes of what the facade hands out.
const (
	// stateTTL bounds a sign-in from the authorization request to Dex's answer: time to find a key.
	stateTTL = time.Hour
	// codeTTL bounds an authorization code between the redirect and the token request; Dex's own
	// codes live 30 minutes, too long for OAuth 2.1's "short-lived".
	codeTTL = 2 * time.Minute
)

// Facade serves one tenant's authorization endpoints.
type Facade struct {
	cfg      Config
	issuer   string // PublicURL without a trailing slash
	basePath string // PublicURL's path, "" at the root
	mcpURL   string
	callback string // where Dex sends the browser back to
	seal     *sealer
	tokens   *auth.OAuthTokens
	// registrations throttles client registration, and fetches of metadata documents, per IP: both
	// are unauthenticated by design.
	registrations *KeyedLimiter
}

// New checks cfg and returns the facade.
func New(cfg Config) (*Facade, error) {
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("public URL %q: want an absolute http(s) URL without query, e.g. https://acme.tracekit.example.com", cfg.PublicURL)
	}
	if cfg.Issuer == "" || cfg.ClientID == "" || cfg.ClientSecret == "" || cfg.Tenant == "" {
		return nil, errors.New("OAuth needs the issuer URL, the tenant, and the tenant's client id and secret at the authorization server")
	}
	cfg.Issuer = strings.TrimSuffix(cfg.Issuer, "/")
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Registrar == nil {
		cfg.Registrar = &RemoteRegistrar{Issuer: cfg.Issuer, ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, HTTPClient: cfg.HTTPClient}
	}
	if cfg.Documents == nil {
		cfg.Documents = NewDocumentFetcher()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	seal, err := newSealer(cfg.ClientSecret)
	if err != nil {
		return nil, err
	}
	issuer := strings.TrimSuffix(cfg.PublicURL, "/")
	return &Facade{
		cfg:      cfg,
		issuer:   issuer,
		basePath: strings.TrimSuffix(u.Path, "/"),
		mcpURL:   issuer + "/mcp",
		callback: issuer + "/mcp/callback",
		seal:     seal,
		tokens: &auth.OAuthTokens{Issuer: cfg.Issuer, Audience: cfg.ClientID, Tenant: cfg.Tenant,
			HTTPClient: cfg.HTTPClient, Now: cfg.Now},
		registrations: &KeyedLimiter{Every: time.Minute, Burst: 20},
	}, nil
}

// Tokens authenticates the access tokens this facade's clients obtain.
func (f *Facade) Tokens() auth.Authenticator { return f.tokens }

// Register adds the facade's routes to r. Paths are those the server sees; advertised URLs are built
// from PublicURL.
func (f *Facade) Register(r gin.IRouter) {
	api := r.Group("", cors)
	get := func(path string, h gin.HandlerFunc) {
		api.GET(path, h)
		api.OPTIONS(path, func(*gin.Context) {})
	}
	// The RFC 9728 path-suffixed form for the MCP endpoint (with and without a path prefix that a
	// proxy may strip) and the root form older clients probe.
	for _, p := range unique("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-protected-resource"+f.basePath+"/mcp") {
		get(p, f.protectedResourceMetadata)
	}
	// RFC 8414 at the root and path-inserted for an issuer with a path.
	for _, p := range unique("/.well-known/oauth-authorization-server", "/.well-known/oauth-authorization-server"+f.basePath) {
		get(p, f.authorizationServerMetadata)
	}
	api.POST("/mcp/register", f.register)
	api.OPTIONS("/mcp/register", func(*gin.Context) {})
	api.POST("/mcp/token", f.token)
	api.OPTIONS("/mcp/token", func(*gin.Context) {})
	r.GET("/mcp/authorize", f.authorize)
	r.GET("/mcp/callback", f.dexCallback)
}

// cors lets browser-based clients (the MCP Inspector, web apps) call the metadata, registration and
// token endpoints from their own origin. No cookies are involved, so any origin may.
func cors(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Retry-After")
	if c.Request.Method == http.MethodOptions {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "86400")
		c.AbortWithStatus(http.StatusNoContent)
	}
}

func unique(paths ...string) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}
