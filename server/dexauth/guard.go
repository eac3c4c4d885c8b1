package dexauth

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"html/template"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/oauth"
)

type (
	tenantKey  struct{}
	toolsKey   struct{}
	refreshKey struct{}
)

// refreshOutcome lets the connector tell the guard that a refresh failed because the key was revoked.
type refreshOutcome struct{ keyRevoked bool }

// guard sits in front of Dex for what Dex does not do:
//   - on the API-key page, it says which client asks and where the access will go, throttles wrong
//     keys per client and per IP (a throttled attempt gets 429 and is not checked at all), and tells
//     the connector which tenant the sign-in is for and which tool groups the person ticked (Dex
//     passes the connector only the key);
//   - on the token endpoint, it turns a refresh refused because the key was revoked into RFC 6749's
//     invalid_grant (Dex answers 500 server_error), so that clients sign in again instead of retrying.
type guard struct {
	storage    storage.Storage
	issuerPath string
	perIP      *oauth.KeyedLimiter
	perClient  *oauth.KeyedLimiter
	next       http.Handler
}

func (g *guard) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	login := strings.HasPrefix(p, g.issuerPath+"/auth/") && strings.HasSuffix(p, "/login")
	switch {
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
	case r.Method == http.MethodPost && p == g.issuerPath+"/token":
		g.token(w, r)
	default:
		g.next.ServeHTTP(w, r)
	}
}

func (g *guard) passwordLogin(w http.ResponseWriter, r *http.Request) {
	authReq, err := g.storage.GetAuthRequest(r.URL.Query().Get("state"))
	if err != nil {
		g.next.ServeHTTP(w, r) // Dex explains an unknown or expired sign-in
		return
	}
	ip, client := "ip:"+oauth.ClientIP(r), "client:"+authReq.ClientID
	for _, l := range []struct {
		lim *oauth.KeyedLimiter
		key string
	}{{g.perIP, ip}, {g.perClient, client}} {
		if blocked, wait := l.lim.Exhausted(l.key); blocked {
			w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusTooManyRequests)
			throttledPage.Execute(w, max(1, int(math.Ceil(wait.Minutes()))))
			return
		}
	}
	tools := chosenToolGroups(r)
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
		g.perClient.Allow(client)
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

func (g *guard) token(w http.ResponseWriter, r *http.Request) {
	outcome := &refreshOutcome{}
	buf := &bufferedResponse{header: http.Header{}}
	g.next.ServeHTTP(buf, r.WithContext(context.WithValue(r.Context(), refreshKey{}, outcome)))
	if outcome.keyRevoked {
		body, _ := json.Marshal(oauth.APIError{Code: "invalid_grant", Description: "the API key this sign-in used was revoked; sign in again with a current key"})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusBadRequest)
		w.Write(body)
		return
	}
	for k, v := range buf.header {
		w.Header()[k] = v
	}
	w.WriteHeader(buf.status)
	w.Write(buf.body.Bytes())
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
