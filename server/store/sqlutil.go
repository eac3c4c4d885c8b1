package store

import (
	"fmt"
	"net/url"
	"strings"
)

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func quoteLiteral(s string) string { return `'` + strings.ReplaceAll(s, `'`, `''`) + `'` }

// withUser swaps the credentials of a postgres:// URL.
func withUser(dsn, user, password string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("tenant credentials need a postgres:// URL, got %q", redactDSN(dsn))
	}
	u.User = url.UserPassword(user, password)
	return u.String(), nil
}
