package debugger

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
		"author": false, "max_tokens": false, "tokenizer": false, "spinner": false, "username": false,
		"cache_key": false, "input_tokens": false, "passenger": false, "keyboard": false, "orderId": false,
	} {
		if got := SecretKey(name); got != want {
			t.Errorf("SecretKey(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestRedactString_ReplacesCredentialShapedValues(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U", Redacted},
		{"Bearer abcdefghijklmnop1234", Redacted},
		{"key AKIAIOSFODNN7EXAMPLE used", "key " + Redacted + " used"},
		{"ghp_0123456789abcdefghijklmnopqrstuvwxyzAB", Redacted},
		{"sk_live_4eC39HqLyjWDarjtT1zdp7dc", Redacted},
		{"sk-proj-abcdefghijklmnopqrstuvwxyz012345", Redacted},
		{"tk_abcdefghijklmnopqrstuvwxyz0123456789", Redacted},
		{"xoxb-123456789012-abcdefghij", Redacted},
		{"postgres://app:hunter2@db:5432/shop", "postgres://app:" + Redacted + "@db:5432/shop"},
		{"host=db user=app password=hunter2 sslmode=off", "host=db user=app password=" + Redacted + " sslmode=off"},
		{"https://api.example.com/v1?api_key=abc123&q=shoes", "https://api.example.com/v1?api_key=" + Redacted + "&q=shoes"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----", Redacted},
		{"order 1234 for alice@example.com", "order 1234 for alice@example.com"},
		{"SELECT * FROM users WHERE id = $1", "SELECT * FROM users WHERE id = $1"},
		{"tokens used: 1200", "tokens used: 1200"},
	} {
		got, n := RedactString(tc.in)
		if got != tc.want || (n > 0) != (got != tc.in) {
			t.Errorf("RedactString(%q) = %q (%d), want %q", tc.in, got, n, tc.want)
		}
	}
}

func TestRedact_WalksNestedVariablesAndNameValueObjects(t *testing.T) {
	in := `{"user": {"name": "alice", "password": "hunter2", "tokens": 12},
		"headers": {"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Accept": "text/html"},
		"locals": [{"name": "apiKey", "type": "string", "value": "abc"}, {"name": "count", "value": 3}],
		"empty_secret": "", "cfg": "redis://:s3cret@cache:6379/0", "amount": 12.50}`
	var v any
	if err := json.Unmarshal([]byte(in), &v); err != nil {
		t.Fatal(err)
	}
	v, n := Redact(v)
	out, _ := json.Marshal(v)
	s := string(out)
	for _, secret := range []string{"hunter2", "YWxhZGRpbjpvcGVuc2VzYW1l", `"abc"`, "s3cret"} {
		if strings.Contains(s, secret) {
			t.Errorf("secret %s survived: %s", secret, s)
		}
	}
	for _, kept := range []string{`"alice"`, `"tokens":12`, `"text/html"`, `"value":3`, `"empty_secret":""`, `"amount":12.5`} {
		if !strings.Contains(s, kept) {
			t.Errorf("%s was lost: %s", kept, s)
		}
	}
	if n != 4 {
		t.Errorf("%d redactions, want 4: %s", n, s)
	}
}
