package redact

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestSecretKey_MatchesSecretNamesButNotLookalikes(t *testing.T) {
	for name, want := range map[string]bool{
		"password": true, "db_password": true, "passwordHash": true, "apiKey": true, "x-api-key": true,
		"API_KEY": true, "APIKey": true, "accessToken": true, "accesstoken": true, "refresh_token": true,
		"Authorization": true, "client_secret": true, "set-cookie": true, "pin": true, "sessionId": true,
		"AWS_SECRET_ACCESS_KEY": true, "privateKey": true, "DATABASE_DSN": true, "credentials": true,
		"cvc": true, "card_cvc": true, "CVV2": true, "sid": true, "PHPSESSID": true, "privKey": true,
		"passwort": true, "Kennwort": true, "ssn": true, "national_id": true, "nationalIdNumber": true,
		"cardNumber": true, "tax_id": true,
		"author": false, "max_tokens": false, "tokenizer": false, "spinner": false, "username": false,
		"cache_key": false, "input_tokens": false, "passenger": false, "keyboard": false, "orderId": false,
		"side": false, "considered": false, "session_timeout": false, "tokens": false, "user_id": false,
	} {
		if got := SecretKey(name); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", name, got, want)
		}
	}
}

// One row per shape: what is replaced wherever it appears, and look-alikes that are kept.
func TestString_ReplacesSecretShapedValues(t *testing.T) {
	for _, tc := range []struct{ shape, in, want string }{
		{"JWT", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", Redacted},
		{"bearer header", "Bearer abcdefghijklmnop1234", Redacted},
		{"AWS access key id", "key AKIAIOSFODNN7EXAMPLE used", "key " + Redacted + " used"},
		{"AWS secret access key", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", Redacted},
		{"git commit id kept", "commit 9fceb02d0ae598e95dc970b74767f19372d61af8", "commit 9fceb02d0ae598e95dc970b74767f19372d61af8"},
		{"GitHub token", "ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", Redacted},
		{"Stripe key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", Redacted},
		{"OpenAI key", "sk-proj-abcdefghijklmnopqrstuvwxyz012345", Redacted},
		{"TraceKit key", "tk_abcdefghijklmnopqrstuvwxyz0123456789", Redacted},
		{"Slack token", "xoxb-123456789012-abcdefghij", Redacted},
		{"PEM private key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", Redacted},
		{"URL password", "postgres://app:hunter2@db:5432/shop", "postgres://app:" + Redacted + "@db:5432/shop"},
		{"URL password with @", "postgres://app:p@ss@w0rd@db:5432/shop", "postgres://app:" + Redacted + "@db:5432/shop"},
		{"key=value", "host=db user=app password=hunter2 sslmode=off", "host=db user=app password=" + Redacted + " sslmode=off"},
		{"query parameter", "https://api.example.com/v1?api_key=abc123&q=shoes", "https://api.example.com/v1?api_key=" + Redacted + "&q=shoes"},
		{"quoted pair", `{"password": "hunter2"`, `{"password": "` + Redacted + `"`},
		{"JSON in a string", `{"user":"bob","password":"hunter2"}`, `{"password":"` + Redacted + `","user":"bob"}`},
		{"Visa with spaces", "card 4111 1111 1111 1111 ok", "card " + Redacted + " ok"},
		{"Mastercard", "5500005555555559", Redacted},
		{"Amex with dashes", "3782-822463-10005", Redacted},
		{"not Luhn-valid", "4111 1111 1111 1112", "4111 1111 1111 1112"},
		{"nanosecond timestamp kept", "at 1733318400123456789", "at 1733318400123456789"},
		{"e-mail", "order 1234 for alice@example.com", "order 1234 for " + Redacted},
		{"US SSN", "ssn 123-45-6789", "ssn " + Redacted},
		{"UK NINO", "NI AB 12 34 56 C", "NI " + Redacted},
		{"date kept", "2025-06-01 12:00", "2025-06-01 12:00"},
		{"SQL kept", "SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = $1"},
		{"token count kept", "tokens used: 1200", "tokens used: 1200"},
	} {
		got, n := String(tc.in)
		if got != tc.want || (n > 0) != (got != tc.in) {
			t.Errorf("%s: String(%q) = %q (%d), want %q", tc.shape, tc.in, got, n, tc.want)
		}
	}
}

func decode(t *testing.T, s string) any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// One row per place a secret hides in captured variables.
func TestValue_RedactsByNameShapeAndPosition(t *testing.T) {
	for _, tc := range []struct {
		what, in string
		gone     []string
		kept     []string
	}{
		{"secret names", `{"password": "hunter2", "cvc": "123", "sid": "s%3Aabc", "privKey": "k1", "passwort": "geheim", "session": "sess-42"}`,
			[]string{"hunter2", `"123"`, "s%3Aabc", `"k1"`, "geheim", "sess-42"}, []string{`"cvc":"[REDACTED]"`}},
		{"tokens: strings go, counts stay", `{"tokens": ["tok-a1", "tok-b2"], "usage": {"tokens": 12}}`,
			[]string{"tok-a1", "tok-b2"}, []string{`"tokens":12`}},
		{"card number as a number", `{"pan": 5500005555555559, "amount": 1999, "at_ns": 1733318400123456789}`,
			[]string{"5500005555555559"}, []string{"1999", "1733318400123456789"}},
		{"card number with spaces", `{"card": {"number": "4111 1111 1111 1111", "last4": "1111"}}`,
			[]string{"4111 1111 1111 1111"}, []string{`"last4":"1111"`}},
		{"e-mail and national id", `{"customer": {"email": "alice@example.com", "ssn": "123-45-6789", "nino": "AB123456C", "note": "call 078-05-1120"}}`,
			[]string{"alice@example.com", "123-45-6789", "AB123456C", "078-05-1120"}, []string{`"customer"`}},
		{"AWS secret under a neutral name", `{"cfg": {"k2": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"}}`,
			[]string{"wJalrXUtnFEMI"}, []string{`"k2"`}},
		{"JSON string holding a password", `{"body": "{\"user\": \"bob\", \"password\": \"hunter2\"}"}`,
			[]string{"hunter2"}, []string{"bob"}},
		{"secrets as map keys", `{"cache": {"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U": 1, "AKIAIOSFODNN7EXAMPLE": 2, "AKIAI44QH8DHBEXAMPLE": 3, "plain": 4}}`,
			[]string{"eyJhbGci", "AKIAIOSFODNN7EXAMPLE", "AKIAI44QH8DHBEXAMPLE"}, []string{`"plain":4`, `"[REDACTED]"`, `"[REDACTED 2]"`, `"[REDACTED 3]"`}},
		{"URL password with @", `{"cache_url": "redis://:p@ss@cache:6379/0"}`, []string{"p@ss", "ss@cache"}, []string{"@cache:6379"}},
		{"name/value variables", `{"locals": [{"name": "apiKey", "type": "string", "value": "abc"}, {"name": "count", "value": 3}]}`,
			[]string{`"abc"`}, []string{`"value":3`, `"apiKey"`}},
		{"look-alikes kept", `{"author": "bob", "max_tokens": 256, "session_timeout": 30, "empty_secret": "", "amount": 12.50, "order_id": 1234567890123}`,
			nil, []string{`"bob"`, `"max_tokens":256`, `"session_timeout":30`, `"empty_secret":""`, `"amount":12.50`, `1234567890123`}},
	} {
		v, n := Value(decode(t, tc.in))
		out, _ := json.Marshal(v)
		s := string(out)
		for _, g := range tc.gone {
			if strings.Contains(s, g) {
				t.Errorf("%s: %s survived: %s", tc.what, g, s)
			}
		}
		for _, k := range tc.kept {
			if !strings.Contains(s, k) {
				t.Errorf("%s: %s was lost: %s", tc.what, k, s)
			}
		}
		if (n == 0) != (len(tc.gone) == 0) {
			t.Errorf("%s: %d redactions: %s", tc.what, n, s)
		}
	}
}

func TestCondition_HidesLiteralsComparedWithSecrets(t *testing.T) {
	for in, want := range map[string]string{
		"password == 'hunter2'":                 "password == '[REDACTED]'",
		`user.apiKey != "abc" && amount > 1000`: `user.apiKey != '[REDACTED]' && amount > 1000`,
		"'s3cret' == req.headers.authorization": "'[REDACTED]' == req.headers.authorization",
		"customer.email == 'alice@example.com'": "customer.email == '[REDACTED]'",
		"card == '4111111111111111'":            "card == '[REDACTED]'",
		"status == 'failed' && retries >= 3":    "status == 'failed' && retries >= 3",
		"tokens == 'tok-1'":                     "tokens == '[REDACTED]'",
	} {
		if got := Condition(in); got != want {
			t.Errorf("Condition(%q) = %q, want %q", in, got, want)
		}
	}
}
