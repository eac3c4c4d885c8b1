// Package redact removes secrets and personal data from captured values. It is the one set of rules
// both the TraceKit server (before it stores a snapshot, and when it shows a breakpoint condition)
// and the Go agent (before a snapshot leaves the application) apply, so it uses the standard library
// only.
//
// Two kinds of evidence make something a secret: its name (a field called password, cvc, sid,
// privKey, …: the whole value goes) and its shape wherever it appears, in values, map keys and
// strings nested in strings (Luhn-valid card numbers, e-mail addresses, national id numbers, JWTs,
// well-known key formats, the password of a URL).
package redact

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// Redacted replaces every value judged to be a secret.
const Redacted = "[REDACTED]"

// secretWords are words of a field name that make its whole value a secret. Names are split into
// words at separators and camelCase humps, so "x-api-key", "apiKey" and "API_KEY" all contain "api"
// "key", while "max_tokens" and "author" contain no secret word.
var secretWords = map[string]bool{"password": true, "passwords": true, "passwd": true, "pwd": true,
	"pass": true, "passphrase": true, "passcode": true, "secret": true, "secrets": true, "token": true,
	"auth": true, "authorization": true, "credential": true, "credentials": true, "cookie": true,
	"cookies": true, "jwt": true, "bearer": true, "otp": true, "pin": true, "dsn": true,
	// card verification codes
	"cvv": true, "cvv2": true, "cvc": true, "cvc2": true, "csc": true, "cvn": true,
	// session identifiers
	"sid": true, "sessid": true, "phpsessid": true, "jsessionid": true, "sessionid": true,
	// "password" in other languages
	"passwort": true, "kennwort": true, "contrasena": true, "contraseña": true, "senha": true,
	"wachtwoord": true, "salasana": true, "haslo": true, "hasło": true, "motdepasse": true,
	// national identifiers
	"ssn": true, "nino": true, "iban": true, "passport": true, "personnummer": true}

// secretPairs are two adjacent words that together name a secret.
var secretPairs = map[string]bool{"apikey": true, "accesskey": true, "privatekey": true, "privkey": true,
	"secretkey": true, "sessionid": true, "sessionkey": true, "signingkey": true, "encryptionkey": true,
	"connectionstring": true, "cardnumber": true, "nationalid": true, "socialsecurity": true, "taxid": true,
	"idnumber": true}

// secretSuffixes catch names written as one lower-case word: "accesstoken", "dbpassword".
var secretSuffixes = []string{"password", "passwd", "secret", "token", "apikey", "cookie", "passwort"}

// stringWords name fields whose text is secret but whose numbers are not: "tokens" holds either
// session tokens or an LLM's token count, "session" an opaque id or a timeout.
var stringWords = map[string]bool{"tokens": true, "session": true, "sessions": true}

// keyClass says how much of a field's value a name makes secret.
type keyClass int

const (
	plain       keyClass = iota
	textOnly             // strings anywhere in the value
	wholeSecret          // the whole value
)

func classify(name string) keyClass {
	words := splitWords(name)
	class := plain
	for i, w := range words {
		if secretWords[w] || secretPairs[w] || i > 0 && secretPairs[words[i-1]+w] ||
			strings.HasPrefix(w, "password") || strings.HasPrefix(w, "secret") {
			return wholeSecret
		}
		for _, s := range secretSuffixes {
			if strings.HasSuffix(w, s) {
				return wholeSecret
			}
		}
		if stringWords[w] {
			class = textOnly
		}
	}
	return class
}

// SecretKey reports whether a field named name holds a secret as a whole.
func SecretKey(name string) bool { return classify(name) == wholeSecret }

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
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) {
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

// credentialShapes match values that are credentials or personal data whatever they are called.
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
	`[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}`,                                                            // e-mail address
	`\b(?:00[1-9]|0[1-9]\d|[1-57-8]\d\d|6[0-57-9]\d|66[0-57-9])-(?:0[1-9]|[1-9]\d)-(?:000[1-9]|00[1-9]\d|0[1-9]\d\d|[1-9]\d{3})\b`, // US social security number
	`\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b`,                                                          // UK national insurance number
}, "|"))

