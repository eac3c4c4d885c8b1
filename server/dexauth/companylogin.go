package dexauth

import (
	"context"
	"html/template"
	"net/http"
	"strconv"

	"github.com/dexidp/dex/storage"

	"github.com/tracekit/tracekit/server/oauth"
)

// Company sign-in as the guard sees it: Dex calls the company connector, which checks the person
// against the tenant's access rules; the guard tells it the tenant (from the audience the facade
// asked for) and, when the person is not admitted, shows the refusal page in place of Dex's
// "Internal server error".

// companyPasswordLogin passes an LDAP user name and password to Dex, throttling wrong passwords per
// IP like wrong API keys.
func (g *guard) companyPasswordLogin(w http.ResponseWriter, r *http.Request, authReq storage.AuthRequest) {
	ip := "ip:" + oauth.ClientIP(r)
	if blocked, wait := g.perIP.Exhausted(ip); blocked {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())))
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusTooManyRequests)
		w.Write([]byte("Too many wrong passwords from here. Try again in a minute.\n"))
		return
	}
	buf, refused := g.company(r, authReq)
	switch {
	case refused.Tenant != "":
		writeRefusal(w, refused)
	case buf.status == http.StatusUnauthorized: // Dex shows the form again: a wrong password
		g.perIP.Allow(ip)
		buf.writeTo(w)
	default:
		buf.writeTo(w)
	}
}

// companyCallback is the identity provider's redirect back to Dex (OIDC).
func (g *guard) companyCallback(w http.ResponseWriter, r *http.Request) {
	authReq, err := g.storage.GetAuthRequest(r.URL.Query().Get("state"))
	if err != nil {
		g.next.ServeHTTP(w, r) // Dex explains
		return
	}
	buf, refused := g.company(r, authReq)
	if refused.Tenant != "" {
		writeRefusal(w, refused)
		return
	}
	buf.writeTo(w)
}

// company lets Dex run the company connector for authReq's tenant and holds Dex's answer.
func (g *guard) company(r *http.Request, authReq storage.AuthRequest) (*bufferedResponse, *refusal) {
	refused := &refusal{}
	ctx := context.WithValue(r.Context(), refusalKey{}, refused)
	if tenant, ok := tenantOf(authReq.Scopes); ok {
		ctx = context.WithValue(ctx, tenantKey{}, tenant)
	}
	buf := &bufferedResponse{header: http.Header{}}
	g.next.ServeHTTP(buf, r.WithContext(ctx))
	return buf, refused
}

func writeRefusal(w http.ResponseWriter, r *refusal) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusForbidden)
	refusalPage.Execute(w, r)
}

var refusalPage = template.Must(template.New("refusal").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>TraceKit sign-in</title></head>
<body style="font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#1f2937">
<h1 id="refused" style="font-size:1.25rem">No access to {{if .DisplayName}}{{.DisplayName}} ({{.Tenant}}){{else}}{{.Tenant}}{{end}}</h1>
<p>{{.Provider}} signed you in as <strong>{{.Who}}</strong>, but the TraceKit tenant <strong>{{.Tenant}}</strong> admits only
{{if .Groups}}members of {{range $i, $g := .Groups}}{{if $i}}, {{end}}<strong>{{$g}}</strong>{{end}}{{else}}people its owners list, and lists nobody yet{{end}}.</p>
<p>What to ask for: {{if .Groups}}membership of one of these groups, from whoever manages them in {{.Provider}}; or{{end}}
ask the tenant's owners to add you or one of your groups to <code>spec.access</code> of TraceKitTenant <code>{{.Tenant}}</code>.
Then start the sign-in again from your assistant.</p>
</body></html>
`))
