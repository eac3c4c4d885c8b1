package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

// clientMetadata is RFC 7591 §2 client metadata; fields not listed are ignored, as §2 asks.
type clientMetadata struct {
	RedirectURIs            []string `json:"redirect_uris"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	Contacts                []string `json:"contacts,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
	ApplicationType         string   `json:"application_type,omitempty"`
}

type registrationResponse struct {
	ClientID              string `json:"client_id"`
	ClientSecret          string `json:"client_secret,omitempty"`
	ClientIDIssuedAt      int64  `json:"client_id_issued_at"`
	ClientSecretExpiresAt *int64 `json:"client_secret_expires_at,omitempty"`
	clientMetadata
}

// Limits on what one registration may carry.
const (
	maxRegistrationBytes = 64 << 10
	maxRedirectURIs      = 20
)

// register implements RFC 7591 dynamic registration on top of Dex, which has none: the client is
// created in Dex's storage through the Registrar. Unauthenticated by design, hence throttled per IP;
// the Registrar caps clients per tenant.
func (f *Facade) register(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	if ok, wait := f.registrations.Allow(ClientIP(c.Request)); !ok {
		c.Header("Retry-After", strconv.Itoa(int(wait.Seconds())))
		c.JSON(http.StatusTooManyRequests, APIError{"slow_down", "too many registrations from this address; retry later"})
		return
	}
	var md clientMetadata
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, maxRegistrationBytes+1))
	if err != nil || len(body) > maxRegistrationBytes || json.Unmarshal(body, &md) != nil {
		regError(c, "invalid_client_metadata", "send RFC 7591 client metadata as a JSON object of at most 64 KiB")
		return
	}
	if code, desc := validateMetadata(&md); code != "" {
		regError(c, code, desc)
		return
	}
	cl, err := f.cfg.Registrar.RegisterClient(c.Request.Context(), Client{
		Public:       md.TokenEndpointAuthMethod == "none",
		Name:         md.ClientName,
		RedirectURIs: append([]string{f.callback}, md.RedirectURIs...),
	})
	if errors.Is(err, ErrTooManyClients) {
		regError(c, "too_many_clients", "this TraceKit has too many registered clients that have signed in; an administrator can remove unused ones")
		return
	}
	if err != nil {
		f.cfg.Logger.Error("register OAuth client", "err", err)
		c.JSON(http.StatusServiceUnavailable, APIError{"temporarily_unavailable", "the authorization server is unavailable; retry shortly"})
		return
	}
	res := registrationResponse{ClientID: cl.ID, ClientIDIssuedAt: f.cfg.Now().Unix(), clientMetadata: md}
	if !cl.Public {
		var never int64
		res.ClientSecret, res.ClientSecretExpiresAt = cl.Secret, &never
	}
	f.cfg.Logger.Info("registered OAuth client", "client_id", cl.ID, "client_name", md.ClientName, "redirect_uris", md.RedirectURIs)
	c.JSON(http.StatusCreated, res)
}

// checkRedirectURIs applies the redirect URI rules to a registration or a metadata document.
func checkRedirectURIs(uris []string) (code, desc string) {
	if len(uris) == 0 {
		return "invalid_redirect_uri", "redirect_uris is required: the authorization code flow redirects back to the client"
	}
	if len(uris) > maxRedirectURIs {
		return "invalid_redirect_uri", fmt.Sprintf("at most %d redirect_uris", maxRedirectURIs)
	}
	for _, u := range uris {
		if err := checkRedirectURI(u); err != nil {
			return "invalid_redirect_uri", err.Error()
		}
	}
	return "", ""
}

func regError(c *gin.Context, code, desc string) {
	c.JSON(http.StatusBadRequest, APIError{code, desc})
}

// validateMetadata checks md and fills in defaults, returning an RFC 7591 §3.2.2 error code and
// description when md cannot be registered.
func validateMetadata(md *clientMetadata) (code, desc string) {
	if code, desc := checkRedirectURIs(md.RedirectURIs); code != "" {
		return code, desc
	}
	// RFC 7591's default is client_secret_basic, but MCP clients that omit the method are public
	// clients; §3.2.1 lets the server choose, and the response tells the client.
	switch md.TokenEndpointAuthMethod {
	case "":
		md.TokenEndpointAuthMethod = "none"
	case "none", "client_secret_basic", "client_secret_post":
	default:
		return "invalid_client_metadata", fmt.Sprintf("token_endpoint_auth_method %q is not supported: use none, client_secret_basic or client_secret_post", md.TokenEndpointAuthMethod)
	}
	if len(md.GrantTypes) == 0 {
		md.GrantTypes = []string{"authorization_code"}
	}
	for _, g := range md.GrantTypes {
		if g != "authorization_code" && g != "refresh_token" {
			return "invalid_client_metadata", fmt.Sprintf("grant type %q is not supported: use authorization_code and refresh_token", g)
		}
	}
	if !slices.Contains(md.GrantTypes, "authorization_code") {
		return "invalid_client_metadata", "grant_types must include authorization_code: it is how clients sign in here"
	}
	if len(md.ResponseTypes) == 0 {
		md.ResponseTypes = []string{"code"}
	}
	for _, rt := range md.ResponseTypes {
		if rt != "code" {
			return "invalid_client_metadata", fmt.Sprintf("response type %q is not supported: use code", rt)
		}
	}
	for _, u := range []string{md.ClientURI, md.LogoURI, md.TOSURI, md.PolicyURI} {
		if p, err := url.Parse(u); u != "" && (err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "") {
			return "invalid_client_metadata", fmt.Sprintf("%q is not an http(s) URL", u)
		}
	}
	if len(md.ClientName) > 200 {
		return "invalid_client_metadata", "client_name is longer than 200 characters"
	}
	// Clients get the read-only scope whatever they ask for (§3.2.1 lets the server replace it).
	md.Scope = scopeRead
	md.ClientName = strings.TrimSpace(md.ClientName)
	return "", ""
}
