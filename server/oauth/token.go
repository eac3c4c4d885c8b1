package oauth

import (
	"cmp"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
)

// token is the token endpoint. It checks what Dex cannot know (the sealed code's client and redirect
// URI, the resource) and passes the exchange to Dex, which verifies PKCE, spends its code once, asks
// the API-key connector whether a refresh may proceed, and signs the tokens. Parameters are read from
// the form body only: credentials in a URL end up in logs.
func (f *Facade) token(c *gin.Context) {
	c.Header("Cache-Control", "no-store")
	c.Header("Pragma", "no-cache")
	if mt, _, _ := mime.ParseMediaType(c.GetHeader("Content-Type")); mt != "application/x-www-form-urlencoded" {
		tokenError(c, http.StatusBadRequest, "invalid_request", "send the parameters as application/x-www-form-urlencoded (RFC 6749 §4.1.3), not "+cmp.Or(mt, "without a Content-Type"))
		return
	}
	if err := c.Request.ParseForm(); err != nil {
		tokenError(c, http.StatusBadRequest, "invalid_request", "send the parameters as application/x-www-form-urlencoded")
		return
	}
	form := c.Request.PostForm
	clientID, secret, basic := c.Request.BasicAuth()
	if basic {
		// RFC 6749 §2.3.1: credentials are form-encoded before Basic encoding.
		clientID, _ = url.QueryUnescape(clientID)
		secret, _ = url.QueryUnescape(secret)
	} else {
		clientID, secret = form.Get("client_id"), form.Get("client_secret")
	}
	if clientID == "" {
		c.Header("WWW-Authenticate", `Basic realm="tracekit"`)
		tokenError(c, http.StatusUnauthorized, "invalid_client", "send client_id (and client_secret for a confidential client)")
		return
	}
	cl, err := f.client(c, f.dexClientID(clientID))
	switch {
	case errors.Is(err, ErrUnknownClient):
		c.Header("WWW-Authenticate", `Basic realm="tracekit"`)
		tokenError(c, http.StatusUnauthorized, "invalid_client", "this TraceKit does not know the client; register or sign in again")
		return
	case err != nil:
		f.cfg.Logger.Error("read OAuth client", "client_id", clientID, "err", err)
		tokenError(c, http.StatusServiceUnavailable, "temporarily_unavailable", "the authorization server is unavailable; retry shortly")
		return
	}
	if !f.resourceOK(form["resource"]) {
		tokenError(c, http.StatusBadRequest, "invalid_target", "resource must be this TraceKit's MCP URL, "+f.mcpURL)
		return
	}
	dex := url.Values{"client_id": {cl.ID}}
	if secret != "" && !cl.Public {
		dex.Set("client_secret", secret)
	}
	switch form.Get("grant_type") {
	case "authorization_code":
		g, err := f.seal.open(kindCode, form.Get("code"), f.cfg.Now())
		switch {
		case err != nil:
			tokenError(c, http.StatusBadRequest, "invalid_grant", "the authorization code is invalid or expired")
			return
		case g.ClientID != clientID:
			tokenError(c, http.StatusBadRequest, "invalid_grant", "the authorization code was issued to another client")
			return
		case (g.RedirectExplicit || form.Has("redirect_uri")) && form.Get("redirect_uri") != g.RedirectURI:
			tokenError(c, http.StatusBadRequest, "invalid_grant", "redirect_uri differs from the one of the authorization request")
			return
		case form.Get("code_verifier") == "":
			tokenError(c, http.StatusBadRequest, "invalid_request", "code_verifier is required (PKCE)")
			return
		}
		dex.Set("grant_type", "authorization_code")
		dex.Set("code", g.DexCode)
		dex.Set("redirect_uri", f.callback)
		dex.Set("code_verifier", form.Get("code_verifier"))
	case "refresh_token":
		if form.Get("refresh_token") == "" {
			tokenError(c, http.StatusBadRequest, "invalid_request", "refresh_token is required")
			return
		}
		// No scope: Dex would refuse one it does not know, and a refresh keeps the granted scope.
		dex.Set("grant_type", "refresh_token")
		dex.Set("refresh_token", form.Get("refresh_token"))
	case "":
		tokenError(c, http.StatusBadRequest, "invalid_request", "grant_type is required")
		return
	default:
		tokenError(c, http.StatusBadRequest, "unsupported_grant_type", "use authorization_code or refresh_token")
		return
	}
	f.exchange(c, dex)
}

// exchange posts to Dex's token endpoint and answers with the access and refresh tokens. Dex's ID
// token is left out: its issuer is Dex, not this facade, and MCP clients did not ask for OpenID.
func (f *Facade) exchange(c *gin.Context, form url.Values) {
	req, err := http.NewRequestWithContext(c.Request.Context(), http.MethodPost, f.cfg.Issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		tokenError(c, http.StatusInternalServerError, "server_error", "")
		return
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := f.cfg.HTTPClient.Do(req)
	if err != nil {
		f.cfg.Logger.Error("call Dex's token endpoint", "err", err)
		tokenError(c, http.StatusServiceUnavailable, "temporarily_unavailable", "the authorization server is unavailable; retry shortly")
		return
	}
	defer res.Body.Close()
	body, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		tokenError(c, http.StatusBadGateway, "temporarily_unavailable", "")
		return
	}
	if res.StatusCode != http.StatusOK {
		// Dex answers RFC 6749 errors already (invalid_grant for a spent code or a wrong verifier).
		if res.StatusCode == http.StatusUnauthorized {
			c.Header("WWW-Authenticate", `Basic realm="tracekit"`)
		}
		c.Data(res.StatusCode, "application/json", body)
		return
	}
	var t struct {
		AccessToken  string `json:"access_token"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token,omitempty"`
	}
	if err := json.Unmarshal(body, &t); err != nil || t.AccessToken == "" {
		f.cfg.Logger.Error("Dex's token response has no access token", "status", res.Status)
		tokenError(c, http.StatusBadGateway, "server_error", "the authorization server answered without a token")
		return
	}
	c.JSON(http.StatusOK, struct {
		AccessToken  string `json:"access_token"`
		TokenType    string `json:"token_type"`
		ExpiresIn    int    `json:"expires_in"`
		RefreshToken string `json:"refresh_token,omitempty"`
		Scope        string `json:"scope"`
	}{t.AccessToken, "Bearer", t.ExpiresIn, t.RefreshToken, f.grantedScope(c, t.AccessToken)})
}

// grantedScope is the token's scope as RFC 6749 §5.1 reports it: read, and the tool groups the person
// chose on the sign-in page. Verifying the token here also puts it in the verified-token cache the
// first MCP request then hits.
func (f *Facade) grantedScope(c *gin.Context, accessToken string) string {
	p, err := f.tokens.Verify(c.Request.Context(), accessToken)
	if err != nil {
		f.cfg.Logger.Warn("cannot read the tool groups of a token Dex just issued", "err", err)
		return scopeRead
	}
	scope := []string{scopeRead}
	for _, g := range p.ToolGroups {
		scope = append(scope, auth.ToolGroupClaim(g))
	}
	return strings.Join(scope, " ")
}

func tokenError(c *gin.Context, status int, code, desc string) {
	c.JSON(status, APIError{code, desc})
}
