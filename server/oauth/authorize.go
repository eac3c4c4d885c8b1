package oauth

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"github.com/gin-gonic/gin"
)

// authorize checks an authorization request against what the client registered and what MCP
// requires, then hands the browser to Dex's sign-in: the API-key page, a company identity provider, or the choice
// between them when the platform offers several (no connector_id, so Dex decides). Dex gets the facade's callback as redirect
// URI, the client's PKCE challenge (Dex verifies the verifier at the token endpoint), and a scope
// asking for this tenant as audience. Errors before the redirect URI is trusted are shown to the
// user; after, they go back to the client (RFC 6749 §4.1.2.1).
func (f *Facade) authorize(c *gin.Context) {
	q := c.Request.URL.Query()
	clientID := q.Get("client_id")
	for name, values := range q {
		// RFC 6749 §3.1; only resource may repeat (RFC 8707).
		if len(values) > 1 && name != "resource" {
			f.page(c, http.StatusBadRequest, "The sign-in request carries the parameter "+name+" more than once. Start again from your assistant.")
			return
		}
	}
	if clientID == "" {
		f.page(c, http.StatusBadRequest, "The sign-in request names no client (client_id is missing). Start again from your assistant.")
		return
	}
	cl, err := f.signInClient(c, clientID)
	var de *DocumentError
	switch {
	case errors.Is(err, ErrUnknownClient):
		f.page(c, http.StatusBadRequest, "This TraceKit does not know the client that sent you here. Remove and add the TraceKit connection in your assistant so that it registers again.")
		return
	case errors.As(err, &de):
		status := http.StatusBadRequest
		if de.Unreachable {
			status = http.StatusBadGateway
		}
		f.page(c, status, "The client that sent you here identifies itself with a metadata document that TraceKit cannot use: "+de.Error()+".")
		return
	case errors.Is(err, errDocumentThrottled):
		f.page(c, http.StatusTooManyRequests, "Too many sign-ins started from this address. Try again in a minute.")
		return
	case errors.Is(err, ErrTooManyClients):
		f.page(c, http.StatusServiceUnavailable, "This TraceKit has too many sign-in clients; an administrator can remove unused ones.")
		return
	case err != nil:
		f.cfg.Logger.Error("read OAuth client", "client_id", clientID, "err", err)
		f.page(c, http.StatusServiceUnavailable, "The authorization server is unavailable. Try again in a minute.")
		return
	}
	redirectURI, explicit := q.Get("redirect_uri"), q.Has("redirect_uri")
	own := cl.RedirectURIs[1:] // the first is the facade's callback
	switch {
	case !explicit && len(own) == 1:
		redirectURI = own[0]
	case !explicit:
		f.page(c, http.StatusBadRequest, "The sign-in request has no redirect_uri, and the client registered several.")
		return
	case !redirectAllowed(own, redirectURI):
		f.page(c, http.StatusBadRequest, "The sign-in request asks to return to "+redirectURI+", which the client did not register.")
		return
	}
	fail := func(code, desc string) {
		v := url.Values{"error": {code}, "error_description": {desc}, "iss": {f.issuer}}
		if q.Get("state") != "" {
			v.Set("state", q.Get("state"))
		}
		c.Redirect(http.StatusFound, withParams(redirectURI, v))
	}
	challenge := q.Get("code_challenge")
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
	case challenge == "":
		fail("invalid_request", "PKCE is required: send code_challenge and code_challenge_method=S256")
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "only code_challenge_method=S256 is supported")
	case !pkceChallenge.MatchString(challenge):
		fail("invalid_request", "code_challenge must be the base64url SHA-256 of the code verifier (43 characters)")
	case !f.resourceOK(q["resource"]):
		fail("invalid_target", "resource must be this TraceKit's MCP URL, "+f.mcpURL)
	default:
		state := f.seal.seal(kindState, grant{ClientID: clientID, RedirectURI: redirectURI, RedirectExplicit: explicit,
			ClientState: q.Get("state")}, stateTTL, f.cfg.Now())
		dex := url.Values{
			"client_id":             {cl.ID},
			"redirect_uri":          {f.callback},
			"response_type":         {"code"},
			"scope":                 {"openid offline_access groups audience:server:client_id:" + f.cfg.ClientID},
			"state":                 {state},
			"code_challenge":        {challenge},
			"code_challenge_method": {"S256"},
		}
		c.Redirect(http.StatusFound, f.cfg.Issuer+"/auth?"+dex.Encode())
	}
}

