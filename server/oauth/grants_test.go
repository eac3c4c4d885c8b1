package oauth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracekit/tracekit/internal/browsertest"
)

// grantClient is one sign-in (grant) of a registered client, as a client keeps it.
type grantClient struct {
	clientID, redirect string
	tools              []string
	tok                tokenResponse
}

// signInWithTools registers nothing: it signs clientID in with tn's key, ticking tools, and exchanges
// the code.
func (e *env) signInWithTools(t *testing.T, tn *tenant, clientID, redirect string, tools []string) grantClient {
	t.Helper()
	p := newPKCE()
	q := authorizeQuery(clientID, redirect, p)
	page, back := e.loginPage(t, tn, q)
	if back != nil {
		t.Fatalf("authorization refused: %s", back)
	}
	res, body := postForm(t, page, url.Values{"login": {"api-key"}, "password": {tn.key}, "tools": tools}, nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-in: %d %s", res.StatusCode, body)
	}
	loc, _ := res.Location()
	res, body = getURL(t, loc.String())
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback: %d %s", res.StatusCode, body)
	}
	cb, _ := res.Location()
	status, tok := e.token(t, tn, url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")},
		"client_id": {clientID}, "redirect_uri": {redirect}, "code_verifier": {p.verifier}})
	if status != http.StatusOK {
		t.Fatalf("token: %d %+v", status, tok)
	}
	return grantClient{clientID: clientID, redirect: redirect, tools: tools, tok: tok}
}

// wantScope is the scope a token granting tools reports.
func wantScope(tools []string) string {
	s := "read"
	for _, g := range tools {
		s += " tools:" + g
	}
	return s
}

// refreshOnce posts a refresh without failing the test, for use from several goroutines.
func refreshOnce(tn *tenant, clientID, refreshToken string) (int, tokenResponse, error) {
	form := url.Values{"grant_type": {"refresh_token"}, "client_id": {clientID}, "refresh_token": {refreshToken}}
	res, err := noRedirects.PostForm(tn.url+"/mcp/token", form)
	if err != nil {
		return 0, tokenResponse{}, err
	}
	defer res.Body.Close()
	var tr tokenResponse
	err = json.NewDecoder(res.Body).Decode(&tr)
	return res.StatusCode, tr, err
}

func (e *env) refresh(t *testing.T, tn *tenant, g *grantClient) (int, tokenResponse) {
	t.Helper()
	status, tr := e.token(t, tn, url.Values{"grant_type": {"refresh_token"}, "client_id": {g.clientID}, "refresh_token": {g.tok.RefreshToken}})
	if status == http.StatusOK {
		g.tok = tr
	}
	return status, tr
}

