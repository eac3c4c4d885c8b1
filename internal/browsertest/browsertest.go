// Package browsertest drives a real headless Chromium through TraceKit's sign-in page, and stands in
// for an MCP client's loopback redirect URI, for the tests that run the OAuth flow end to end
// (server/oauth, test/e2e). Only tests import it.
package browsertest

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// RequireTool finds an executable the test needs, at one of paths or on $PATH. `make test-deps`
// installs the tools, so a missing one fails the test rather than letting it pass unseen.
func RequireTool(t testing.TB, name string, paths ...string) string {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	t.Fatalf("%s is required for this test; run `make test-deps`", name)
	return ""
}

// SameProcessFrames keeps frames of other sites in their page's process, where the page's frame tree
// shows them (site isolation would move them out of it).
var SameProcessFrames = []chromedp.ExecAllocatorOption{
	chromedp.Flag("disable-site-isolation-trials", true),
	chromedp.Flag("disable-features", "IsolateOrigins,site-per-process"),
}

// Browser is a headless Chromium, the user's browser in the sign-in flow.
type Browser struct{ ctx context.Context }

// New starts Chromium for the test; opts add command-line flags, e.g. host-resolver rules for test
// host names.
func New(t testing.TB, opts ...chromedp.ExecAllocatorOption) *Browser {
	t.Helper()
	path := RequireTool(t, "chromium", "/usr/bin/chromium")
	all := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
	)
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), append(all, opts...)...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &Browser{ctx: ctx}
}

// Context is the browser's context, for tests that drive their own pages with chromedp.
func (b *Browser) Context() context.Context { return b.ctx }

// SignIn opens an authorization URL, checks the API-key page, submits a wrong key, sees the form
// again with its message, then submits key.
func (b *Browser) SignIn(authURL, key string) error {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
		return err
	}
	if h, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1"))); err != nil || h != "Enter your TraceKit API key" {
		return fmt.Errorf("API-key page: heading %q, %v", h, err)
	}
	err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), "tk_not-a-key"),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("login-error")))
	if err != nil {
		return err
	}
	if msg, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("login-error"))); err != nil || !strings.Contains(msg, "not a valid API key") {
		return fmt.Errorf("wrong-key message %q, %v", msg, err)
	}
	return chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("password"), key), chromedp.Click(chromedp.ID("submit-login")))
}

// SignInChoosingTools opens an authorization URL, ticks exactly the tool groups in tools by clicking
// them, submits a wrong key, checks that the page comes back with the same choice, then submits key.
// It returns the tool groups the page offers.
func (b *Browser) SignInChoosingTools(authURL, key string, tools []string) ([]string, error) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	readBoxes := chromedp.Evaluate[[]box](`Array.from(document.querySelectorAll('input[name=tools]')).map(b => ({value: b.value, checked: b.checked}))`)
	if err := chromedp.Do(ctx, chromedp.Navigate(authURL), chromedp.WaitVisible(chromedp.ID("password"))); err != nil {
		return nil, err
	}
	offered, err := chromedp.Run(ctx, readBoxes)
	if err != nil {
		return nil, err
	}
	var groups []string
	for _, o := range offered {
		groups = append(groups, o.Value)
		if o.Checked != slices.Contains(tools, o.Value) {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`input[name=tools][value="`+o.Value+`"]`))); err != nil {
				return nil, err
			}
		}
	}
	if err := sameChoice(ctx, readBoxes, tools, "before submitting"); err != nil {
		return nil, err
	}
	err = chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("password"), "tk_not-a-key"),
		chromedp.Click(chromedp.ID("submit-login")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
		// The page restores the boxes in a script at its end, which may not have run when the
		// message first shows.
		chromedp.Poll[chromedp.Void](`document.readyState === "complete"`))
	if err != nil {
		return nil, err
	}
	if err := sameChoice(ctx, readBoxes, tools, "after a wrong key"); err != nil {
		return nil, err
	}
	return groups, chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("password"), key), chromedp.Click(chromedp.ID("submit-login")))
}

// box is a tool-group checkbox on the API-key page.
type box struct {
	Value   string `json:"value"`
	Checked bool   `json:"checked"`
}

// sameChoice says which box, if any, the page does not tick as tools asks.
func sameChoice(ctx context.Context, read chromedp.Action[[]box], tools []string, when string) error {
	boxes, err := chromedp.Run(ctx, read)
	if err != nil {
		return err
	}
	for _, o := range boxes {
		if o.Checked != slices.Contains(tools, o.Value) {
			return fmt.Errorf("%s, %s is ticked=%v, not as chosen", when, o.Value, o.Checked)
		}
	}
	return nil
}

// SignInWithProvider opens an authorization URL, picks "Sign in with <provider>" on the sign-in page,
// and enters username and password on the form that follows: TraceKit's own (LDAP) or the identity
// provider's (an OIDC provider such as Dex, whose form has the same field ids). Where the browser
// ends is for the caller to see: the client's callback, or the refusal page.
func (b *Browser) SignInWithProvider(authURL, provider, username, password string) error {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	link := chromedp.Search(`//a[normalize-space()="Sign in with ` + provider + `"]`)
	return chromedp.Do(ctx,
		chromedp.Navigate(authURL),
		chromedp.WaitVisible(link),
		chromedp.Click(link),
		chromedp.WaitVisible(chromedp.ID("login")),
		chromedp.SendKeys(chromedp.ID("login"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("submit-login")))
}

// Screenshot saves the whole page the browser shows as a PNG at path (quality 100 means PNG).
func (b *Browser) Screenshot(path string) error {
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// Callback is a client's loopback redirect URI: it hands each authorization response to the test.
type Callback struct {
	URL string
	Got chan url.Values
}

// NewCallback listens on 127.0.0.1 until the test ends.
func NewCallback(t testing.TB) *Callback {
	cb := &Callback{Got: make(chan url.Values, 1)}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cb.Got <- r.URL.Query()
		io.WriteString(w, "Signed in. You can close this window.")
	}))
	t.Cleanup(srv.Close)
	cb.URL = srv.URL + "/callback"
	return cb
}

// Visit opens u, lets it run for wait (a page that submits a form or loads frames), and returns the
// text of the page the browser ends on and the URL each child frame committed, or "unreachable <URL>"
// for a frame whose page did not load, for instance because it refused to be framed. Child frames of
// other sites are listed only in a browser started with SameProcessFrames.
func (b *Browser) Visit(u string, wait time.Duration) (text string, frames []string, err error) {
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.Sleep(wait)); err != nil {
		return "", nil, err
	}
	if text, err = chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err != nil {
		return "", nil, err
	}
	tree, err := chromedp.Call(ctx, page.GetFrameTree, cdp.Empty{})
	if err != nil {
		return "", nil, err
	}
	for _, f := range tree.FrameTree.ChildFrames {
		if f.Frame.UnreachableURL != "" {
			frames = append(frames, "unreachable "+f.Frame.UnreachableURL)
			continue
		}
		frames = append(frames, f.Frame.URL)
	}
	return text, frames, nil
}
