package ui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tracekit/tracekit/server/auth"
	"github.com/tracekit/tracekit/server/oauth"
	"github.com/tracekit/tracekit/server/store"
)

// KeysPath is the keys page, under Path; <public URL>/keys redirects there, so that it shares the
// pages' sign-in cookie, whose path is /ui.
const KeysPath = "/keys"

// keyScopes are offered on the page, each with what it lets a key do.
var keyScopes = []struct{ ID, Title string }{
	{store.ScopeRead, "read: MCP tools and these pages"},
	{store.ScopeIngest, "ingest: send OpenTelemetry traces and snapshots"},
	{store.ScopeWrite, "write: set live-debugging breakpoints"},
}

// defaultKeyLife prefills the expiry field.
const defaultKeyLife = 90 * 24 * time.Hour

func (w *web) registerKeys(r, g gin.IRouter) {
	r.GET(KeysPath, func(c *gin.Context) { c.Redirect(http.StatusSeeOther, w.prefix+Path+KeysPath) })
	g.GET(KeysPath, w.keysPage)
	g.POST(KeysPath, w.createKey)
	g.POST(KeysPath+"/revoke", w.revokeKey)
}

// member authenticates a keys-page request: any credential of the tenant with the read scope, the
// people's scope (an ingest-only key lives in exporters' configuration, not in a person's hands).
func (w *web) member(c *gin.Context) (auth.Principal, bool) {
	secureHeaders(c)
	p, err := w.principal(c)
	switch {
	case errors.Is(err, auth.ErrNoCredentials), errors.Is(err, auth.ErrInvalidCredentials):
		c.Redirect(http.StatusSeeOther, w.prefix+Path+"/signin?next="+url.QueryEscape(w.prefix+Path+KeysPath))
		return p, false
	case err != nil:
		w.message(c, http.StatusServiceUnavailable, "Signing in is unavailable right now; try again shortly.")
		return p, false
	case !p.HasScope(store.ScopeRead):
		w.message(c, http.StatusForbidden, "Managing keys needs a sign-in with the 'read' scope; this one has "+strings.Join(p.Scopes, ", ")+".")
		return p, false
	}
	return p, true
}

