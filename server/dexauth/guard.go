package dexauth

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"math"
	"net/http"
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
//   - on the API-key page, it throttles wrong keys per client and per IP (a throttled attempt gets 429
//     and is not checked at all), and tells the connector which tenant the sign-in is for and which
//     tool groups the person ticked (Dex passes the connector only the key);
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
	switch {
	case r.Method == http.MethodPost && strings.HasPrefix(p, g.issuerPath+"/auth/") && strings.HasSuffix(p, "/login"):
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
	rec := &statusRecorder{ResponseWriter: w}
	g.next.ServeHTTP(rec, r.WithContext(ctx))
	if rec.status == http.StatusUnauthorized { // Dex shows the form again: a wrong key
		g.perIP.Allow(ip)
		g.perClient.Allow(client)
	}
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

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// bufferedResponse holds a token response until the guard knows whether to replace it.
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
