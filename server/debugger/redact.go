package debugger

import (
	"regexp"
	"strings"
	"unicode"
)

// Redacted replaces every value judged to be a secret.
const Redacted = "[REDACTED]"

// secretWords are words of a field name that make its value a secret. Names are split into words at
// separators and camelCase humps, so "x-api-key", "apiKey" and "API_KEY" all contain "api" "key",
// while "max_tokens" and "author" contain no secret word.
var secretWords = map[string]bool{"password": true, "passwd": true, "pwd": true, "pass": true, "passphrase": true,
	"passcode": true, "secret": true, "secrets": true, "token": true, "auth": true, "authorization": true,
	"credential": true, "credentials": true, "cookie": true, "jwt": true, "bearer": true, "otp": true, "pin": true,
	"cvv": true, "dsn": true}

// secretPairs are two adjacent words that together name a secret.
var secretPairs = map[string]bool{"apikey": true, "accesskey": true, "privatekey": true, "secretkey": true,
	"sessionid": true, "signingkey": true, "encryptionkey": true, "connectionstring": true}

// secretSuffixes catch names written as one lower-case word: "accesstoken", "dbpassword".
var secretSuffixes = []string{"password", "passwd", "secret", "token", "apikey", "cookie"}

// SecretKey reports whether a field named name holds a secret.
func SecretKey(name string) bool {
	words := splitWords(name)
	for i, w := range words {
		if secretWords[w] || secretPairs[w] || i > 0 && secretPairs[words[i-1]+w] ||
			strings.HasPrefix(w, "password") || strings.HasPrefix(w, "secret") {
			return true
		}
		for _, s := range secretSuffixes {
			if strings.HasSuffix(w, s) {
				return true
			}
		}
	}
	return false
}

// splitWords lower-cases name and splits it at non-alphanumerics and camelCase boundaries
// ("APIKey" is "api" "key").
func splitWords(name string) []string {
	var words []string
	rs := []rune(name)
	start := -1
	flush := func(end int) {
		if start >= 0 {
			words = append(words, strings.ToLower(string(rs[start:end])))
		}
		start = -1
	}
	for i, r := range rs {
		alnum := unicode.IsLetter(r) || unicode.IsDigit(r)
		if !alnum {
			flush(i)
			continue
		}
		if start >= 0 && unicode.IsUpper(r) {
			prev := rs[i-1]
			nextLower := i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if unicode.IsLower(prev) || unicode.IsDigit(prev) || unicode.IsUpper(prev) && nextLower {
				flush(i)
			}
		}
		if start < 0 {
			start = i
		}
	}
	flush(len(rs))
	return words
}

// credentialShapes match values that are credentials whatever they are called: well-known token
// formats, authorization header values and PEM private keys.
var credentialShapes = regexp.MustCompile(strings.Join([]string{
	`eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`,       // JWT
	`(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}`,            // Authorization header values
	`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`,                                    // AWS access key ids
	`\bgh[pousr]_[A-Za-z0-9]{30,}\b`, `\bgithub_pat_[A-Za-z0-9_]{22,}`, // GitHub
	`\bxox[abprs]-[A-Za-z0-9-]{10,}`,         // Slack
	`\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}`, // Stripe
	`\bsk-(?:ant-|proj-)?[A-Za-z0-9_-]{20,}`, // OpenAI, Anthropic
	`\bAIza[0-9A-Za-z_-]{35}`,                // Google API keys
	`\btk_[A-Za-z0-9_-]{20,}`,                // TraceKit API keys
	`-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)`,
}, "|"))

// embeddedSecrets match a secret inside a longer value, keeping what identifies it: the password of
// a URL's user info, and the value of key=value pairs with a secret-looking key.
var (
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s@]+)(@)`)
	keyValue    = regexp.MustCompile(`(?i)\b((?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret)\s*[=:]\s*)([^&\s;,"']+)`)
)

// RedactString returns s with credentials replaced, and how many it replaced.
func RedactString(s string) (string, int) {
	n := 0
	s = credentialShapes.ReplaceAllStringFunc(s, func(string) string { n++; return Redacted })
	s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		n++
		return urlPassword.ReplaceAllString(m, "${1}"+Redacted+"${3}")
	})
	s = keyValue.ReplaceAllStringFunc(s, func(m string) string {
		if strings.HasSuffix(m, Redacted) {
			return m
		}
		n++
		return keyValue.ReplaceAllString(m, "${1}"+Redacted)
	})
	return s, n
}

// Redact walks a decoded JSON value and replaces secrets in place: the whole value of a field with a
// secret-looking name, and credential-shaped strings anywhere. It returns the value (strings are
// immutable, so a top-level string is returned changed) and how many secrets it replaced.
func Redact(v any) (any, int) {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		// Agents that send variables as {"name": …, "value": …} objects name the secret in a field.
		if name, ok := x["name"].(string); ok && SecretKey(name) {
			if val, ok := x["value"]; ok && val != nil && val != "" {
				x["value"] = Redacted
				n++
			}
		}
		for k, e := range x {
			if SecretKey(k) && e != nil {
				if s, ok := e.(string); !ok || s != "" {
					x[k] = Redacted
					n++
				}
				continue
			}
			var c int
			x[k], c = Redact(e)
			n += c
		}
		return x, n
	case []any:
		n := 0
		for i, e := range x {
			var c int
			x[i], c = Redact(e)
			n += c
		}
		return x, n
	case string:
		return RedactString(x)
	}
	return v, 0
}
