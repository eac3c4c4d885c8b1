package dexauth

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeProviders(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "providers.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Secrets come from the environment or a mounted file; the configuration never holds them.
func TestLoadProviders_ResolvesSecretReferences(t *testing.T) {
	t.Setenv("TEST_OIDC_SECRET", "from-env")
	secret := filepath.Join(t.TempDir(), "bind")
	os.WriteFile(secret, []byte("from-file\n"), 0o600)
	p, err := LoadProviders(writeProviders(t, `apiKeys: false
providers:
- type: oidc
  id: okta
  name: Okta
  config: {issuer: "https://example.okta.com", clientID: x, clientSecret: $TEST_OIDC_SECRET, scopes: ["groups"]}
- type: ldap
  id: corp
  name: the directory
  config: {host: "ldap:636", bindPW: "${file:`+secret+`}", note: "costs $$5"}
`))
	if err != nil {
		t.Fatal(err)
	}
	var oidc, ldap map[string]any
	json.Unmarshal(p.Providers[0].Config, &oidc)
	json.Unmarshal(p.Providers[1].Config, &ldap)
	if oidc["clientSecret"] != "from-env" || ldap["bindPW"] != "from-file" || ldap["note"] != "costs $5" || *p.APIKeys {
		t.Fatalf("got %v %v apiKeys=%v", oidc, ldap, *p.APIKeys)
	}
	// The OIDC connector's callback defaults to the issuer's; only the providers are stored.
	cs, err := p.connectors("https://auth.example.com/dex")
	if err != nil || len(cs) != 2 || cs[0].Type != ssoType || !strings.Contains(string(cs[0].Config), `"redirectURI":"https://auth.example.com/dex/callback"`) {
		t.Fatalf("connectors: %v %+v", err, cs)
	}
}

func TestLoadProviders_SaysWhatIsWrong(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unset variable": {"providers:\n- {type: oidc, id: okta, name: Okta, config: {clientSecret: $TEST_UNSET_SECRET}}\n", "environment variable TEST_UNSET_SECRET is not set"},
		"missing file":   {"providers:\n- {type: ldap, id: corp, name: Corp, config: {bindPW: '${file:/nonexistent/pw}'}}\n", "file /nonexistent/pw is not set"},
		"misspelt field": {"provider:\n- {type: oidc}\n", `unknown field "provider"`},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := LoadProviders(writeProviders(t, tc.yaml)); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	no := false
	for name, tc := range map[string]struct {
		p    Providers
		want string
	}{
		"saml":       {Providers{Providers: []Provider{{Type: "saml", ID: "s", Name: "S", Config: []byte("{}")}}}, `type "saml": use oidc or ldap`},
		"API-key id": {Providers{Providers: []Provider{{Type: "ldap", ID: "tracekit", Name: "S", Config: []byte("{}")}}}, "used twice"},
		"no name":    {Providers{Providers: []Provider{{Type: "ldap", ID: "corp", Config: []byte("{}")}}}, "name is required"},
		"no sign-in": {Providers{APIKeys: &no}, "no way to sign in"},
		"bad id":     {Providers{Providers: []Provider{{Type: "ldap", ID: "Corp LDAP", Name: "S", Config: []byte("{}")}}}, "lowercase letters"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.p.connectors("https://auth.example.com/dex"); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}