var pkceChallenge = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

// resourceOK accepts the RFC 8707 resources that mean this tenant: none (clients that omit it), the
// MCP URL, with or without a trailing slash, or the tenant's base URL.
func (f *Facade) resourceOK(resources []string) bool {
	for _, r := range resources {
		r = strings.TrimSuffix(r, "/")
		if r != f.mcpURL && r != f.issuer {
			return false
		}
	}
	return true
}

// dexCallback receives Dex's answer and returns it to the client's redirect URI, swapping Dex's code
// for a short-lived sealed one bound to the client and its redirect URI.
func (f *Facade) dexCallback(c *gin.Context) {
	q := c.Request.URL.Query()
	g, err := f.seal.open(kindState, q.Get("state"), f.cfg.Now())
	if err != nil {
		f.page(c, http.StatusBadRequest, "This sign-in link has expired or was already used. Start again from your assistant.")
		return
	}
	v := url.Values{"iss": {f.issuer}}
	if g.ClientState != "" {
		v.Set("state", g.ClientState)
	}
	switch {
	case q.Get("error") != "":
		v.Set("error", q.Get("error"))
		if d := q.Get("error_description"); d != "" {
			v.Set("error_description", d)
		}
	case q.Get("code") != "":
		g.DexCode = q.Get("code")
		g.ClientState = ""
		v.Set("code", f.seal.seal(kindCode, g, codeTTL, f.cfg.Now()))
	default:
		f.page(c, http.StatusBadRequest, "The authorization server answered without a code. Start again from your assistant.")
		return
	}
	c.Redirect(http.StatusSeeOther, withParams(g.RedirectURI, v))
}

// signInClient returns the client an authorization request names: a registered client, or the client
// standing for a metadata document, which is fetched (or taken from the cache) and copied into Dex.
func (f *Facade) signInClient(c *gin.Context, clientID string) (Client, error) {
	if !isDocumentURL(clientID) {
		return f.client(c, clientID)
	}
	doc, err := f.cfg.Documents.Document(c.Request.Context(), clientID, func() bool {
		ok, _ := f.registrations.Allow(ClientIP(c.Request))
		return ok
	})
	if err != nil {
		return Client{}, err
	}
	want := Client{ID: DocumentClientID(f.cfg.ClientID, clientID), Public: true, Name: doc.ClientName,
		RedirectURIs: append([]string{f.callback}, doc.RedirectURIs...), MetadataURL: clientID}
	have, err := f.client(c, want.ID)
	switch {
	case err == nil && have.Public && have.Name == want.Name && slices.Equal(have.RedirectURIs, want.RedirectURIs):
		return have, nil
	case err != nil && !errors.Is(err, ErrUnknownClient):
		return Client{}, err
	}
	cl, err := f.cfg.Registrar.RegisterClient(c.Request.Context(), want)
	if err != nil {
		return Client{}, err
	}
	f.cfg.Logger.Info("OAuth client from a metadata document", "client_id", clientID, "client_name", doc.ClientName, "redirect_uris", doc.RedirectURIs)
	return cl, nil
}

// dexClientID is the Dex client a client_id stands for: itself, or the client of a metadata document.
func (f *Facade) dexClientID(clientID string) string {
	if isDocumentURL(clientID) {
		return DocumentClientID(f.cfg.ClientID, clientID)
	}
	return clientID
}

// client reads a client of this tenant from Dex; every call, because reading also restores the
// tenant's trust in the client should it have been lost.
func (f *Facade) client(c *gin.Context, id string) (Client, error) {
	cl, err := f.cfg.Registrar.Client(c.Request.Context(), id)
	if err != nil {
		return Client{}, err
	}
	if len(cl.RedirectURIs) == 0 || cl.RedirectURIs[0] != f.callback {
		return Client{}, ErrUnknownClient // registered through another URL
	}
	return cl, nil
}

var errorPage = template.Must(template.New("error").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>TraceKit sign-in</title>
<style>body{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2937}h1{font-size:1.25rem}</style>
</head><body><h1>TraceKit sign-in</h1><p>{{.}}</p></body></html>
`))

func (f *Facade) page(c *gin.Context, status int, msg string) {
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Cache-Control", "no-store")
	c.Status(status)
	errorPage.Execute(c.Writer, msg)
}