// Issue 13, item 1: client X grants traces only, client Y (same key) everything; refreshes of each keep
// exactly their own grant, however they interleave.
func TestRefresh_EachGrantKeepsItsOwnToolGroups(t *testing.T) {
	e := newEnv(t, envOptions{refreshReuse: time.Nanosecond}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	x := e.signInWithTools(t, tn, e.registerClient(t, tn, redirect), redirect, []string{"traces"})
	y := e.signInWithTools(t, tn, e.registerClient(t, tn, redirect), redirect, []string{"traces", "metrics", "llm", "debugging"})
	for i := range 3 {
		for _, g := range []*grantClient{&x, &y} {
			if status, tr := e.refresh(t, tn, g); status != http.StatusOK || tr.Scope != wantScope(g.tools) {
				t.Fatalf("refresh %d of the grant of %v: %d scope %q %+v", i+1, g.tools, status, tr.Scope, tr)
			}
		}
	}
}

// Issue 13, item 2: a refresh right after the code exchange (inside Dex's reuse interval), then more,
// some concurrent with the same token: every one succeeds, none answers 500.
func TestRefresh_SoonAfterTheExchangeAndConcurrently(t *testing.T) {
	e := newEnv(t, envOptions{refreshReuse: 2 * time.Second}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	g := e.signInWithTools(t, tn, e.registerClient(t, tn, redirect), redirect, []string{"traces"})
	if status, tr := e.refresh(t, tn, &g); status != http.StatusOK {
		t.Fatalf("refresh at once: %d %+v", status, tr)
	}
	time.Sleep(2100 * time.Millisecond)
	for round := range 3 {
		var wg sync.WaitGroup
		results := make([]tokenResponse, 4)
		statuses := make([]int, 4)
		for i := range results {
			wg.Go(func() {
				var err error
				statuses[i], results[i], err = refreshOnce(tn, g.clientID, g.tok.RefreshToken)
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		for i, s := range statuses {
			if s != http.StatusOK || results[i].RefreshToken != results[0].RefreshToken || results[i].Scope != "read tools:traces" {
				t.Fatalf("round %d, concurrent refresh %d: %d %+v (first got %+v)", round, i, s, results[i], results[0])
			}
		}
		g.tok = results[0]
		time.Sleep(2100 * time.Millisecond)
	}
}

// Two refreshes with the same token, answered just before and just after the end of Dex's reuse
// interval (as concurrent refreshes of a loaded client can be), carry the same refresh token: the
// client cannot tell which answer is newer, and keeping either must not end its grant. Dex alone
// answers the first with the presented token itself and rotates it away in the second; TestRefreshSoak
// then lost a grant now and then under load.
func TestRefresh_SameTokenAroundTheEndOfTheReuseIntervalGetsOneSuccessor(t *testing.T) {
	const reuse = time.Second
	e := newEnv(t, envOptions{refreshReuse: reuse}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	g := e.signInWithTools(t, tn, e.registerClient(t, tn, redirect), redirect, []string{"traces"})
	time.Sleep(reuse + 200*time.Millisecond)
	if status, tr := e.refresh(t, tn, &g); status != http.StatusOK {
		t.Fatalf("refresh: %d %+v", status, tr)
	}
	rotated := time.Now()
	answers := make([]tokenResponse, 2)
	for i, at := range []time.Duration{reuse - 250*time.Millisecond, reuse + 250*time.Millisecond} {
		time.Sleep(time.Until(rotated.Add(at)))
		status, tr, err := refreshOnce(tn, g.clientID, g.tok.RefreshToken)
		if err != nil || status != http.StatusOK {
			t.Fatalf("refresh %d with the same token: %d %+v %v", i, status, tr, err)
		}
		answers[i] = tr
	}
	if answers[0].RefreshToken != answers[1].RefreshToken {
		t.Errorf("the same refresh token, presented twice %s apart, got two different successors", 500*time.Millisecond)
	}
	time.Sleep(reuse + 200*time.Millisecond)
	g.tok = answers[0]
	if status, tr := e.refresh(t, tn, &g); status != http.StatusOK {
		t.Errorf("refresh with the first answer's token after the reuse interval: %d %+v", status, tr)
	}
}

// Issue 13, items 3 and 4: a malformed, unknown or rotated-away refresh token is invalid_grant; the
// rotated-away one, presented after the reuse interval, ends its grant (OAuth 2.1 §4.3.1), while
// another sign-in of the same client with the same key goes on.
func TestRefresh_ReuseOfARotatedTokenEndsItsGrantOnly(t *testing.T) {
	e := newEnv(t, envOptions{refreshReuse: 500 * time.Millisecond}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	first := e.signInWithTools(t, tn, clientID, redirect, []string{"traces"})
	second := e.signInWithTools(t, tn, clientID, redirect, []string{"metrics"})
	if status, tr := e.refresh(t, tn, &first); status != http.StatusOK || tr.Scope != "read tools:traces" {
		t.Fatalf("the first sign-in after a second one of the same client and key: %d %+v", status, tr)
	}

	for name, token := range map[string]string{"malformed": "not-a-token", "unknown": "CgR4eHh4EgR5eXl5"} {
		if status, tr, _ := refreshOnce(tn, clientID, token); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
			t.Errorf("%s refresh token: %d %+v", name, status, tr)
		}
	}

	time.Sleep(600 * time.Millisecond)
	stolen := first.tok.RefreshToken
	if status, tr := e.refresh(t, tn, &first); status != http.StatusOK {
		t.Fatalf("refresh: %d %+v", status, tr)
	}
	time.Sleep(600 * time.Millisecond)
	if status, tr, _ := refreshOnce(tn, clientID, stolen); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Fatalf("rotated-away token: %d %+v", status, tr)
	}
	if status, tr := e.refresh(t, tn, &first); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Fatalf("the current token of a grant whose old token came back: %d %+v", status, tr)
	}
	if status, tr := e.refresh(t, tn, &second); status != http.StatusOK || tr.Scope != "read tools:metrics" {
		t.Fatalf("the other sign-in: %d %+v", status, tr)
	}
}

// Issue 13, item 9: a replayed authorization code ends the grant it started (RFC 6749 §4.1.2).
func TestCodeReplay_EndsTheGrantItStarted(t *testing.T) {
	e := newEnv(t, envOptions{refreshReuse: time.Nanosecond}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	p := newPKCE()
	code := e.signIn(t, tn, authorizeQuery(clientID, redirect, p), tn.key)
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {clientID},
		"redirect_uri": {redirect}, "code_verifier": {p.verifier}}
	status, tok := e.token(t, tn, form)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %+v", status, tok)
	}
	if status, tr := e.token(t, tn, form); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Fatalf("replayed code: %d %+v", status, tr)
	}
	if status, tr, _ := refreshOnce(tn, clientID, tok.RefreshToken); status != http.StatusBadRequest || tr.Error != "invalid_grant" {
		t.Fatalf("refresh of the grant of a replayed code: %d %+v", status, tr)
	}
}

// Issue 13, item 8: MCP clients are public clients of Dex; going to Dex directly, without PKCE or
// with the client's own redirect URI, gets no code, and Dex's token endpoint wants the verifier.
func TestDex_DirectAuthorizationRequestsAreRefused(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	p := newPKCE()
	base := url.Values{"client_id": {clientID}, "response_type": {"code"}, "state": {"s"}, "connector_id": {"tracekit"},
		"scope": {"openid offline_access groups audience:server:client_id:tenant-acme"}}
	for name, q := range map[string]url.Values{
		"own redirect URI":            {"redirect_uri": {redirect}, "code_challenge": {p.challenge}, "code_challenge_method": {"S256"}},
		"facade's callback, no PKCE":  {"redirect_uri": {tn.url + "/mcp/callback"}},
		"facade's callback, plain":    {"redirect_uri": {tn.url + "/mcp/callback"}, "code_challenge": {p.verifier}, "code_challenge_method": {"plain"}},
		"own redirect URI, connector": {"redirect_uri": {redirect}},
	} {
		for k, v := range base {
			q[k] = v
		}
		path := "/auth"
		if name == "own redirect URI, connector" {
			path = "/auth/tracekit"
		}
		res, body := getURL(t, e.issuer+path+"?"+q.Encode())
		if res.StatusCode != http.StatusBadRequest {
			t.Errorf("%s: %d %s %s", name, res.StatusCode, res.Header.Get("Location"), body)
		}
	}
	// The facade's own requests pass.
	if page, back := e.loginPage(t, tn, authorizeQuery(clientID, redirect, p)); page == "" {
		t.Fatalf("through the facade: %v", back)
	}
	res, body := postForm(t, e.issuer+"/token", url.Values{"grant_type": {"authorization_code"}, "code": {"x"},
		"client_id": {clientID}, "redirect_uri": {tn.url + "/mcp/callback"}}, nil)
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "code_verifier") {
		t.Fatalf("Dex's token endpoint without a verifier: %d %s", res.StatusCode, body)
	}
}

// Issue 13, item 5 (without a browser): the API-key page cannot be framed, and a cross-site post of
// its form is refused even with the right key.
func TestAPIKeyPage_RefusesFramingAndCrossSitePosts(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	page, _ := e.loginPage(t, tn, authorizeQuery(e.registerClient(t, tn, redirect), redirect, newPKCE()))
	res, _ := getURL(t, page)
	if res.Header.Get("X-Frame-Options") != "DENY" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
		t.Fatalf("API-key page headers: %v", res.Header)
	}
	for name, h := range map[string]http.Header{
		"foreign origin":        {"Origin": {"https://evil.example"}},
		"cross-site fetch":      {"Sec-Fetch-Site": {"cross-site"}},
		"same-site, other port": {"Sec-Fetch-Site": {"same-site"}},
	} {
		if status, _ := e.submitKey(t, page, tn.key, h); status != http.StatusForbidden {
			t.Errorf("%s: %d", name, status)
		}
	}
	issuer, _ := url.Parse(e.issuer)
	if status, _ := e.submitKey(t, page, tn.key, http.Header{"Origin": {"http://" + issuer.Host}, "Sec-Fetch-Site": {"same-origin"}}); status != http.StatusSeeOther {
		t.Fatalf("the page's own post: %d", status)
	}
}

