package oauth

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// checkRedirectURI says why uri cannot be registered, or returns nil. Allowed: https anywhere (web
// connectors), http on a loopback address (CLI and desktop clients, RFC 8252 §7.3), and private-use
// schemes such as cursor:// or vscode:// (editors, RFC 8252 §7.1).
func checkRedirectURI(uri string) error {
	u, err := url.Parse(uri)
	switch {
	case err != nil || !u.IsAbs():
		return fmt.Errorf("redirect URI %q is not an absolute URI", uri)
	case strings.Contains(uri, "#"):
		return fmt.Errorf("redirect URI %q must not contain a fragment", uri)
	case u.User != nil:
		return fmt.Errorf("redirect URI %q must not contain a user name or password (userinfo): a person reading it sees a host that is not where the access goes", uri)
	case len(uri) > 2000:
		return fmt.Errorf("redirect URI %.40q… is longer than 2000 characters", uri)
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		if u.Host == "" {
			return fmt.Errorf("redirect URI %q has no host", uri)
		}
	case "http":
		if !isLoopback(u.Hostname()) {
			return fmt.Errorf("redirect URI %q: plain http is allowed only on a loopback address (127.0.0.1, [::1] or localhost); use https", uri)
		}
	case "javascript", "data", "vbscript", "file", "blob", "about", "ws", "wss", "ftp":
		return fmt.Errorf("redirect URI %q uses a scheme that cannot receive an authorization response", uri)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redirectAllowed reports whether uri may receive the authorization response of a client that
// registered registered: the exact string, or, for a loopback http URI, the same URI on another
// port, because native apps listen on whatever port is free (RFC 8252 §7.3).
func redirectAllowed(registered []string, uri string) bool {
	got, err := url.Parse(uri)
	loopback := err == nil && got.Scheme == "http" && isLoopback(got.Hostname())
	for _, r := range registered {
		if r == uri {
			return true
		}
		if !loopback {
			continue
		}
		want, err := url.Parse(r)
		if err == nil && want.Scheme == "http" && want.Hostname() == got.Hostname() &&
			want.EscapedPath() == got.EscapedPath() && want.RawQuery == got.RawQuery && want.User == nil && got.User == nil {
			return true
		}
	}
	return false
}

// withParams returns uri with params added to its query, keeping the parameters it already has.
func withParams(uri string, params url.Values) string {
	u, err := url.Parse(uri)
	if err != nil {
		return uri
	}
	q := u.Query()
	for k, vs := range params {
		q[k] = vs
	}
	u.RawQuery = q.Encode()
	return u.String()
}