// cardCandidates are digit runs that may be a payment card number: 13–19 digits, alone or in groups
// of four (Amex: 4-6-5) separated by spaces or dashes. isCard decides.
var cardCandidates = regexp.MustCompile(`\b(?:\d{4}[ -]){3}\d{1,7}\b|\b\d{4}[ -]\d{6}[ -]\d{5}\b|\b\d{13,19}\b`)

// base64Runs are runs of the characters of AWS secret access keys (40 characters of base64).
var base64Runs = regexp.MustCompile(`[A-Za-z0-9/+=]+`)

// embeddedSecrets match a secret inside a longer value, keeping what identifies it: the password of
// a URL's user info (up to its last '@'), and the value of key=value or "key": "value" pairs with a
// secret-looking key.
var (
	urlPassword = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]*:)([^/\s]+)(@[^/\s@]*)`)
	keyValue    = regexp.MustCompile(`(?i)\b((?:password|passwd|passwort|pwd|secret|token|api[_-]?key|access[_-]?key|client[_-]?secret|session[_-]?id|sid|cvc|cvv)["']?\s*[=:]\s*["']?)([^&\s;,"'}\]=<>!][^&\s;,"'}\]]*)`)
)

// String returns s with credentials and personal data replaced, and how many it replaced. A string
// that holds a JSON object or array is decoded and redacted as a value.
func String(s string) (string, int) {
	if t := strings.TrimSpace(s); len(t) > 1 && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
		dec := json.NewDecoder(strings.NewReader(t))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) == nil {
			v, n := Value(v)
			if n == 0 {
				return s, 0
			}
			b, err := json.Marshal(v)
			if err == nil {
				return string(b), n
			}
		}
	}
	n := 0
	s = urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		n++
		return urlPassword.ReplaceAllString(m, "${1}"+Redacted+"${3}")
	})
	s = credentialShapes.ReplaceAllStringFunc(s, func(string) string { n++; return Redacted })
	s = cardCandidates.ReplaceAllStringFunc(s, func(m string) string {
		if !isCard(m) {
			return m
		}
		n++
		return Redacted
	})
	s = base64Runs.ReplaceAllStringFunc(s, func(m string) string {
		if !isAWSSecret(m) {
			return m
		}
		n++
		return Redacted
	})
	s = keyValue.ReplaceAllStringFunc(s, func(m string) string {
		// Already redacted by a shape above ("[REDACTED" is where the value's pattern stops).
		if strings.HasSuffix(m, Redacted[:len(Redacted)-1]) || strings.HasSuffix(m, Redacted) {
			return m
		}
		n++
		return keyValue.ReplaceAllString(m, "${1}"+Redacted)
	})
	return s, n
}

// isCard reports whether s (digits, maybe grouped by spaces or dashes) is a payment card number: a
// known issuer prefix, a length that issuer uses, and a valid Luhn check digit. The prefixes keep
// nanosecond timestamps and other long ids from being taken for cards.
func isCard(s string) bool {
	var d []byte
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= '0' && c <= '9' {
			d = append(d, c)
		}
	}
	n := len(d)
	if n < 13 || n > 19 {
		return false
	}
	p := func(k int) int { // the first k digits as a number
		v := 0
		for _, c := range d[:k] {
			v = v*10 + int(c-'0')
		}
		return v
	}
	ok := false
	switch {
	case d[0] == '4': // Visa
		ok = n == 13 || n == 16 || n == 19
	case p(2) >= 51 && p(2) <= 55, p(4) >= 2221 && p(4) <= 2720: // Mastercard
		ok = n == 16
	case p(2) == 34 || p(2) == 37: // American Express
		ok = n == 15
	case p(4) == 6011 || p(2) == 65 || p(3) >= 644 && p(3) <= 649, p(2) == 62: // Discover, UnionPay
		ok = n >= 16
	case p(4) >= 3528 && p(4) <= 3589: // JCB
		ok = n >= 16
	case p(2) == 36 || p(2) == 38 || p(2) == 39 || p(3) >= 300 && p(3) <= 305: // Diners Club
		ok = n >= 14
	}
	return ok && luhn(d)
}

func luhn(d []byte) bool {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if (len(d)-1-i)%2 == 1 {
			if v *= 2; v > 9 {
				v -= 9
			}
		}
		sum += v
	}
	return sum%10 == 0
}