// Issue 13, item 9: the smaller rules of registration, authorization, token and resource endpoints.
func TestOAuth_SmallerRules(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	if status, out := e.register(t, tn, map[string]any{"redirect_uris": []string{"https://user:pass@evil.example/cb"}}); status != http.StatusBadRequest || out["error"] != "invalid_redirect_uri" {
		t.Errorf("redirect URI with userinfo: %d %v", status, out)
	}
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	q := authorizeQuery(clientID, redirect, newPKCE())
	q.Add("state", "second")
	if res, body := getURL(t, tn.url+"/mcp/authorize?"+q.Encode()); res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "state") {
		t.Errorf("duplicated state: %d %s", res.StatusCode, body)
	}
	req, _ := http.NewRequest(http.MethodPost, tn.url+"/mcp/token", strings.NewReader(`{"grant_type":"refresh_token","client_id":"`+clientID+`","refresh_token":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if res, body := do(t, req); res.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_request"`) {
		t.Errorf("JSON body at the token endpoint: %d %s", res.StatusCode, body)
	}
	for _, token := range []string{"", "not-a-token"} {
		if _, www := callMCP(t, tn, token); !strings.Contains(www, `scope="read"`) {
			t.Errorf("WWW-Authenticate with token %q: %s", token, www)
		}
	}
}

