package main

import (
	"fmt"
	"net/url"
	"strings"
)

// parseOrigins reads a comma-separated list of browser origins allowed to call /mcp besides the
// public URL's own and loopback ones, e.g. "https://inspector.example.com,https://app.example.com".
// An origin is scheme://host[:port]: anything more would never equal a browser's Origin header, so
// it is refused rather than silently never matching.
func parseOrigins(list string) ([]string, error) {
	var out []string
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("--allowed-origins: %q is not an origin; write scheme://host[:port] such as https://app.example.com, separated by commas", o)
		}
		out = append(out, u.Scheme+"://"+u.Host)
	}
	return out, nil
}
