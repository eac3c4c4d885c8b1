package dexauth

import (
	"bytes"
	"cmp"
	"context"
	"html/template"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dexidp/dex/server"
	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

type (
	tenantKey  struct{}
	toolsKey   struct{}
	refreshKey struct{}
)

// refreshOutcome lets the connector tell the guard that a refresh failed because the grant has ended
// (the key was revoked), and why.
type refreshOutcome struct{ ended string }

// guard sits in front of Dex for what Dex does not do:
//   - on the API-key page, it says which client asks and where the access will go, refuses to be
//     framed and cross-site form posts, throttles wrong keys per IP and per key prefix (a throttled
//     attempt gets 429 and is not checked at all), and tells the connector which tenant the sign-in
//     is for and which tool groups the person ticked (Dex passes the connector only the key);
//   - on the authorization endpoint, it admits MCP clients only as the facade sends them (PKCE S256,
//     the facade's callback), so that going to Dex directly cannot skip the facade's rules;
//   - on the token endpoint, it answers every refresh failure with RFC 6749's invalid_grant, ends a
//     grant whose rotated-away refresh token comes back (OAuth 2.1 §4.3.1) or whose authorization
//     code is replayed, and retries refreshes that lost a race in Dex's storage (see refresh.go).
type guard struct {
	storage      storage.Storage
	issuerPath   string
	issuerOrigin string
	perIP        *oauth.KeyedLimiter
	perKey       *oauth.KeyedLimiter
	refresh      *server.RefreshTokenPolicy
	reuse        time.Duration // the refresh policy's reuse interval
	codes        *spentCodes
	logger       *slog.Logger
	next         http.Handler
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// No page of the authorization server may be framed: framing could hide who asks for access.
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Content-Security-Policy", "frame-ancestors 'none'")
	p := r.URL.Path
	login := strings.HasPrefix(p, g.issuerPath+"/auth/") && strings.HasSuffix(p, "/login")
	authorize := !login && (p == g.issuerPath+"/auth" || strings.HasPrefix(p, g.issuerPath+"/auth/"))
	switch {
	case authorize:
		if msg := g.authorizationRefusal(r); msg != "" {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			w.WriteHeader(http.StatusBadRequest)
			io.WriteString(w, msg+"\n")
			return
		}
		g.next.ServeHTTP(w, r)
	case r.Method == http.MethodGet && login:
		authReq, err := g.storage.GetAuthRequest(r.URL.Query().Get("state"))
		if err != nil {
			g.next.ServeHTTP(w, r)
			return
		}
		buf := &bufferedResponse{header: http.Header{}}
		g.next.ServeHTTP(buf, r)
		g.writePage(w, buf, authReq)
	case r.Method == http.MethodPost && login:
		g.passwordLogin(w, r)
	case r.Method == http.MethodGet && (p == g.issuerPath+"/callback" || strings.HasPrefix(p, g.issuerPath+"/callback/")):
		g.companyCallback(w, r)
	case r.Method == http.MethodPost && p == g.issuerPath+"/token":
		g.token(w, r)
	default:
		g.next.ServeHTTP(w, r)
	}
}

// authorizationRefusal says why Dex must not see an authorization request, or is "". MCP clients are
// public clients of Dex; the facade sends them with PKCE S256 and its own callback as redirect URI
// (their first registered one), which opens only the sealed state the facade made. Anything else
// comes from someone skipping the facade. Tenants' own clients never sign people in, but Dex explains
// unknown clients and malformed requests itself.
func (g *guard) authorizationRefusal(r *http.Request) string {
	if r.ParseForm() != nil {
		return ""
	}
	id := r.Form.Get("client_id")
	if !isMCPClient(id) {
		return ""
	}
	c, err := g.storage.GetClient(id)
	if err != nil {
		return ""
	}
	switch {
	case len(c.RedirectURIs) == 0 || r.Form.Get("redirect_uri") != c.RedirectURIs[0]:
		return "Sign in through your TraceKit MCP URL (its /mcp/authorize endpoint), not at the authorization server directly."
	case r.Form.Get("code_challenge_method") != "S256" || r.Form.Get("code_challenge") == "":
		return "PKCE is required: send code_challenge and code_challenge_method=S256."
	}
	return ""
}

// crossSite reports whether a form post comes from another site: a page elsewhere must not be able to
// submit the API-key form. Browsers send Sec-Fetch-Site, which pages cannot set; those that do not are
// judged by Origin. The API-key page's own post may carry Origin "null": the page is reached through
// redirects from the tenant's URL, and Chromium then sends no origin.
func (g *guard) crossSite(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site != "same-origin" && site != "none"
	}
	origin := r.Header.Get("Origin")
	return origin != "" && origin != "null" && origin != g.issuerOrigin
}