// csrfToken binds the page's forms to the credential the browser signed in with: another site can
// make the browser post, but cannot read the HttpOnly cookie the token is derived from.
func csrfToken(credential string) string {
	m := hmac.New(sha256.New, []byte(credential))
	m.Write([]byte("tracekit keys page"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// credential is the secret the request authenticated with: its bearer token or the sign-in cookie.
func credential(c *gin.Context) string {
	if t := auth.BearerToken(c.Request); t != "" {
		return t
	}
	v, _ := c.Cookie(cookie)
	return v
}

// checkForm refuses a post that did not come from this server's own keys page.
func (w *web) checkForm(c *gin.Context) bool {
	if o := c.GetHeader("Origin"); o != "" && o != w.origin && !sameHost(o, c.Request.Host) {
		w.message(c, http.StatusForbidden, "Manage keys from this server's own keys page.")
		return false
	}
	if !hmac.Equal([]byte(c.PostForm("csrf")), []byte(csrfToken(credential(c)))) {
		w.message(c, http.StatusForbidden, "This form has expired (you signed in again since it was opened); reload the keys page and retry.")
		return false
	}
	return true
}

func (w *web) keysPage(c *gin.Context) {
	p, ok := w.member(c)
	if !ok {
		return
	}
	w.renderKeys(c, p, http.StatusOK, keysView{})
}

// keysView is what one rendering of the page shows besides the list.
type keysView struct {
	created      string // the new key, shown once
	notice, err  string
	form         keyForm
	formReturned bool // form holds what the person entered (after an error)
}

type keyForm struct {
	name, expires string
	scopes, tools []string
}

func (w *web) createKey(c *gin.Context) {
	p, ok := w.member(c)
	if !ok || !w.checkForm(c) {
		return
	}
	f := keyForm{name: strings.TrimSpace(c.PostForm("name")), expires: strings.TrimSpace(c.PostForm("expires")),
		scopes: c.PostFormArray("scope"), tools: c.PostFormArray("tools")}
	n, problem := newKey(p, f, time.Now())
	if problem != "" {
		w.renderKeys(c, p, http.StatusBadRequest, keysView{err: problem, form: f, formReturned: true})
		return
	}
	tn := w.cfg.DB.ForTenant(p.TenantID)
	key, k, err := tn.CreateAPIKey(c.Request.Context(), n)
	if err != nil {
		w.log.Error("keys page: create key failed", "tenant", p.TenantID, "err", err)
		w.renderKeys(c, p, http.StatusInternalServerError, keysView{err: "The key could not be created; it has been logged. Try again shortly.", form: f, formReturned: true})
		return
	}
	detail := "scopes " + k.Scopes
	if k.ToolGroups != "" {
		detail += "; tool groups " + k.ToolGroups
	}
	if k.ExpiresNS != 0 {
		detail += "; expires " + time.Unix(0, k.ExpiresNS).UTC().Format(time.RFC3339)
	}
	w.audit(c, p, store.AuditEvent{Action: store.AuditKeyCreate, Target: k.ID + " (" + k.Prefix + "…, " + k.Name + ")", Detail: detail})
	w.log.Info("keys page: key created", "tenant", p.TenantID, "key", k.ID, "by", p.Subject)
	w.renderKeys(c, p, http.StatusOK, keysView{created: key, notice: "Created " + k.Prefix + "…. Copy it now: it is shown only once."})
}

// newKey checks a create form: known scopes and tool groups, none beyond what the person's own
// sign-in holds, a name that fits, an expiry in the future.
func newKey(p auth.Principal, f keyForm, now time.Time) (n store.NewAPIKey, problem string) {
	n = store.NewAPIKey{Name: f.name, Scopes: f.scopes, ToolGroups: f.tools, CreatedBy: p.Actor()}
	switch {
	case f.name == "":
		return n, "Name the key after who or what will use it (e.g. ci-exporter, alice-laptop)."
	case len(f.name) > store.MaxKeyNameLen:
		return n, fmt.Sprintf("The name is %d characters long; keep it to %d.", len(f.name), store.MaxKeyNameLen)
	case len(f.scopes) == 0:
		return n, "Choose at least one scope."
	}
	for _, s := range f.scopes {
		if !slices.ContainsFunc(keyScopes, func(k struct{ ID, Title string }) bool { return k.ID == s }) {
			return n, fmt.Sprintf("Unknown scope %q: choose among read, ingest and write.", s)
		}
		if !p.HasScope(s) {
			return n, fmt.Sprintf("Your sign-in does not hold the %q scope, so it cannot give it to a key; ask a member whose key has it.", s)
		}
	}
	if slices.Contains(f.scopes, store.ScopeRead) && len(f.tools) == 0 {
		return n, "Choose at least one tool group for a key with the read scope."
	}
	for _, g := range f.tools {
		if !auth.IsToolGroup(g) {
			return n, fmt.Sprintf("Unknown tool group %q.", g)
		}
		if p.ToolGroups != nil && !slices.Contains(p.ToolGroups, g) {
			return n, fmt.Sprintf("Your sign-in was not granted the %q tool group, so it cannot give it to a key.", g)
		}
	}
	if f.expires != "" {
		day, err := time.Parse(time.DateOnly, f.expires)
		if err != nil {
			return n, fmt.Sprintf("The expiry %q is not a date; use YYYY-MM-DD, or leave it empty for a key that never expires.", f.expires)
		}
		// The key works through the chosen day (UTC).
		n.Expires = day.Add(24 * time.Hour)
		if !n.Expires.After(now) {
			return n, fmt.Sprintf("The expiry %s is in the past; choose today or a later date.", f.expires)
		}
	}
	return n, ""
}

func (w *web) revokeKey(c *gin.Context) {
	p, ok := w.member(c)
	if !ok || !w.checkForm(c) {
		return
	}
	k, err := w.cfg.DB.ForTenant(p.TenantID).RevokeAPIKey(c.Request.Context(), c.PostForm("id"))
	if err != nil {
		w.renderKeys(c, p, http.StatusBadRequest, keysView{err: "No active key " + c.PostForm("id") + " to revoke; it may have been revoked already."})
		return
	}
	w.audit(c, p, store.AuditEvent{Action: store.AuditKeyRevoke, Target: k.ID + " (" + k.Prefix + "…, " + k.Name + ")"})
	w.log.Info("keys page: key revoked", "tenant", p.TenantID, "key", k.ID, "by", p.Subject)
	w.renderKeys(c, p, http.StatusOK, keysView{notice: "Revoked " + k.Prefix + "…; running servers refuse it within 30 seconds."})
}

// audit records an action of the signed-in person; a failure is logged, the action stands.
func (w *web) audit(c *gin.Context, p auth.Principal, e store.AuditEvent) {
	e.Actor, e.Method, e.IP, e.UserAgent = p.Actor(), p.Method, oauth.ClientIP(c.Request), c.Request.UserAgent()
	if err := w.cfg.DB.ForTenant(p.TenantID).RecordAudit(c.Request.Context(), e); err != nil {
		w.log.Error("audit event not recorded", "tenant", p.TenantID, "action", e.Action, "err", err)
	}
}

const keysStyle = `body{font:14px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}` +
	`table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left;vertical-align:top}` +
	`fieldset{margin:.5rem 0}label{display:block;margin:.2rem 0}input[type=text],input[type=date]{padding:.4rem;font:inherit}` +
	`button{padding:.4rem .8rem;font:inherit}form.inline{display:inline}.err{color:#c62828}.ok{color:#2e7d32}.revoked{color:#888}` +
	`#new-key{display:block;padding:.6rem;background:#f3f3f3;word-break:break-all;margin:.5rem 0}`

const keysScript = `document.getElementById("copy").addEventListener("click",()=>{` +
	`navigator.clipboard.writeText(document.getElementById("new-key").textContent).then(()=>{document.getElementById("copy").textContent="Copied"})})`

var keysCSP = "default-src 'none'; style-src '" + hash(keysStyle) + "'; script-src '" + hash(keysScript) +
	"'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func (w *web) renderKeys(c *gin.Context, p auth.Principal, status int, v keysView) {
	keys, err := w.cfg.DB.ForTenant(p.TenantID).APIKeys(c.Request.Context())
	if err != nil {
		w.log.Error("keys page: list keys failed", "tenant", p.TenantID, "err", err)
		w.message(c, http.StatusInternalServerError, "The keys could not be listed; it has been logged. Try again shortly.")
		return
	}
	now := time.Now()
	esc, csrf := html.EscapeString, html.EscapeString(csrfToken(credential(c)))
	var b strings.Builder
	b.WriteString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>API keys · TraceKit</title><style>` + keysStyle + `</style></head><body>`)
	b.WriteString(`<h1>API keys of ` + esc(p.TenantID) + `</h1><p>Signed in as <span id="actor">` + esc(p.Actor()) + `</span>. ` +
		`<form method="post" class="inline" action="` + esc(w.prefix+Path+"/signout") + `"><button type="submit">Sign out</button></form></p>`)
	if v.err != "" {
		b.WriteString(`<p class="err" id="keys-error">` + esc(v.err) + `</p>`)
	}
	if v.notice != "" {
		b.WriteString(`<p class="ok" id="keys-notice">` + esc(v.notice) + `</p>`)
	}
	if v.created != "" {
		b.WriteString(`<code id="new-key">` + esc(v.created) + `</code><button type="button" id="copy">Copy</button><script>` + keysScript + `</script>`)
	}

	f := v.form
	if !v.formReturned {
		f = keyForm{expires: now.Add(defaultKeyLife).UTC().Format(time.DateOnly), scopes: []string{store.ScopeRead}}
		for _, g := range auth.ToolGroups {
			if p.MayUseTool(g.Tools[0]) {
				f.tools = append(f.tools, g.ID)
			}
		}
	}
	check := func(on bool) string {
		if on {
			return " checked"
		}
		return ""
	}
	b.WriteString(`<h2>Create a key</h2><form method="post" id="create" action="` + esc(w.prefix+Path+KeysPath) + `"><input type="hidden" name="csrf" value="` + csrf + `">`)
	b.WriteString(`<label>Name <input type="text" name="name" id="name" maxlength="` + fmt.Sprint(store.MaxKeyNameLen) + `" required value="` + esc(f.name) + `" placeholder="ci-exporter"></label>`)
	b.WriteString(`<fieldset><legend>Scopes (at most those of your own sign-in)</legend>`)
	for _, s := range keyScopes {
		if p.HasScope(s.ID) {
			b.WriteString(`<label><input type="checkbox" name="scope" value="` + s.ID + `"` + check(slices.Contains(f.scopes, s.ID)) + `> ` + esc(s.Title) + `</label>`)
		}
	}
	b.WriteString(`</fieldset><fieldset><legend>MCP tool groups the key may call</legend>`)
	for _, g := range auth.ToolGroups {
		if p.ToolGroups == nil || slices.Contains(p.ToolGroups, g.ID) {
			b.WriteString(`<label><input type="checkbox" name="tools" value="` + g.ID + `"` + check(slices.Contains(f.tools, g.ID)) + `> ` + esc(g.Title) + `</label>`)
		}
	}
	b.WriteString(`</fieldset><label>Expires after (UTC; empty: never) <input type="date" name="expires" id="expires" value="` + esc(f.expires) + `"></label>`)
	b.WriteString(`<button type="submit" id="create-key">Create key</button></form>`)

	b.WriteString(`<h2>Keys</h2><table id="keys"><thead><tr><th>Name</th><th>Prefix</th><th>Scopes</th><th>Created</th><th>Expires</th><th>Last used</th><th>State</th><th></th></tr></thead><tbody>`)
	day := func(ns int64, none string) string {
		if ns == 0 {
			return none
		}
		return time.Unix(0, ns).UTC().Format("2006-01-02 15:04")
	}
	for _, k := range keys {
		state, class := "active", ""
		switch {
		case k.RevokedNS != 0:
			state, class = "revoked "+day(k.RevokedNS, ""), "revoked"
		case k.Expired(now):
			state, class = "expired", "revoked"
		}
		scopes := k.Scopes
		if k.ToolGroups != "" {
			scopes += " (tools: " + k.ToolGroups + ")"
		}
		created := day(k.CreatedNS, "")
		if k.CreatedBy != "" {
			created += " by " + k.CreatedBy
		}
		b.WriteString(`<tr data-prefix="` + esc(k.Prefix) + `" class="` + class + `"><td>` + esc(k.Name) + `</td><td><code>` + esc(k.Prefix) + `…</code></td><td>` + esc(scopes) +
			`</td><td>` + esc(created) + `</td><td>` + day(k.ExpiresNS, "never") + `</td><td>` + day(k.LastUsedNS, "—") + `</td><td class="state">` + esc(state) + `</td><td>`)
		if class == "" {
			b.WriteString(`<form method="post" action="` + esc(w.prefix+Path+KeysPath+"/revoke") + `"><input type="hidden" name="csrf" value="` + csrf +
				`"><input type="hidden" name="id" value="` + esc(k.ID) + `"><button type="submit" class="revoke">Revoke</button></form>`)
		}
		b.WriteString(`</td></tr>`)
	}
	b.WriteString(`</tbody></table></body></html>`)
	c.Header("Content-Security-Policy", keysCSP)
	c.Data(status, "text/html; charset=utf-8", []byte(b.String()))
}
