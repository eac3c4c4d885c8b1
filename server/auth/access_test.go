package auth

import (
	"strings"
	"testing"
)

func TestAccess_GrantsTheUnionOfTheRulesThatAdmitThePerson(t *testing.T) {
	a, err := ParseAccess([]byte(`[
		{"groups": ["Platform"], "toolGroups": ["debugging", "traces"]},
		{"groups": ["developers"], "toolGroups": ["traces", "metrics"]},
		{"users": ["carol@example.org"], "toolGroups": ["llm"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		m        Member
		tools    string
		via      string
		admitted bool
	}{
		{"two groups, case-insensitive", Member{Email: "a@example.org", Groups: []string{"platform", "developers", "sales"}}, "traces,metrics,debugging", "platform,developers", true},
		{"by user only", Member{Username: "carol", Email: "carol@example.org"}, "llm", "", true},
		{"no matching group", Member{Email: "bob@example.org", Groups: []string{"sales"}}, "", "", false},
		{"no groups at all", Member{Username: "dave"}, "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tools, via, ok := a.Grant(tc.m)
			if ok != tc.admitted || strings.Join(tools, ",") != tc.tools || strings.Join(via, ",") != tc.via {
				t.Fatalf("got %v %v %v, want %s %s %v", tools, via, ok, tc.tools, tc.via, tc.admitted)
			}
		})
	}
	if g := strings.Join(a.Groups(), ","); g != "Platform,developers" {
		t.Errorf("groups to ask for: %s", g)
	}
}

func TestParseAccess_SaysWhatIsWrong(t *testing.T) {
	for raw, want := range map[string]string{
		`[{"toolGroups": ["traces"]}]`:                 "names no groups and no users",
		`[{"groups": ["a"]}]`:                          "grants no tool groups",
		`[{"groups": ["a"], "toolGroups": ["shell"]}]`: `unknown tool group "shell"`,
		`{"groups": ["a"]}`:                            "access rules:",
	} {
		if _, err := ParseAccess([]byte(raw)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", raw, err, want)
		}
	}
	if a, err := ParseAccess(nil); err != nil || len(a) != 0 {
		t.Errorf("no rules: %v %v", a, err)
	}
}