// isAWSSecret reports whether s looks like an AWS secret access key: exactly 40 base64 characters
// mixing upper case, lower case and digits (hex digests such as git commit ids have no upper case).
func isAWSSecret(s string) bool {
	if len(s) != 40 || strings.Contains(s, "=") {
		return false
	}
	var upper, lower, digit bool
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= '0' && c <= '9':
			digit = true
		}
	}
	return upper && lower && digit
}

// Value walks a decoded JSON value (maps, slices, strings, json.Number, as encoding/json decodes
// them) and replaces secrets in place: the value of a field with a secret-looking name, map keys
// and strings shaped like secrets, and card numbers stored as numbers. It returns the value (strings
// are immutable, so a top-level string is returned changed) and how many secrets it replaced.
func Value(v any) (any, int) {
	switch x := v.(type) {
	case map[string]any:
		return object(x)
	case []any:
		n := 0
		for i, e := range x {
			var c int
			x[i], c = Value(e)
			n += c
		}
		return x, n
	case string:
		return String(x)
	case json.Number:
		if isCard(string(x)) {
			return Redacted, 1
		}
	}
	return v, 0
}

func object(x map[string]any) (map[string]any, int) {
	n := 0
	// Agents that send variables as {"name": …, "value": …} objects name the secret in a field.
	varName, isVariable := x["name"].(string)
	type entry struct {
		key string
		val any
	}
	var renamed []entry
	for k, e := range x {
		name := k
		if isVariable && k == "value" {
			name = varName
		}
		var c int
		x[k], c = byName(name, e)
		n += c
		// A map keyed by secrets (tokens, card numbers, e-mail addresses) leaks them in its keys.
		if rk, c := String(k); c > 0 {
			n += c
			renamed = append(renamed, entry{rk, x[k]})
			delete(x, k)
		}
	}
	for _, e := range renamed {
		key := e.key
		for i := 2; has(x, key); i++ {
			key = strings.TrimSuffix(e.key, "]") + " " + strconv.Itoa(i) + "]"
		}
		x[key] = e.val
	}
	return x, n
}

func has(m map[string]any, k string) bool { _, ok := m[k]; return ok }

// byName redacts the value of a field called name.
func byName(name string, v any) (any, int) {
	switch classify(name) {
	case wholeSecret:
		if v == nil || v == "" {
			return v, 0
		}
		return Redacted, 1
	case textOnly:
		return textOf(v)
	}
	return Value(v)
}

// textOf replaces every string inside v and keeps numbers, booleans and structure.
func textOf(v any) (any, int) {
	switch x := v.(type) {
	case string:
		if x == "" {
			return x, 0
		}
		return Redacted, 1
	case []any:
		n := 0
		for i, e := range x {
			var c int
			x[i], c = textOf(e)
			n += c
		}
		return x, n
	case map[string]any:
		n := 0
		for k, e := range x {
			var c int
			x[k], c = textOf(e)
			n += c
		}
		return x, n
	}
	return Value(v)
}

// conditionLiteral finds a comparison of a field with a quoted literal, in either order, in a
// breakpoint condition ("user.password == 'hunter2'", "'x' != token").
var conditionLiteral = regexp.MustCompile(`([A-Za-z_][\w.\[\]]*)\s*(==|!=|<=|>=|<|>)\s*('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")` +
	`|('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\s*(==|!=|<=|>=|<|>)\s*([A-Za-z_][\w.\[\]]*)`)

// Condition returns a breakpoint condition fit to show: literals compared with a secret-named field
// become '[REDACTED]', and secret-shaped text anywhere is replaced as in String.
func Condition(expr string) string {
	expr = conditionLiteral.ReplaceAllStringFunc(expr, func(m string) string {
		sub := conditionLiteral.FindStringSubmatch(m)
		field, lit := sub[1], sub[3]
		if field == "" {
			field, lit = sub[6], sub[4]
		}
		if last := field[strings.LastIndexAny(field, ".[")+1:]; classify(strings.TrimSuffix(last, "]")) == plain {
			return m
		}
		return strings.Replace(m, lit, "'"+Redacted+"'", 1)
	})
	expr, _ = String(expr)
	return expr
}