func (g *guard) passwordLogin(w http.ResponseWriter, r *http.Request) {
	authReq, err := g.storage.GetAuthRequest(r.URL.Query().Get("state"))
	if err != nil {
		g.next.ServeHTTP(w, r) // Dex explains an unknown or expired sign-in
		return
	}
	if g.crossSite(r) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, "This sign-in form was sent from another site. Sign in on the TraceKit page itself.\n")
		return
	}
	if authReq.ConnectorID != oauth.DexConnectorID {
		g.companyPasswordLogin(w, r, authReq)
		return
	}
	tools := chosenToolGroups(r) // parses the form, which Dex then reads the key from
	// Throttled by what the person guessing controls: their address, and the key they try (its
	// prefix, which a targeted guess keeps). Not by client: a client may stand for a whole tenant.
	ip, prefix := "ip:"+oauth.ClientIP(r), "key:"+keyPrefix(r.PostForm.Get("password"))
	for _, l := range []struct {
		lim *oauth.KeyedLimiter
		key string
	}{{g.perIP, ip}, {g.perKey, prefix}} {
		if blocked, wait := l.lim.Exhausted(l.key); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusTooManyRequests)
			throttledPage.Execute(w, max(1, int(math.Ceil(wait.Minutes()))))
			return
		}
	}
	if len(tools) == 0 {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		noToolsPage.Execute(w, r.URL.RequestURI())
		return
	}
	ctx := context.WithValue(r.Context(), toolsKey{}, tools)
	if tenant, ok := tenantOf(authReq.Scopes); ok {
		ctx = context.WithValue(ctx, tenantKey{}, tenant)
	}
	buf := &bufferedResponse{header: http.Header{}}
	g.next.ServeHTTP(buf, r.WithContext(ctx))
	if buf.status == http.StatusUnauthorized { // Dex shows the form again: a wrong key
		g.perIP.Allow(ip)
		g.perKey.Allow(prefix)
	}
	g.writePage(w, buf, authReq)
}

// clientSlot is the empty paragraph of password.html that writePage fills: Dex gives its templates
// nothing about the client.
const clientSlot = `<p id="client" class="hint"></p>`

// writePage writes Dex's answer, with the API-key page saying which client asks and where the access
// goes. Names are whatever a client registered; where it receives the access is what a person can
// judge a phishing attempt by.
func (g *guard) writePage(w http.ResponseWriter, buf *bufferedResponse, authReq storage.AuthRequest) {
	body := buf.body.Bytes()
	if bytes.Contains(body, []byte(clientSlot)) {
		if c, err := g.storage.GetClient(authReq.ClientID); err == nil && len(c.RedirectURIs) > 1 {
			var text bytes.Buffer
			clientText.Execute(&text, struct{ Name, Destinations string }{c.Name, destinations(c.RedirectURIs[1:])})
			body = bytes.Replace(body, []byte(clientSlot), text.Bytes(), 1)
			buf.header.Del("Content-Length")
		}
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(buf.status, http.StatusOK))
	w.Write(body)
}

var clientText = template.Must(template.New("client").Parse(`<p id="client" class="hint">` +
	`Asking: {{if .Name}}the application calling itself <strong>{{.Name}}</strong>{{else}}an unnamed application{{end}}, ` +
	`which receives the access at <strong>{{.Destinations}}</strong>. Sign in only if you started this from your assistant.</p>`))

// destinations says, for a person, where the redirect URIs lead: a host, this computer for loopback
// listeners, or the app behind a private-use scheme. The first is the facade's callback, not given.
func destinations(uris []string) string {
	var out []string
	for _, raw := range uris {
		u, err := url.Parse(raw)
		if err != nil {
			continue
		}
		d := u.Scheme + "://" + u.Host
		switch {
		case u.Scheme == "http" || (u.Scheme == "https" && isLoopbackHost(u.Hostname())):
			d = "this computer"
		case u.Scheme == "https":
			d = u.Hostname()
		}
		if !slices.Contains(out, d) {
			out = append(out, d)
		}
	}
	return strings.Join(out, " or ")
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || (ip != nil && ip.IsLoopback())
}

// chosenToolGroups are the tool groups ticked on the API-key page, in auth.ToolGroups order. The form
// is parsed here; Dex reads the key from the same parsed form.
func chosenToolGroups(r *http.Request) []string {
	if r.ParseForm() != nil {
		return nil
	}
	var tools []string
	for _, g := range auth.ToolGroups {
		if slices.Contains(r.PostForm["tools"], g.ID) {
			tools = append(tools, g.ID)
		}
	}
	return tools
}

var noToolsPage = template.Must(template.New("notools").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>TraceKit sign-in</title></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1 style="font-size:1.25rem">Choose at least one group of tools</h1>
<p>The assistant needs to be allowed some tools. <a href="{{.}}">Go back</a>, tick what it may use, and enter your key again.</p>
</body></html>
`))

// tenantOf finds the tenant a sign-in is for in the audience the facade asked for.
func tenantOf(scopes []string) (string, bool) {
	for _, s := range scopes {
		if peer, ok := strings.CutPrefix(s, "audience:server:client_id:"); ok {
			return TenantOfClient(peer)
		}
	}
	return "", false
}

var throttledPage = template.Must(template.New("throttled").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>TraceKit sign-in</title></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem">
<h1 style="font-size:1.25rem">Too many wrong API keys</h1>
<p>Sign-in from here is paused. Try again in {{.}} minute(s), with a key from <code>tracekit apikey list</code>.</p>
</body></html>
`))

// writeTo writes the held response to w.
func (b *bufferedResponse) writeTo(w http.ResponseWriter) {
	for k, v := range b.header {
		w.Header()[k] = v
	}
	w.WriteHeader(cmp.Or(b.status, http.StatusOK))
	w.Write(b.body.Bytes())
}

// bufferedResponse holds a response of Dex until the guard knows whether to change it.
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// keyPrefix is the part of a submitted key that names it: the prefix `tracekit apikey list` shows.
func keyPrefix(key string) string {
	key = strings.TrimSpace(key)
	if n := len(store.KeyPrefix) + 6; len(key) > n {
		return key[:n]
	}
	return key
}