// Issue 13, item 6: a token that grants traces only reads no breakpoints on the REST API either.
func TestREST_OAuthTokensKeepTheirToolGroups(t *testing.T) {
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	clientID := e.registerClient(t, tn, redirect)
	for _, c := range []struct {
		tools []string
		want  int
	}{{[]string{"traces"}, http.StatusForbidden}, {[]string{"debugging"}, http.StatusOK}} {
		g := e.signInWithTools(t, tn, clientID, redirect, c.tools)
		req, _ := http.NewRequest(http.MethodGet, tn.url+"/v1/breakpoints", nil)
		req.Header.Set("Authorization", "Bearer "+g.tok.AccessToken)
		if res, body := do(t, req); res.StatusCode != c.want {
			t.Errorf("GET /v1/breakpoints with %v: %d %s", c.tools, res.StatusCode, body)
		}
	}
}

// Issue 13, item 5 in Chromium: a page of another site can neither frame the API-key page nor submit
// its form, even with the right key.
func TestAPIKeyPage_InChromiumAnotherSiteCannotFrameOrSubmitIt(t *testing.T) {
	b := browsertest.New(t, browsertest.SameProcessFrames...)
	e := newEnv(t, envOptions{}, "acme")
	tn := e.tenants["acme"]
	redirect := "http://127.0.0.1:7777/callback"
	page, _ := e.loginPage(t, tn, authorizeQuery(e.registerClient(t, tn, redirect), redirect, newPKCE()))
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		if r.URL.Path == "/frame" {
			fmt.Fprintf(w, `<!DOCTYPE html><p>Win a prize</p><iframe src=%q width="600" height="400"></iframe>`, page)
			return
		}
		fmt.Fprintf(w, `<!DOCTYPE html><form method="post" action=%q><input name="login" value="api-key">`+
			`<input name="password" value=%q><input name="tools" value="traces"></form><script>document.forms[0].submit()</script>`, page, tn.key)
	}))
	defer evil.Close()
	// localhost and 127.0.0.1 are different sites.
	evilURL := strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)

	_, frames, err := b.Visit(evilURL+"/frame", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(frames) != 1 || frames[0] != "unreachable "+page {
		t.Errorf("the API-key page in another site's frame: frames %q", frames)
	}
	text, _, err := b.Visit(evilURL+"/post", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text, "sent from another site") {
		t.Errorf("another site's post of the form, with the right key, ends on: %q", text)
	}
}
